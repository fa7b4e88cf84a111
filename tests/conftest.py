"""Shared test fixtures: free ports, TOML config files, and the real edge daemon as a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITEKEEPER = str(Path(sys.executable).parent / "sitekeeper")


async def wait_for(predicate, timeout: float = 15.0, what: str = "condition") -> None:
    """Wait (on the running loop) until `predicate()` is true; fail naming `what` after `timeout` seconds."""
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def wait_until(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    """`wait_for` for code that is not on an event loop (a thread, a synchronous test)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(v)


def to_toml(data: dict, prefix: str = "") -> str:
    """A small TOML writer for test configs (tables of scalars, nested tables)."""
    lines: list[str] = []
    def is_table_list(v: object) -> bool:
        return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)

    scalars = {k: v for k, v in data.items() if not isinstance(v, dict) and not is_table_list(v)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    table_lists = {k: v for k, v in data.items() if is_table_list(v)}
    if prefix and scalars:
        lines.append(f"[{prefix}]")
    for k, v in scalars.items():
        lines.append(f"{k} = {_toml_value(v)}")
    for k, v in table_lists.items():
        for item in v:
            lines.append(f"[[{prefix}.{k}]]" if prefix else f"[[{k}]]")
            lines += [f"{ik} = {_toml_value(iv)}" for ik, iv in item.items()]
    for k, v in tables.items():
        key = f'"{k}"' if not k.replace("_", "").replace("-", "").isalnum() or "." in k else k
        lines.append(to_toml(v, f"{prefix}.{key}" if prefix else key))
    return "\n".join(lines) + "\n"


class EdgeProcess:
    """`sitekeeper run` in a subprocess with its own config and database, on free ports."""

    def __init__(self, workdir: Path, config: dict):
        self.workdir = workdir
        self.config = config
        config.setdefault("store", {}).setdefault("path", str(workdir / "site.db"))
        # tests read what they just sent: meter samples are committed within half a second, not the default
        # 30 (the delay itself is tested with its default in test_store_writes.py)
        config["store"].setdefault("background_delay", 0.5)
        config.setdefault("ocpp", {}).setdefault("port", free_port())
        config.setdefault("web", {}).setdefault("port", free_port())
        self.ocpp_port = config["ocpp"]["port"]
        self.web_port = config["web"]["port"]
        self.config_path = workdir / "sitekeeper.toml"
        self.config_path.write_text(to_toml(config))
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "edge.log"

    @property
    def url(self) -> str:
        scheme = "wss" if self.config.get("ocpp", {}).get("security_profile", 0) >= 2 else "ws"
        return f"{scheme}://127.0.0.1:{self.ocpp_port}/ocpp"

    @property
    def db_path(self) -> str:
        return self.config["store"]["path"]

    def start(self, timeout: float = 20) -> EdgeProcess:
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen([SITEKEEPER, "--config", str(self.config_path), "run"], stdout=log,
                                     stderr=subprocess.STDOUT, cwd=self.workdir, env={**os.environ})
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"edge exited with {self.proc.returncode}:\n{self.log()}")
            if "ready: ocpp=" in self.log():
                try:
                    web = self.config.get("web", {})
                    host, scheme = web.get("host", "127.0.0.1"), "https" if web.get("tls_cert") else "http"
                    context = ssl._create_unverified_context() if scheme == "https" else None  # its own test CA
                    urllib.request.urlopen(f"{scheme}://{host}:{self.web_port}/healthz", timeout=2,
                                           context=context).read()
                    return self
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"edge did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def http(self, path: str, token: str | None = None) -> str:
        """GET `path` (an /api/ one with the edge's local token, unless `token` is given)."""
        host = self.config.get("web", {}).get("host", "127.0.0.1")
        req = urllib.request.Request(f"http://{host}:{self.web_port}{path}")
        token = token if token is not None else self.token if path.startswith("/api/") else None
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        return urllib.request.urlopen(req, timeout=5).read().decode()

    @property
    def token(self) -> str:
        """The edge's local API token (role owner), as the kiosk and the CLI on the Pi read it."""
        from edge.operations.tokens import read_local

        token = read_local(self.db_path)
        assert token, "the edge wrote no local token"
        return token

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None
        # the ready line of the next start must be a new one
        self.log_path.write_text(self.log().replace("ready: ocpp=", "was ready: ocpp_"))

    def stop(self) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
        self.proc = None
        self.log_path.write_text(self.log().replace("ready: ocpp=", "was ready: ocpp_"))
        return code

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        import sqlite3

        conn = sqlite3.connect(self.db_path, timeout=10)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()


@pytest.fixture
def edge_factory(tmp_path):
    started: list[EdgeProcess] = []

    def make(config: dict | None = None, start: bool = True) -> EdgeProcess:
        workdir = tmp_path / f"edge{len(started)}"
        workdir.mkdir()
        proc = EdgeProcess(workdir, config or {})
        started.append(proc)
        return proc.start() if start else proc

    yield make
    for proc in started:
        if proc.proc is not None:
            proc.stop()


# -- MQTT: a real mosquitto broker (tests/broker.py) --------------------------------------------------------
@pytest.fixture
def broker_factory(tmp_path):
    """make(users=None, tls=False, **kw) -> a started Broker in tmp_path; all are stopped at the end."""
    from broker import Broker

    made: list[Broker] = []

    def make(start: bool = True, **kwargs) -> Broker:
        b = Broker(tmp_path / f"mosquitto{len(made)}", **kwargs)
        made.append(b)
        return b.start() if start else b

    yield make
    for b in made:
        b.stop()


@pytest.fixture
def broker(broker_factory):
    """A started anonymous plain-TCP mosquitto on 127.0.0.1:<free port> with persistence; stopped at the end."""
    return broker_factory()
