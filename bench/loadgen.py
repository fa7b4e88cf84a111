"""The benchmarks' load generator: simulated OCPP 1.6J chargers, many per process, on `websockets`.

Connections are plain `websockets` asyncio clients (not the `ocpp` package), frames are built from string
templates and answers are matched by prefix (only StartTransaction's answer is JSON-decoded), so that one
process can drive thousands of chargers cheaply: per CALL it costs about what the light CSMS costs to answer
it (both are dominated by the send/recv system calls; a Sans-I/O client measured no cheaper). Each
charger has at most one CALL outstanding; a CALL the server sends is answered (generic result) and the
charger goes on waiting for its own answer. Latency is measured per CALL with `time.perf_counter`, from just
before `send` to the answer's arrival.

Several targets (``--url`` repeated, each named with ``--name``) are measured in the same process and
*interleaved*, so that load from other work on the machine falls on all of them alike:

    loadgen.py latency    --url WS [--url WS ...] --calls N
        one charger per target; N rounds of one Heartbeat to each target in turn, then N rounds of one
        StartTransaction to each (each followed by an unmeasured StopTransaction)
    loadgen.py throughput --url WS [--url WS ...] --chargers N --rounds R --seconds S --warmup W
        N chargers per target, all connected up front; R rounds, each giving every target in turn (order
        rotating) W seconds of warm-up and S measured seconds of load while the other targets' chargers
        idle. Each charger sends back to back: Heartbeat, Status(Preparing), StartTransaction,
        Status(Charging), 4× MeterValues, StopTransaction, Status(Available), again and again, from a
        random first step (the chargers are out of phase) and on from where it stopped at the next turn
    loadgen.py hold       --url WS --chargers N --seconds S --interval I
        N chargers connected for S seconds with a Heartbeat each every I s, then one last Heartbeat each

Every charger first connects (at most --concurrency handshakes in flight) and sends BootNotification and
StatusNotification(Available), unmeasured. Output, on stdout, one JSON object a line: ``{"event":
"connected"}``; ``{"event": "start", "label": L}`` and ``{"event": "end", "label": L}`` around each measured
window (labels ``Heartbeat``/``StartTransaction``, ``NAME#ROUND`` or ``hold``) so that the caller can sample
other processes' CPU use over exactly that window; finally ``{"event": "result", ...}`` with counts, errors,
latency percentiles (ms) and this process's own CPU use (psutil cpu_times / wall, 100 = one core).
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
from websockets.protocol import State
from websockets.typing import Subprotocol

_clock = Clock()
_proc = psutil.Process()


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def summary(lat: array | list[float]) -> dict[str, float]:
    """Count, p50/p99/max in ms of latencies in seconds."""
    s = sorted(lat)
    return {"calls": len(s), "p50_ms": 1000 * percentile(s, 50), "p99_ms": 1000 * percentile(s, 99),
            "max_ms": 1000 * s[-1] if s else float("nan")}


class CallFailed(Exception):
    """A CALLERROR, an answer to another id, or a closed connection while waiting."""


class Stopped(Exception):
    """The target's turn is over: the charger stops before sending its next CALL."""


class Recorder:
    """One target's latencies (seconds) while `on`, its errors, and whether its chargers may go on."""

    def __init__(self) -> None:
        self.on = False
        self.running = True
        self.lat = array("d")
        self.by_action: dict[str, array] = {}
        self.errors = 0
        self.error_kinds: dict[str, int] = {}

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


class Window:
    """A measured window: announces itself and measures this process's CPU use over it."""

    def __init__(self, label: str):
        self.label = label

    def __enter__(self) -> Window:
        t = _proc.cpu_times()
        self.cpu0 = t.user + t.system
        self.t0 = time.perf_counter()
        emit({"event": "start", "label": self.label})
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        t = _proc.cpu_times()
        self.cpu = t.user + t.system - self.cpu0
        emit({"event": "end", "label": self.label})


