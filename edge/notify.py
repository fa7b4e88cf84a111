"""systemd's service notifications (sd_notify), without a dependency: `READY=1` once the daemon can do its
job, `RELOADING=1`/`READY=1` around a reload, `STOPPING=1`, and `WATCHDOG=1` keep-alives sent from the event
loop itself, so that a hung loop stops them and systemd restarts the service (`WatchdogSec=`), while a loop
that is only busy still gets them out. Outside systemd (no `$NOTIFY_SOCKET`) every call does nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable


def notify(state: str) -> bool:
    """Send `state` ("READY=1", ...) to systemd; False when not run by it (or it cannot be reached)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
        return True
    except OSError:
        return False


def watchdog_interval() -> float | None:
    """Half of systemd's watchdog time for this process (seconds), or None when there is none."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    with contextlib.suppress(ValueError):
        return int(usec) / 2_000_000
    return None


async def keep_alive(healthy: Callable[[], bool] = lambda: True) -> None:
    """Tell systemd the loop is alive every half watchdog time, while `healthy()` (a daemon that cannot do its
    job lets the watchdog restart it)."""
    interval = watchdog_interval()
    if interval is None:
        return
    while True:
        if healthy():
            notify("WATCHDOG=1")
        await asyncio.sleep(interval)


class Pinger:
    """For a loop that is not asyncio's (the sync service's, the kiosk's): call it every turn; it sends
    `WATCHDOG=1` once per half watchdog time."""

    def __init__(self) -> None:
        self.interval = watchdog_interval()
        self._next = 0.0

    def __call__(self) -> None:
        if self.interval is None:
            return
        now = time.monotonic()
        if now >= self._next:
            notify("WATCHDOG=1")
            self._next = now + self.interval
