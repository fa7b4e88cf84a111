"""Small helpers shared by the benchmark scripts in bench/ (not by the edge): open-files limit, free ports,
percentiles, OCPP timestamps, the "ready" line a helper process prints once it listens, a minimal HTTP
client, a 1.6 charger that answers the edge's calls, and a standalone edge started for a benchmark.

Not run on its own; imported by the scripts of bench/.
"""

from __future__ import annotations

import asyncio
import json
import math
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import websockets

READY = "ready port="
SITEKEEPER = Path(sys.executable).parent / "sitekeeper"


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

    async def request(self, method: str, path: str, body: object = None,
                      headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """`body`: JSON to send (bytes: sent as they are, as JSON); `headers`: this request's own."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        kind = "Content-Type: application/json\r\n" if body is not None else ""
        own = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.writer.write(f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.head}{own}{kind}"
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


class Charger:
    """A 1.6 charger that answers each CALL (at once, or after `delay` seconds, as a real charger takes its
    time) and keeps how long its own part took."""

    def __init__(self, url: str, charger_id: str, delay: float = 0.0):
        self.url, self.charger_id, self.delay = f"{url}/{charger_id}", charger_id, delay
        self.own: dict[str, float] = {}  # msg id → seconds from the CALL's arrival to the answer sent
        self.pending: dict[str, asyncio.Future] = {}
        self.last: list | None = None
        self.ws = None

    async def connect(self) -> Charger:
        self.ws = await websockets.connect(self.url, subprotocols=["ocpp1.6"], max_queue=None)
        asyncio.get_running_loop().create_task(self._read())
        await self.call("BootNotification", {"chargePointVendor": "bench", "chargePointModel": "ops"})
        return self

    async def _read(self) -> None:
        async for raw in self.ws:
            arrived = time.perf_counter()
            msg = json.loads(raw)
            if msg[0] == 2:
                answer = {"listVersion": 0} if msg[2] == "GetLocalListVersion" else {"status": "Accepted"}
                if self.delay:
                    asyncio.get_running_loop().call_later(self.delay, self._answer, msg[1], answer)
                else:
                    await self.ws.send(json.dumps([3, msg[1], answer]))
                    self.own[msg[1]] = time.perf_counter() - arrived
            elif msg[1] in self.pending:
                self.pending.pop(msg[1]).set_result(msg)

    def _answer(self, msg_id: str, answer: dict) -> None:
        asyncio.get_running_loop().create_task(self.ws.send(json.dumps([3, msg_id, answer])))

    async def call(self, action: str, payload: dict) -> float:
        msg_id = f"{time.perf_counter_ns()}"
        fut = asyncio.get_running_loop().create_future()
        self.pending[msg_id] = fut
        began = time.perf_counter()
        await self.ws.send(json.dumps([2, msg_id, action, payload]))
        self.last = await fut  # the CALLRESULT (or CALLERROR) frame
        return time.perf_counter() - began


def start_edge(work: Path, site: str = "bench-ops", db: Path | None = None,
               extra: str = "", store: str = "") -> tuple[subprocess.Popen, int, int]:
    """`sitekeeper run` on a standalone site in `work` (its database `db`, default `work/site.db`; `extra`: more
    TOML tables; `store`: more [store] keys), once it says it is ready: (the process, its OCPP port, its web port). Its local API token is
    `work/local-api.token`."""
    ocpp, web = free_port(), free_port()
    (work / "sitekeeper.toml").write_text(
        f'[site]\nid = "{site}"\ntimezone = "Asia/Manila"\n[store]\npath = "{db or work / "site.db"}"\n{store}'
        f'[ocpp]\nhost = "127.0.0.1"\nport = {ocpp}\n[web]\nhost = "127.0.0.1"\nport = {web}\n'
        '[billing]\npush_local_list = false\n' + extra)
    proc = subprocess.Popen([str(SITEKEEPER), "--config", str(work / "sitekeeper.toml"), "run"],
                            stdout=open(work / "edge.log", "w"), stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while "ready: ocpp=" not in (work / "edge.log").read_text():
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"the edge did not start:\n{(work / 'edge.log').read_text()}")
        time.sleep(0.05)
    return proc, ocpp, web


def ms(values: Sequence[float], q: float) -> float:
    """The q-th percentile of `values` (seconds, any order) in milliseconds."""
    return percentile(sorted(values), q) * 1000


async def heartbeats(chargers: Sequence[Charger], seconds: float) -> list[float]:
    """Round trips (seconds) of Heartbeats sent by `chargers` one after the other for `seconds`."""
    rtts = []
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        for ch in chargers:
            rtts.append(await ch.call("Heartbeat", {}))
    return rtts


async def heartbeats_beside(load: Sequence[str], chargers: Sequence[Charger], seconds: float
                            ) -> tuple[list[float], int]:
    """Heartbeats of `chargers` for `seconds` while a load runs in another process (`python *load`): the load
    prints "started" once under way, then, when done, the number of things it did; (round trips, that number)."""
    proc = await asyncio.create_subprocess_exec(sys.executable, *load, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    assert (await proc.stdout.readline()).strip() == b"started"
    rtts = await heartbeats(chargers, seconds)
    done = int((await proc.stdout.readline()).strip() or 0)
    await proc.wait()
    return rtts, done