class Charger:
    """One simulated 1.6 charger with one connector."""

    __slots__ = ("url", "cid", "rec", "ws", "n", "sent_at", "last_dt", "meter", "id_tag", "tx", "timed_out", "step")

    def __init__(self, base_url: str, cid: str, rec: Recorder):
        self.url = base_url.rstrip("/") + "/" + cid
        self.cid = cid
        self.rec = rec
        self.ws: ClientConnection | None = None
        self.n = 0
        self.sent_at = 0.0  # perf_counter of the outstanding CALL, 0 when none
        self.last_dt = 0.0
        self.meter = random.randint(0, 1_000_000)
        self.id_tag = "04" + "".join(c for c in cid if c.isalnum())[-8:].upper().rjust(8, "0")
        self.tx: int | None = None  # the open transaction
        self.timed_out = False
        self.step = random.randrange(len(CYCLE))  # where this charger is in the throughput cycle

    @property
    def open(self) -> bool:
        return self.ws is not None and self.ws.state is State.OPEN

    async def connect(self, timeout: float) -> None:
        self.ws = await connect(self.url, subprotocols=[Subprotocol("ocpp1.6")], compression=None,
                                ping_interval=None, open_timeout=timeout, max_size=2**20, proxy=None,
                                user_agent_header=None)

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
                raw = await ws.recv(decode=True)
                assert isinstance(raw, str)
                if raw.startswith("[2,"):  # the server's own CALL: answer it, keep waiting for ours
                    await ws.send(_answer_server_call(raw))
                    continue
                break
        except ConnectionClosed as e:
            self.sent_at = 0.0
            raise CallFailed("timeout" if self.timed_out else "closed") from e
        dt = self.last_dt = time.perf_counter() - t0
        self.sent_at = 0.0
        if not raw.startswith(f'[3,"{msg_id}"'):
            if raw.startswith("[4,"):
                raise CallFailed("callerror:" + raw[:160])
            msg = json.loads(raw)
            if msg[0] != 3 or msg[1] != msg_id:
                raise CallFailed("unexpected:" + raw[:160])
        if rec.on:
            rec.lat.append(dt)
            by = rec.by_action.get(action)
            if by is None:
                by = rec.by_action[action] = array("d")
            by.append(dt)
        return raw

    # -- the messages ----------------------------------------------------------------------------------
    async def boot(self) -> None:
        await self.call("BootNotification", '{"chargePointVendor":"bench","chargePointModel":"loadgen",'
                                            f'"chargePointSerialNumber":"{self.cid[-25:]}"}}')
        await self.status("Available")

    async def status(self, status: str) -> None:
        if status == "Preparing" and self.tx is not None:  # a session left open: close it first
            await self.stop()
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
        self.tx = None

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)


_SERVER_CALL_ANSWERS: dict[str, dict[str, Any]] = {
    "GetLocalListVersion": {"listVersion": 0},
    "GetConfiguration": {"configurationKey": [], "unknownKey": []},
    "GetTransactionStatus": {"messagesInQueue": False},
    "GetDiagnostics": {},
    "UpdateFirmware": {},
}


def _answer_server_call(raw: str) -> str:
    """The CALLRESULT for a CALL the server sent: "Accepted" for most 1.6 actions."""
    msg = json.loads(raw)
    return json.dumps([3, msg[1], _SERVER_CALL_ANSWERS.get(msg[2], {"status": "Accepted"})])


# -- running many chargers ---------------------------------------------------------------------------------
async def _watchdog(chargers: list[Charger], timeout: float) -> None:
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


CYCLE = ("Heartbeat", "Preparing", "Start", "Charging", "Meter", "Meter", "Meter", "Meter", "Stop", "Available")


