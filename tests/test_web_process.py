"""The web app's own process: it goes with the daemon however the daemon ends (a restarted edge gets its web
port back at once), and a web process that dies is started again while the chargers stay connected."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

from peers import Charger


def web_children(pid: int) -> list[int]:
    """The daemon's web process(es): its children started by multiprocessing's spawn."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"multiprocessing.spawn" in cmdline:
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and " Z " not in Path(f"/proc/{pid}/stat").read_text()


def healthz(port: int) -> int:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status
    except (urllib.error.URLError, OSError):
        return 0


def test_the_web_process_ends_with_a_killed_daemon_and_the_next_start_gets_its_port(edge_factory):
    edge = edge_factory()
    assert edge.proc is not None
    children = web_children(edge.proc.pid)
    assert len(children) == 1, "one web process"
    edge.kill9()
    deadline = time.time() + 5
    while any(alive(p) for p in children) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in children), "the web process outlived a kill -9 of the daemon"
    assert healthz(edge.web_port) == 0, "nothing answers on the web port while the edge is down"
    edge.start()  # on the same ports: the old web process would have held its port
    assert healthz(edge.web_port) == 200


async def test_a_web_process_that_dies_is_started_again_and_chargers_stay_connected(edge_factory):
    edge = edge_factory()
    charger = await Charger(edge.url, "CP-WEB").connect()
    try:
        await charger.boot16()
        assert edge.proc is not None
        (child,) = web_children(edge.proc.pid)
        os.kill(child, signal.SIGKILL)
        deadline = time.time() + 20
        while not (healthz(edge.web_port) == 200 and web_children(edge.proc.pid)) and time.time() < deadline:
            await asyncio.sleep(0.1)
        assert healthz(edge.web_port) == 200, edge.log()
        assert web_children(edge.proc.pid) != [child]
        assert "the web process ended" in edge.log()
        answer = await charger.raw('[2, "hb-1", "Heartbeat", {}]')  # its connection never noticed
        assert answer[0] == 3 and "currentTime" in answer[2]
        assert json.loads(edge.http("/healthz"))["chargers_connected"] == 1
    finally:
        await charger.close()
