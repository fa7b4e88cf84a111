"""Small helpers shared by the benchmark scripts in bench/ (not by the edge): open-files limit, free ports,
percentiles, OCPP timestamps, the "ready" line a helper process prints once it listens, and a minimal HTTP
client.

Not run on its own; imported by bench/proxy.py, bench/loadgen.py, bench/light_csms.py and bench/relay.py.
"""

from __future__ import annotations

import asyncio
import json
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


class Http:
    """A minimal HTTP/1.1 client on one keep-alive connection (asyncio streams): a benchmark's own requests
    cost it a few tens of microseconds, where a full client (httpx) costs milliseconds, which would then be
    what is measured. Knows Content-Length bodies only (what uvicorn answers JSON with)."""

    def __init__(self, port: int, headers: dict[str, str] | None = None, host: str = "127.0.0.1"):
        self.host, self.port = host, port
        self.head = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: object = None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = b"" if body is None else json.dumps(body).encode()
        kind = "Content-Type: application/json\r\n" if body is not None else ""
        self.writer.write(f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.head}{kind}"
                          f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(int(v) for k, _, v in (line.partition(":") for line in lines[1:])
                      if k.lower() == "content-length")
        return status, await self.reader.readexactly(length)

    async def aclose(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