async def cycle(ch: Charger, rec: Recorder) -> None:
    """Back to back: Heartbeat, Preparing, Start, Charging, 4× MeterValues, Stop, Available; again.

    Each charger starts the cycle at a random step (so that the chargers are out of phase and any window sees
    the whole mix) and goes on where it stopped when its target's next turn comes."""
    try:
        while True:
            step = CYCLE[ch.step]
            try:
                if step in ("Charging", "Meter", "Stop") and ch.tx is None:
                    await ch.start()  # a random first step inside a session: open one first
                if step == "Heartbeat":
                    await ch.heartbeat()
                elif step == "Start":
                    await ch.start()
                elif step == "Meter":
                    await ch.meter_values()
                elif step == "Stop":
                    await ch.stop()
                else:
                    await ch.status(step)
            except CallFailed as e:
                rec.error(str(e).split(":", 1)[0])
                if not ch.open:
                    return
            ch.step = (ch.step + 1) % len(CYCLE)
    except Stopped:
        return


def _targets(args: argparse.Namespace) -> list[tuple[str, str]]:
    names = args.name or [f"t{i}" for i in range(len(args.url))]
    if len(names) != len(args.url):
        raise SystemExit("loadgen: give one --name per --url")
    return list(zip(names, args.url, strict=True))


async def run_latency(args: argparse.Namespace) -> dict[str, Any]:
    targets = _targets(args)
    recs = {name: Recorder() for name, _ in targets}
    chargers: dict[str, Charger] = {}
    for name, url in targets:
        got, _ = await connect_all(url, f"{args.prefix}{name}-", 1, recs[name], 1, args.timeout)
        if not got:
            return {"errors": recs[name].errors, "error_kinds": recs[name].error_kinds}
        chargers[name] = got[0]
    for _ in range(args.warmup_calls):
        for ch in chargers.values():
            await ch.heartbeat()
            await ch.start()
            await ch.stop()
    out: dict[str, Any] = {}
    for action in ("Heartbeat", "StartTransaction"):
        lat = {name: array("d") for name in chargers}
        with Window(action) as w:
            for _ in range(args.calls):
                for name, ch in chargers.items():
                    if not ch.open:
                        continue
                    try:
                        if action == "Heartbeat":
                            await ch.heartbeat()
                            lat[name].append(ch.last_dt)
                        else:
                            await ch.start()
                            lat[name].append(ch.last_dt)
                            await ch.stop()
                    except CallFailed as e:  # counted; the sample is left out
                        recs[name].error(str(e).split(":", 1)[0])
        out[action] = {name: summary(v) for name, v in lat.items()}
        out[action]["cpu_pct"] = 100 * w.cpu / w.wall
    await _close_all(list(chargers.values()))
    return out | {"errors": sum(r.errors for r in recs.values()),
                  "error_kinds": {k: v for r in recs.values() for k, v in r.error_kinds.items()}}


async def run_throughput(args: argparse.Namespace) -> dict[str, Any]:
    targets = _targets(args)
    recs = {name: Recorder() for name, _ in targets}
    sets: dict[str, list[Charger]] = {}
    connect_s: dict[str, float] = {}
    for name, url in targets:
        sets[name], connect_s[name] = await connect_all(url, f"{args.prefix}{name}-", args.chargers, recs[name],
                                                        args.concurrency, args.timeout)
    emit({"event": "connected", "chargers": {n: len(s) for n, s in sets.items()}, "seconds": connect_s})
    watchdog = asyncio.create_task(_watchdog([ch for s in sets.values() for ch in s], args.timeout))
    windows: dict[str, list[dict[str, float]]] = {name: [] for name in sets}
    total = {name: array("d") for name in sets}
    by_action: dict[str, dict[str, array]] = {name: {} for name in sets}
    names = list(sets)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            rec = recs[name]
            rec.running = True
            tasks = [asyncio.create_task(cycle(ch, rec)) for ch in sets[name] if ch.open]
            await asyncio.sleep(args.warmup)
            rec.lat = array("d")
            rec.by_action = {}
            with Window(f"{name}#{r}") as w:
                rec.on = True
                await asyncio.sleep(args.seconds)
                rec.on = False
            rec.running = False
            windows[name].append({"rate": len(rec.lat) / w.wall, "seconds": w.wall, "calls": len(rec.lat),
                                  "cpu_pct": 100 * w.cpu / w.wall})
            total[name].extend(rec.lat)
            for action, lat in rec.by_action.items():
                by_action[name].setdefault(action, array("d")).extend(lat)
            _, pending = await asyncio.wait(tasks, timeout=args.timeout) if tasks else (set(), set())
            for t in pending:
                t.cancel()
    watchdog.cancel()
    for s in sets.values():
        await _close_all(s)
    out: dict[str, Any] = {}
    for name in sets:
        secs = sum(w["seconds"] for w in windows[name])
        out[name] = {"rate": len(total[name]) / secs if secs else 0.0, "windows": windows[name],
                     "connected": len(sets[name]), "connect_s": connect_s[name], "errors": recs[name].errors,
                     "error_kinds": recs[name].error_kinds, **summary(total[name]),
                     "by_action": {a: summary(v) for a, v in by_action[name].items()}}
    return {"targets": out}


