"""The ways an owner or installer lost the site's database, or stopped charging without a word, each tried for
real: a database the edge cannot write (root's, as a restore leaves it), a write that fails while chargers
talk, a backup written over the live file, the file deleted under the running edge, two edges or two syncs on
one database."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websockets
from conftest import SITEKEEPER, EdgeProcess, to_toml, wait_for, wait_until

BOOT = {"chargePointVendor": "ACME", "chargePointModel": "M1"}


def health(edge: EdgeProcess) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{edge.web_port}/healthz", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


async def call(ws, msg_id: str, action: str, payload: dict) -> list:
    await ws.send(json.dumps([2, msg_id, action, payload]))
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


def chattr(flag: str, *paths: str) -> None:
    subprocess.run(["chattr", flag, *[p for p in paths if os.path.exists(p)]], check=True)


def readable_copy(shared_dir: Path, *files: str) -> Path:
    """Copies of the repo's `files` that another user can read (the clone itself may be its owner's alone);
    the folder to put on that user's sys.path."""
    root, repo = shared_dir / "code", Path(__file__).resolve().parent.parent
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(repo / name, root / name)
    for folder in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        folder.chmod(0o755)
    for f in root.rglob("*.py"):
        f.chmod(0o644)
    return root


@pytest.fixture
def shared_dir():
    """A folder another user can reach (pytest's own tmp is root's alone)."""
    d = Path(tempfile.mkdtemp(prefix="sitekeeper-shared-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_a_database_the_edge_cannot_write_refuses_to_start(edge_factory):
    """A database the edge could not write once gave "ready", /healthz ok and chargers no answer at all."""
    edge = edge_factory(start=False)
    subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "init"], check=True, capture_output=True)
    chattr("+i", edge.db_path)  # even root cannot write it now
    try:
        proc = subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "run"], capture_output=True,
                              text=True, timeout=30)
    finally:
        chattr("-i", edge.db_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and "ready" not in proc.stdout, proc.stdout + proc.stderr
    assert len(lines) == 1 and f"cannot write {edge.db_path}" in lines[0], proc.stderr


def test_a_database_of_another_user_is_named_with_its_owner_and_the_fix(shared_dir: Path):
    """What a restore done as root leaves for the service user: the line names the owner, the user and chown.
    (The check runs as `nobody` under the system's Python: the test venv's lives in root's home.)"""
    site = shared_dir / "site"
    site.mkdir()
    shutil.chown(site, "nobody")
    db = site / "site.db"
    db.write_bytes(b"")
    guard = readable_copy(shared_dir, "edge/store/guard.py") / "edge" / "store" / "guard.py"
    probe = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('guard', sys.argv[1]);"
             " g = importlib.util.module_from_spec(spec); sys.modules['guard'] = g; spec.loader.exec_module(g)\n"
             "try:\n g.check_writable(sys.argv[2]); print('writable')\nexcept g.StoreError as e:\n print(e)")
    out = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", probe, str(guard), str(db)],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == (f"cannot write {db}: it belongs to root and this process runs as nobody"
                                  f" (fix: sudo chown nobody: {db}*)"), out.stdout + out.stderr
    shutil.chown(db, "nobody")
    out = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", probe, str(guard), str(db)],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "writable", out.stdout + out.stderr


async def test_a_write_that_fails_still_answers_the_charger_and_healthz_says_so(edge_factory):
    """Every CALL gets an answer even when the store refuses the write: CALLERROR InternalError, then the
    socket is closed so that the charger reconnects; /healthz answers 503 with the reason until writes work."""
    edge = edge_factory()
    db = edge.db_path
    async with websockets.connect(f"{edge.url}/CP-W", subprotocols=["ocpp1.6"]) as ws:
        assert (await call(ws, "b1", "BootNotification", BOOT))[2]["status"] == "Accepted"
        chattr("+i", db, f"{db}-wal")  # the store can no longer write (as a failing SD card)
        try:
            answer = await call(ws, "b2", "BootNotification", BOOT)
            assert answer[:3] == [4, "b2", "InternalError"], answer
            await asyncio.wait_for(ws.wait_closed(), 10)
            assert ws.close_code == 1011, "closed, so that the charger reconnects to a fresh link"
            status, body = health(edge)
            assert status == 503 and body["ok"] is False and "cannot be written" in body["store"]["problem"]
        finally:
            chattr("-i", db, f"{db}-wal")
    async with websockets.connect(f"{edge.url}/CP-W", subprotocols=["ocpp1.6"]) as ws:
        assert (await call(ws, "b3", "BootNotification", BOOT))[2]["status"] == "Accepted"
    await wait_for(lambda: health(edge)[0] == 200, what="healthy again once writes work")
    assert "STORE PROBLEM" in edge.log() and "writable again" in edge.log()


