"""The benchmarks' load generator: simulated OCPP 1.6J chargers, many per process, on plain `websockets`.

Frames are built from string templates and answers are matched by prefix (only StartTransaction's answer is
JSON-decoded), so that one process can drive a thousand chargers without becoming the bottleneck. Each
charger has at most one CALL outstanding. A CALL the server sends is answered (generic result) and the
charger goes on waiting for its own answer. Latency is measured per CALL with `time.perf_counter`, from just
before `send` to the answer's arrival.

Modes (bench/proxy.py runs them as subprocesses; they can be run by hand as well)::

    loadgen.py latency    --url WS --calls N        one charger: N Heartbeats, then N StartTransactions (each
                                                    followed by an unmeasured StopTransaction)
    loadgen.py throughput --url WS --chargers N --seconds S [--warmup W]
                                                    N chargers back to back, cycling Heartbeat,
                                                    Status(Preparing), StartTransaction, Status(Charging),
                                                    4× MeterValues, StopTransaction, Status(Available)
    loadgen.py hold       --url WS --chargers N --seconds S [--interval I]
                                                    N chargers connected for S seconds, a Heartbeat every I s

Every charger first connects (at most --concurrency handshakes at a time) and sends BootNotification and
StatusNotification(Available), unmeasured. Output, on stdout, one JSON object a line: ``{"event":
"connected"}``, ``{"event": "start", "label": L}`` and ``{"event": "end", "label": L}`` around each
measured window (so that the caller can sample other processes' CPU use over exactly that window), then
``{"event": "result", ...}`` with counts, errors, latency percentiles (ms) and this process's CPU use over
each window (psutil cpu_times / wall time, 100 = one core).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from array import array
from typing import Any

import psutil
from benchutil import Clock, percentile, raise_nofile
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

_clock = Clock()
_proc = psutil.Process()


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class CallFailed(Exception):
    """A CALLERROR, an answer to another id, or a closed connection while waiting."""


class Stopped(Exception):
    """The run is over: the charger stops before sending its next CALL."""


class Recorder:
    """Latencies (seconds) and counts of the calls completed while `on` is set; errors always."""

    def __init__(self) -> None:
        self.on = False
        self.running = True
        self.lat = array("d")
        self.by_action: dict[str, array] = {}
        self.per_action = False
        self.errors = 0
        self.error_kinds: dict[str, int] = {}
        self.window_start = 0.0
        self.cpu_start = 0.0

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1

    def start(self, label: str) -> None:
        self.lat = array("d")
        self.by_action = {}
        t = _proc.cpu_times()
        self.cpu_start = t.user + t.system
        self.window_start = time.perf_counter()
        self.on = True
        emit({"event": "start", "label": label})

    def stop(self, label: str) -> dict[str, Any]:
        self.on = False
        wall = time.perf_counter() - self.window_start
        t = _proc.cpu_times()
        emit({"event": "end", "label": label})
        lat = sorted(self.lat)
        out: dict[str, Any] = {"label": label, "calls": len(lat), "seconds": wall,
                               "rate": len(lat) / wall if wall > 0 else 0.0,
                               "cpu_pct": 100 * (t.user + t.system - self.cpu_start) / wall if wall > 0 else 0.0,
                               **summary(lat)}
        if self.per_action:
            out["by_action"] = {a: summary(sorted(v)) | {"calls": len(v)} for a, v in self.by_action.items()}
        return out


def summary(sorted_lat: list[float]) -> dict[str, float]:
    return {"p50_ms": 1000 * percentile(sorted_lat, 50), "p99_ms": 1000 * percentile(sorted_lat, 99),
            "max_ms": 1000 * sorted_lat[-1] if sorted_lat else float("nan")}


class Charger:
    """One simulated 1.6 charger with one connector."""

    __slots__ = ("url", "cid", "rec", "ws", "n", "sent_at", "meter", "id_tag", "tx", "timed_out")

    def __init__(self, base_url: str, cid: str, rec: Recorder):
        self.url = base_url.rstrip("/") + "/" + cid
        self.cid = cid
        self.rec = rec
        self.ws: ClientConnection | None = None
        self.n = 0
        self.sent_at = 0.0  # perf_counter of the outstanding CALL, 0 when none
        self.meter = random.randint(0, 1_000_000)
        self.id_tag = "04" + cid[-8:].upper().replace("-", "0").rjust(8, "0")
        self.tx = 0
        self.timed_out = False

    async def connect(self, timeout: float) -> None:
        self.ws = await connect(self.url, subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                                compression=None, ping_interval=None, open_timeout=timeout, max_size=2**20,
                                proxy=None, user_agent_header=None)

    async def call(self, action: str, payload: str) -> str:
        """Send one CALL and return the text of its CALLRESULT; record its latency if the recorder is on."""
        rec = self.rec
        if not rec.running:
            raise Stopped
        ws = self.ws
        assert ws is not None
        self.n += 1
        msg_id = str(self.n)
        t0 = time.perf_counter()
        self.sent_at = t0
        try:
            await ws.send(f'[2,"{msg_id}","{action}",{payload}]')
            while True:
                raw = await ws.recv()
                if isinstance(raw, bytes):
                    raw = raw.decode()
                if raw.startswith("[2,"):  # the server's own CALL: answer it, keep waiting for ours
                    await ws.send(_answer_server_call(raw))
                    continue
                break
        except ConnectionClosed as e:
            self.sent_at = 0.0
            raise CallFailed("timeout" if self.timed_out else "closed") from e
        dt = time.perf_counter() - t0
        self.sent_at = 0.0
        if not raw.startswith(f'[3,"{msg_id}"'):
            if raw.startswith("[4,"):
                raise CallFailed("callerror:" + raw[:160])
            msg = json.loads(raw)
            if msg[0] != 3 or msg[1] != msg_id:
                raise CallFailed("unexpected:" + raw[:160])
        if rec.on:
            rec.lat.append(dt)
            if rec.per_action:
                rec.by_action.setdefault(action, array("d")).append(dt)
        return raw

    # -- the messages ----------------------------------------------------------------------------------
    async def boot(self) -> None:
        await self.call("BootNotification", '{"chargePointVendor":"bench","chargePointModel":"loadgen",'
                                            f'"chargePointSerialNumber":"{self.cid}"}}')
        await self.status("Available")

    async def status(self, status: str) -> None:
        await self.call("StatusNotification", f'{{"connectorId":1,"errorCode":"NoError","status":"{status}",'
                                              f'"timestamp":"{_clock.now()}"}}')

    async def heartbeat(self) -> None:
        await self.call("Heartbeat", "{}")

    async def start(self) -> None:
        raw = await self.call("StartTransaction", f'{{"connectorId":1,"idTag":"{self.id_tag}",'
                                                  f'"meterStart":{self.meter},"timestamp":"{_clock.now()}"}}')
        self.tx = int(json.loads(raw)[2]["transactionId"])

    async def meter_values(self) -> None:
        self.meter += 37
        await self.call("MeterValues", f'{{"connectorId":1,"transactionId":{self.tx},"meterValue":[{{"timestamp":'
                                       f'"{_clock.now()}","sampledValue":[{{"value":"{self.meter}","context":'
                                       '"Sample.Periodic","measurand":"Energy.Active.Import.Register",'
                                       '"unit":"Wh"}]}]}')

    async def stop(self) -> None:
        self.meter += 37
        await self.call("StopTransaction", f'{{"transactionId":{self.tx},"idTag":"{self.id_tag}",'
                                           f'"meterStop":{self.meter},"timestamp":"{_clock.now()}",'
                                           '"reason":"Local"}')

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)


def _answer_server_call(raw: str) -> str:
    msg = json.loads(raw)
    action = msg[2]
    payload: dict[str, Any] = {"status": "Accepted"}
    if action == "GetTransactionStatus":
        payload = {"messagesInQueue": False}
    return json.dumps([3, msg[1], payload])


# -- running many chargers ---------------------------------------------------------------------------------
async def _watchdog(chargers: list[Charger], rec: Recorder, timeout: float) -> None:
    """Close the connection of a charger whose CALL went unanswered for `timeout` seconds."""
    while True:
        await asyncio.sleep(1.0)
        now = time.perf_counter()
        for ch in chargers:
            if ch.sent_at and now - ch.sent_at > timeout and not ch.timed_out and ch.ws is not None:
                ch.timed_out = True
                asyncio.create_task(ch.ws.close(1000, "call timeout"))


async def connect_all(url: str, prefix: str, count: int, rec: Recorder, concurrency: int,
                      timeout: float) -> tuple[list[Charger], float]:
    """Connect and boot `count` chargers, `concurrency` at a time; return those that made it and the time."""
    sem = asyncio.Semaphore(concurrency)
    chargers = [Charger(url, f"{prefix}{i:05d}", rec) for i in range(1, count + 1)]
    ok: list[Charger] = []

    async def one(ch: Charger) -> None:
        async with sem:
            try:
                await ch.connect(timeout)
            except Exception as e:  # refused, timed out, reset: one error, the others go on
                rec.error(f"connect:{type(e).__name__}")
                return
        try:
            await ch.boot()
            ok.append(ch)
        except Exception as e:  # a CALLERROR or a closed connection: one error
            rec.error(f"boot:{e}"[:60])

    t0 = time.perf_counter()
    await asyncio.gather(*(one(ch) for ch in chargers))
    return ok, time.perf_counter() - t0


async def _close_all(chargers: list[Charger]) -> None:
    await asyncio.gather(*(ch.close() for ch in chargers))


async def cycle(ch: Charger, rec: Recorder) -> None:
    """Back-to-back CALLs: Heartbeat, Preparing, Start, Charging, 4× MeterValues, Stop, Available; repeat."""
    try:
        while True:
            try:
                await ch.heartbeat()
                await ch.status("Preparing")
                await ch.start()
                await ch.status("Charging")
                for _ in range(4):
                    await ch.meter_values()
                await ch.stop()
                await ch.status("Available")
            except CallFailed as e:
                rec.error(str(e).split(":", 1)[0])
                if ch.ws is None or ch.ws.state.name != "OPEN":
                    return
    except Stopped:
        return


async def run_latency(args: argparse.Namespace) -> dict[str, Any]:
    rec = Recorder()
    chargers, _ = await connect_all(args.url, args.prefix, 1, rec, 1, args.timeout)
    if not chargers:
        return {"errors": rec.errors, "error_kinds": rec.error_kinds}
    ch = chargers[0]
    for _ in range(args.warmup_calls):
        await ch.heartbeat()
        await ch.start()
        await ch.stop()
    out: dict[str, Any] = {}
    rec.start("Heartbeat")
    for _ in range(args.calls):
        await ch.heartbeat()
    out["Heartbeat"] = rec.stop("Heartbeat")
    # StartTransaction: time only the Start; the Stop that follows keeps the charger realistic (one open tx)
    lat = array("d")
    rec.start("StartTransaction")
    for _ in range(args.calls):
        rec.on = True
        await ch.start()
        rec.on = False
        lat.append(rec.lat.pop())
        await ch.stop()
    rec.lat = lat
    out["StartTransaction"] = rec.stop("StartTransaction")
    await ch.close()
    return out | {"errors": rec.errors, "error_kinds": rec.error_kinds}


async def run_throughput(args: argparse.Namespace) -> dict[str, Any]:
    rec = Recorder()
    rec.per_action = True
    chargers, connect_s = await connect_all(args.url, args.prefix, args.chargers, rec, args.concurrency,
                                            args.timeout)
    emit({"event": "connected", "chargers": len(chargers), "seconds": connect_s})
    watchdog = asyncio.create_task(_watchdog(chargers, rec, args.timeout))
    tasks = [asyncio.create_task(cycle(ch, rec)) for ch in chargers]
    await asyncio.sleep(args.warmup)
    rec.start("throughput")
    await asyncio.sleep(args.seconds)
    window = rec.stop("throughput")
    rec.running = False
    _, pending = await asyncio.wait(tasks, timeout=args.timeout)
    for t in pending:
        t.cancel()
    watchdog.cancel()
    await _close_all(chargers)
    return {"throughput": window, "connected": len(chargers), "connect_s": connect_s,
            "errors": rec.errors, "error_kinds": rec.error_kinds}


async def run_hold(args: argparse.Namespace) -> dict[str, Any]:
    rec = Recorder()
    chargers, connect_s = await connect_all(args.url, args.prefix, args.chargers, rec, args.concurrency,
                                            args.timeout)
    emit({"event": "connected", "chargers": len(chargers), "seconds": connect_s})
    watchdog = asyncio.create_task(_watchdog(chargers, rec, args.timeout))
    deadline = time.monotonic() + args.seconds

    async def hold(ch: Charger) -> None:
        await asyncio.sleep(random.uniform(0, args.interval))
        while time.monotonic() < deadline:
            try:
                await ch.heartbeat()
            except CallFailed as e:
                rec.error(str(e).split(":", 1)[0])
                if ch.ws is None or ch.ws.state.name != "OPEN":
                    return
            await asyncio.sleep(min(args.interval, max(0.0, deadline - time.monotonic())))

    rec.start("hold")
    await asyncio.gather(*(hold(ch) for ch in chargers))
    window = rec.stop("hold")
    # Still there? Every charger that connected sends one last Heartbeat on the same connection.
    alive = 0

    async def last(ch: Charger) -> None:
        nonlocal alive
        try:
            await ch.heartbeat()
            alive += 1
        except CallFailed as e:
            rec.error("final:" + str(e).split(":", 1)[0])

    await asyncio.gather(*(last(ch) for ch in chargers))
    watchdog.cancel()
    await _close_all(chargers)
    return {"hold": window, "connected": len(chargers), "alive_at_end": alive, "connect_s": connect_s,
            "errors": rec.errors, "error_kinds": rec.error_kinds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["latency", "throughput", "hold"])
    p.add_argument("--url", required=True, help="the chargers' endpoint, e.g. ws://127.0.0.1:9000/ocpp")
    p.add_argument("--prefix", default="BENCH", help="charger id prefix")
    p.add_argument("--chargers", type=int, default=1)
    p.add_argument("--calls", type=int, default=2000, help="latency: measured calls of each kind")
    p.add_argument("--warmup-calls", type=int, default=100, help="latency: unmeasured Heartbeat/Start/Stop rounds")
    p.add_argument("--seconds", type=float, default=10.0, help="throughput/hold: measured seconds")
    p.add_argument("--warmup", type=float, default=2.0, help="throughput: seconds of load before measuring")
    p.add_argument("--interval", type=float, default=10.0, help="hold: seconds between a charger's Heartbeats")
    p.add_argument("--concurrency", type=int, default=50, help="handshakes in flight while connecting")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a call or a connect fails")
    args = p.parse_args()
    raise_nofile()
    runner = {"latency": run_latency, "throughput": run_throughput, "hold": run_hold}[args.mode]
    result = asyncio.run(runner(args))
    emit({"event": "result", **result})


if __name__ == "__main__":
    main()