async def run_hold(args: argparse.Namespace) -> dict[str, Any]:
    rec = Recorder()
    (name, url), = _targets(args)[:1]
    chargers, connect_s = await connect_all(url, f"{args.prefix}{name}-", args.chargers, rec, args.concurrency,
                                            args.timeout)
    emit({"event": "connected", "chargers": len(chargers), "seconds": connect_s})
    watchdog = asyncio.create_task(_watchdog(chargers, args.timeout))
    deadline = time.monotonic() + args.seconds

    async def hold(ch: Charger) -> None:
        await asyncio.sleep(min(random.uniform(0, args.interval), max(0.0, deadline - time.monotonic())))
        while time.monotonic() < deadline:
            try:
                await ch.heartbeat()
            except CallFailed as e:
                rec.error(str(e).split(":", 1)[0])
                if not ch.open:
                    return
            await asyncio.sleep(min(args.interval, max(0.0, deadline - time.monotonic())))

    rec.on = True
    with Window("hold") as w:
        await asyncio.gather(*(hold(ch) for ch in chargers))
    rec.on = False
    held = summary(rec.lat) | {"cpu_pct": 100 * w.cpu / w.wall, "seconds": w.wall}
    alive = 0

    async def last(ch: Charger) -> None:  # still there? one last Heartbeat on the same connection
        nonlocal alive
        try:
            await ch.heartbeat()
            alive += 1
        except CallFailed as e:
            rec.error("final " + str(e).split(":", 1)[0])

    await asyncio.gather(*(last(ch) for ch in chargers))
    watchdog.cancel()
    await _close_all(chargers)
    return {"hold": held, "connected": len(chargers), "alive_at_end": alive, "connect_s": connect_s,
            "errors": rec.errors, "error_kinds": rec.error_kinds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["latency", "throughput", "hold"])
    p.add_argument("--url", action="append", required=True, help="a target's charger endpoint (repeatable), "
                   "e.g. ws://127.0.0.1:9000/ocpp")
    p.add_argument("--name", action="append", help="a name for each --url, in the same order")
    p.add_argument("--prefix", default="BENCH-", help="charger id prefix")
    p.add_argument("--chargers", type=int, default=1, help="throughput/hold: chargers per target")
    p.add_argument("--calls", type=int, default=2000, help="latency: measured calls of each kind per target")
    p.add_argument("--warmup-calls", type=int, default=50, help="latency: unmeasured Heartbeat/Start/Stop rounds")
    p.add_argument("--rounds", type=int, default=1, help="throughput: measured turns per target")
    p.add_argument("--seconds", type=float, default=10.0, help="throughput/hold: measured seconds per turn")
    p.add_argument("--warmup", type=float, default=2.0, help="throughput: seconds of load before each turn")
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