def test_backup_onto_the_live_database_is_refused(edge_factory):
    edge = edge_factory()
    for dest in (edge.db_path, f"{edge.db_path}-wal", f"{edge.db_path}-shm"):
        proc = subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "backup", "--force", dest],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 1 and "is the live database" in proc.stderr, proc.stderr
    assert health(edge)[0] == 200 and edge.query("SELECT count(*) FROM chargers") == [(0,)]


def test_deleting_the_database_under_the_running_edge_is_noticed(edge_factory):
    edge = edge_factory()
    assert health(edge)[0] == 200
    assert f"database {edge.db_path}" in edge.log(), "the edge says which file it uses"
    os.unlink(edge.db_path)
    wait_until(lambda: health(edge)[0] == 503, what="/healthz 503")
    assert "was deleted while the edge runs" in health(edge)[1]["store"]["problem"]
    wait_until(lambda: "STORE PROBLEM" in edge.log(), what="said loudly in the log")


def test_one_edge_per_database(edge_factory, tmp_path):
    first = edge_factory()
    (tmp_path / "second").mkdir()
    second = EdgeProcess(tmp_path / "second", {"store": {"path": first.db_path}})
    proc = subprocess.run([SITEKEEPER, "--config", str(second.config_path), "run"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 1 and "another sitekeeper edge already runs on this database" in proc.stderr
    assert f"pid {first.proc.pid}" in proc.stderr
    assert health(first)[0] == 200
    first.stop()
    first.start()  # the lock goes with the process that held it


def test_one_sync_per_site(broker, tmp_path):
    cfg = tmp_path / "sitekeeper.toml"
    cfg.write_text(to_toml({"site": {"id": "s1"}, "store": {"path": str(tmp_path / "site.db")},
                            "mqtt": {"host": broker.host, "port": broker.port}}))
    subprocess.run([SITEKEEPER, "--config", str(cfg), "init"], check=True, capture_output=True)
    one = subprocess.Popen([SITEKEEPER, "--config", str(cfg), "sync"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: os.path.exists(tmp_path / "site.db.sync.lock"), what="the first sync running")
        two = subprocess.run([SITEKEEPER, "--config", str(cfg), "sync"], capture_output=True, text=True, timeout=30)
        assert two.returncode == 2 and "another sitekeeper sync already runs" in two.stderr, two.stderr
        assert one.poll() is None, "the first one carries on"
    finally:
        one.terminate()
        one.wait(15)


def test_a_config_this_user_cannot_read_is_one_line_with_the_way(shared_dir: Path):
    """Run as a user who cannot read the config: one line that says so and how (sudo -u sitekeeper ...).
    (As `nobody` under the system's Python, which can import the config module: the test venv is root's.)"""
    cfg = shared_dir / "sitekeeper.toml"
    cfg.write_text('[site]\nid = "s1"\n')
    cfg.chmod(0o600)
    repo = readable_copy(shared_dir, "edge/__init__.py", "edge/config.py", "edge/security.py", "edge/money.py")
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); from edge import config\n"
             "try:\n config.load(sys.argv[2])\nexcept config.ConfigError as e:\n print(e)")
    out = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", probe, str(repo), str(cfg)],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == (f"cannot read {cfg} as nobody (run as the service user: sudo -u sitekeeper"
                                  " sitekeeper ..., see docs/operations.md)"), out.stdout + out.stderr
