"""The edge as systemd runs it (Type=notify, WatchdogSec=): `READY=1` only once it listens, `WATCHDOG=1` from
its event loop every half watchdog time, `STOPPING=1` at SIGTERM; a loop that stops (here: the process
stopped) sends no more. Over a real notify socket, as systemd gives one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request

from conftest import SITEKEEPER

from edge.notify import Pinger, notify, watchdog_interval


def test_edge_says_ready_then_keeps_alive_then_stopping(edge_factory, tmp_path):
    edge = edge_factory(start=False)
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(20)
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}
    proc = subprocess.Popen([SITEKEEPER, "--config", str(edge.config_path), "run"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready = sock.recv(4096).decode()
        assert ready.startswith("READY=1") and f"port {edge.ocpp_port}" in ready
        urllib.request.urlopen(f"http://127.0.0.1:{edge.web_port}/healthz", timeout=5).read()  # it listens
        began = time.monotonic()
        pings = [sock.recv(64) for _ in range(3)]
        assert pings == [b"WATCHDOG=1"] * 3 and 0.8 < time.monotonic() - began < 3.5, "every half second"
        proc.send_signal(signal.SIGSTOP)  # a loop that does not run sends nothing: systemd would restart it
        sock.settimeout(1.5)
        try:
            stray = [sock.recv(64) for _ in range(3)]
        except TimeoutError:
            stray = []
        assert len(stray) <= 1, "at most one already on its way"
        proc.send_signal(signal.SIGCONT)
        sock.settimeout(20)
        proc.send_signal(signal.SIGTERM)
        said = b""
        while b"STOPPING=1" not in said:
            said = sock.recv(64)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()


def test_outside_systemd_nothing_is_sent(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.setenv("WATCHDOG_PID", "1")  # another process's watchdog
    assert notify("READY=1") is False and watchdog_interval() is None
    Pinger()()  # does nothing, raises nothing
