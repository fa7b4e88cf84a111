"""Small helpers shared by the benchmark scripts in bench/ (not by the edge): open-files limit, free ports,
percentiles, OCPP timestamps, and the "ready" line a helper process prints once it listens.

Not run on its own; imported by bench/proxy.py, bench/loadgen.py, bench/light_csms.py and bench/relay.py.
"""

from __future__ import annotations

import math
import resource
import socket
import time
from collections.abc import Sequence

READY = "ready port="


def raise_nofile(want: int = 65536) -> int:
    """Raise this process's RLIMIT_NOFILE soft limit as far as allowed (children inherit it); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100, nearest-rank) of already sorted values; NaN when there are none."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class Clock:
    """An OCPP timestamp string, recomputed at most once a second (cheap enough to call per message)."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        t = int(time.time())
        if t != self._second:
            self._second = t
            self._text = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))
        return self._text
