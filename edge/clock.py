"""Time: `now_iso()` for every timestamp the edge writes, and facts about this machine's clock that every
record carries (a Pi has no RTC): the boot id and whether the kernel says the clock is synchronised
(adjtimex: TIME_ERROR means not synchronised)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import time
import uuid
from datetime import UTC, datetime

TIME_ERROR = 5


@functools.cache
def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return "unknown-" + uuid.uuid4().hex[:12]  # one value per process where the kernel does not tell


@functools.cache
def _libc():
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name, use_errno=True) if name else None


def clock_synced() -> bool:
    libc = _libc()
    if libc is None or not hasattr(libc, "adjtimex"):
        return False
    buf = ctypes.create_string_buffer(512)  # struct timex, modes = 0: read only
    state = libc.adjtimex(buf)
    return 0 <= state != TIME_ERROR


_seconds: dict[int, str] = {}


def now_iso(now: float | None = None) -> str:
    """UTC time as ISO-8601 with milliseconds and a ``Z``. The part up to the second is cached for the last
    few seconds: this runs for every frame, on the loop for now and on the writer thread for a moment ago."""
    now = time.time() if now is None else now
    whole = int(now)
    head = _seconds.get(whole)
    if head is None:
        if len(_seconds) > 8:
            _seconds.clear()
        head = _seconds[whole] = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
    return f"{head}{int((now - whole) * 1000):03d}Z"


def parse_ts(text: str | None) -> datetime | None:
    """An ISO-8601 time as an aware datetime (a charger's time without a zone is UTC); None if unreadable."""
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
