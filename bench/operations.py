"""Benchmark of operations through the edge's API (not a test: it prints figures).

A standalone edge (`sitekeeper run`, a fresh database) and chargers that are plain WebSocket clients in this
process, answering every CALL of the edge at once.

A. Added latency: N sequential `POST /api/chargers/{id}/reset` on one charger, each timed from the HTTP
   request to its answer, minus the charger's own part (from the CALL's arrival to its answer leaving).
   Baseline in the same run, interleaved: a bare `GET /healthz` on the same keep-alive connection (the web
   server's own round trip). Target: p99 added ≤ 5 ms.
B. Other chargers are not delayed: 10 chargers send Heartbeats one after the other, first with nothing else
   going on (idle), then while 50 other chargers each get operations back to back, 50 at once (the 50 and
   their HTTP client run in a second process). Target: Heartbeat p99 under operations ≤ 1.5× idle.

Run::

    .venv/bin/python bench/operations.py --quick    # about 30 s
    .venv/bin/python bench/operations.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets
from benchutil import free_port, percentile

SITEKEEPER = Path(sys.executable).parent / "sitekeeper"


class Charger:
    """A 1.6 charger that answers each CALL at once and keeps how long its own part took."""

    def __init__(self, url: str, charger_id: str):
        self.url, self.charger_id = f"{url}/{charger_id}", charger_id
        self.own: dict[str, float] = {}  # msg id → seconds from the CALL's arrival to the answer sent
        self.pending: dict[str, asyncio.Future] = {}
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
                await self.ws.send(json.dumps([3, msg[1], answer]))
                self.own[msg[1]] = time.perf_counter() - arrived
            elif msg[1] in self.pending:
                self.pending.pop(msg[1]).set_result(msg)

    async def call(self, action: str, payload: dict) -> float:
        msg_id = f"{time.perf_counter_ns()}"
        fut = asyncio.get_running_loop().create_future()
        self.pending[msg_id] = fut
        began = time.perf_counter()
        await self.ws.send(json.dumps([2, msg_id, action, payload]))
        await fut
        return time.perf_counter() - began


def start_edge(work: Path) -> tuple[subprocess.Popen, int, int]:
    ocpp, web = free_port(), free_port()
    (work / "sitekeeper.toml").write_text(
        f'[site]\nid = "bench-ops"\n[store]\npath = "{work / "site.db"}"\n'
        f'[ocpp]\nhost = "127.0.0.1"\nport = {ocpp}\n[web]\nhost = "127.0.0.1"\nport = {web}\n'
        '[billing]\npush_local_list = false\n')
    proc = subprocess.Popen([str(SITEKEEPER), "--config", str(work / "sitekeeper.toml"), "run"],
                            stdout=open(work / "edge.log", "w"), stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while "ready: ocpp=" not in (work / "edge.log").read_text():
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"the edge did not start:\n{(work / 'edge.log').read_text()}")
        time.sleep(0.05)
    return proc, ocpp, web


def ms(values: list[float], q: float) -> float:
    return percentile(sorted(values), q) * 1000


async def measure(ocpp: int, web: int, token: str, n_ops: int, seconds: float) -> dict:
    url = f"ws://127.0.0.1:{ocpp}/ocpp"
    headers = {"Authorization": f"Bearer {token}"}
    out: dict = {}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{web}", headers=headers, timeout=30,
                                 limits=httpx.Limits(max_connections=100)) as http:
        # A. added latency, interleaved with the bare round trip
        one = await Charger(url, "OPS-A").connect()
        op, bare, added = [], [], []
        for _ in range(n_ops):
            t0 = time.perf_counter()
            r = await http.post("/api/chargers/OPS-A/reset", json={})
            took = time.perf_counter() - t0
            assert r.status_code == 200 and r.json()["status"] == "answered", r.text
            own = list(one.own.values())[-1]
            op.append(took)
            added.append(took - own)
            t0 = time.perf_counter()
            assert (await http.get("/healthz")).status_code == 200
            bare.append(time.perf_counter() - t0)
        out["A"] = {"op": op, "bare": bare, "added": added}
        # B. heartbeats of others, idle and under 50 concurrent operations (those from another process, so
        # that the load's own work does not fall on this one's measurements)
        others = [await Charger(url, f"OPS-HB{i}").connect() for i in range(10)]

        async def heartbeats(until: float) -> list[float]:
            rtts = []
            while time.perf_counter() < until:
                for ch in others:
                    rtts.append(await ch.call("Heartbeat", {}))
            return rtts

        idle = await heartbeats(time.perf_counter() + seconds)
        load = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--load", str(ocpp), str(web), token, str(seconds),
            stdout=asyncio.subprocess.PIPE)
        assert load.stdout is not None
        assert (await load.stdout.readline()).strip() == b"started"
        loaded = await heartbeats(time.perf_counter() + seconds)
        done = int((await load.stdout.readline()).strip() or 0)
        await load.wait()
        out["B"] = {"idle": idle, "loaded": loaded, "ops": done, "seconds": seconds}
    return out


async def load(ocpp: int, web: int, token: str, seconds: float) -> None:
    """The other process of B: 50 chargers, each getting operations back to back for `seconds`."""
    busy = [await Charger(f"ws://127.0.0.1:{ocpp}/ocpp", f"OPS-B{i}").connect() for i in range(50)]
    done = 0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{web}", headers={"Authorization": f"Bearer {token}"},
                                 timeout=30, limits=httpx.Limits(max_connections=100)) as http:
        async def operate(ch: Charger, until: float) -> None:
            nonlocal done
            while time.perf_counter() < until:
                r = await http.post(f"/api/chargers/{ch.charger_id}/unlock", json={"connector": 1})
                assert r.status_code == 200, r.text
                done += 1

        print("started", flush=True)
        until = time.perf_counter() + seconds
        await asyncio.gather(*(operate(ch, until) for ch in busy))
    print(done, flush=True)


def main() -> None:
    if sys.argv[1:2] == ["--load"]:
        ocpp, web, token, seconds = sys.argv[2:6]
        asyncio.run(load(int(ocpp), int(web), token, float(seconds)))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="300 operations, 5 s per phase")
    args = ap.parse_args()
    n_ops, seconds = (300, 5.0) if args.quick else (2000, 20.0)
    work = Path(tempfile.mkdtemp(prefix="sitekeeper-bench-ops-"))
    proc, ocpp, web = start_edge(work)
    try:
        token = (work / "local-api.token").read_text().strip()
        res = asyncio.run(measure(ocpp, web, token, n_ops, seconds))
    finally:
        proc.terminate()
        proc.wait(20)
    a, b = res["A"], res["B"]
    print(f"sitekeeper operations benchmark{' (quick)' if args.quick else ''}: {os.cpu_count()} CPUs,"
          f" load average {os.getloadavg()[0]:.2f}; work dir {work}")
    print(f"A. {n_ops} sequential resets on one charger (its own part subtracted), interleaved with GET /healthz")
    print(f"   {'measure':<38} {'p50 ms':>7} {'p99 ms':>7}")
    print(f"   {'GET /healthz (baseline)':<38} {ms(a['bare'], 50):7.2f} {ms(a['bare'], 99):7.2f}")
    print(f"   {'POST reset, whole round trip':<38} {ms(a['op'], 50):7.2f} {ms(a['op'], 99):7.2f}")
    added99 = ms(a["added"], 99)
    print(f"   {'added over the charger’s own answer':<38} {ms(a['added'], 50):7.2f} {added99:7.2f}"
          f"   target p99 ≤ 5 ms: {'ok' if added99 <= 5 else 'MISS'}"
          f"   ({ms(a['added'], 99) / ms(a['bare'], 99):.2f}× the bare round trip's p99)")
    ratio = ms(b["loaded"], 99) / ms(b["idle"], 99)
    print(f"B. Heartbeats of 10 other chargers, idle vs while 50 chargers get operations at once"
          f" ({b['ops']} operations in {b['seconds']:g} s, {b['ops'] / b['seconds']:.0f}/s)")
    print(f"   {'idle':<38} {ms(b['idle'], 50):7.2f} {ms(b['idle'], 99):7.2f}   n={len(b['idle'])}")
    print(f"   {'under 50 concurrent operations':<38} {ms(b['loaded'], 50):7.2f} {ms(b['loaded'], 99):7.2f}"
          f"   n={len(b['loaded'])}   p99 = {ratio:.2f}× idle, target ≤ 1.5×: {'ok' if ratio <= 1.5 else 'MISS'}")


if __name__ == "__main__":
    main()
