"""Benchmark of operations through the edge's API (not a test: it prints figures).

A standalone edge (`sitekeeper run`, a fresh database) and chargers that are plain WebSocket clients in this
process, answering every CALL of the edge at once.

A. Added latency: N sequential `POST /api/chargers/{id}/reset` on one charger, each timed from the HTTP
   request to its answer, minus the charger's own part (from the CALL's arrival to its answer leaving).
   Baseline in the same run, interleaved: a bare `GET /healthz` on the same keep-alive connection (the web
   server's own round trip). Target: p99 added ≤ 5 ms.
B. Other chargers are not delayed: 10 chargers send Heartbeats one after the other, first with nothing else
   going on (idle), then while 50 other chargers each get operations back to back, 50 at once (the 50 and
   their HTTP clients run in a second process, niced). The 50 answer after ANSWER_DELAY, as real chargers
   do, so that 50 operations are under way at any time. Target: Heartbeat p99 under operations ≤ 1.5× idle.
   Control, in the same run: the same load on a second edge process, so that what the machine itself adds (its
   CPUs shared with the load) shows apart from what the edge adds. Then the same with chargers that answer at once: the edge's capacity (its CPU is then full, and the
   Heartbeats wait behind the operations; no target).

The HTTP client is a minimal one (`benchutil.Http`): httpx costs milliseconds a request, which would be
measured as the edge's.

Run::

    .venv/bin/python bench/operations.py --quick    # about 30 s
    .venv/bin/python bench/operations.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

from benchutil import Charger, Http, heartbeats, heartbeats_beside, ms, start_edge

ANSWER_DELAY = 0.5  # seconds a loaded charger of B takes to answer (real ones take 0.1 to a few seconds)


async def measure(ocpp: int, web: int, token: str, n_ops: int, seconds: float,
                  other: tuple[int, int, str]) -> dict:
    url = f"ws://127.0.0.1:{ocpp}/ocpp"
    headers = {"Authorization": f"Bearer {token}"}
    out: dict = {}
    http = Http(web, headers)
    # A. added latency, interleaved with the bare round trip
    one = await Charger(url, "OPS-A").connect()
    op, bare, added = [], [], []
    for _ in range(n_ops):
        t0 = time.perf_counter()
        status, body = await http.request("POST", "/api/chargers/OPS-A/reset", {})
        took = time.perf_counter() - t0
        assert status == 200 and json.loads(body)["status"] == "answered", body
        own = list(one.own.values())[-1]
        op.append(took)
        added.append(took - own)
        t0 = time.perf_counter()
        assert (await http.request("GET", "/healthz"))[0] == 200
        bare.append(time.perf_counter() - t0)
    out["A"] = {"op": op, "bare": bare, "added": added}
    # B. heartbeats of others, idle and under 50 concurrent operations (those from another process, so
    # that the load's own work does not fall on this one's measurements)
    others = [await Charger(url, f"OPS-HB{i}").connect() for i in range(10)]

    def under_load(delay: float, prefix: str, at: tuple[int, int, str] = (ocpp, web, token)
                   ) -> Awaitable[tuple[list[float], int]]:
        return heartbeats_beside([__file__, "--load", str(at[0]), str(at[1]), at[2], str(seconds), str(delay),
                                  prefix], others, seconds)

    idle = await heartbeats(others, seconds)
    elsewhere, _ = await under_load(ANSWER_DELAY, "OPS-E", other)
    loaded, done = await under_load(ANSWER_DELAY, "OPS-B")
    flood, flood_done = await under_load(0.0, "OPS-F")
    out["B"] = {"idle": idle, "elsewhere": elsewhere, "loaded": loaded, "ops": done, "seconds": seconds, "flood": flood,
                "flood_ops": flood_done}
    await http.aclose()
    return out


async def load(ocpp: int, web: int, token: str, seconds: float, delay: float, prefix: str) -> None:
    """The other process of B: 50 chargers answering after `delay` s, each getting operations back to back for
    `seconds` (so that 50 are under way at any time). Niced: on a site the HTTP clients and the chargers are
    other machines, so their work must not take the edge's CPU."""
    os.nice(19)
    busy = [await Charger(f"ws://127.0.0.1:{ocpp}/ocpp", f"{prefix}{i}", delay).connect() for i in range(50)]
    done = 0
    async def operate(ch: Charger, until: float) -> None:
        nonlocal done
        http = Http(web, {"Authorization": f"Bearer {token}"})
        while time.perf_counter() < until:
            status, body = await http.request("POST", f"/api/chargers/{ch.charger_id}/unlock", {"connector": 1})
            assert status == 200, body
            done += 1
        await http.aclose()

    print("started", flush=True)
    until = time.perf_counter() + seconds
    await asyncio.gather(*(operate(ch, until) for ch in busy))
    print(done, flush=True)


def main() -> None:
    if sys.argv[1:2] == ["--load"]:
        ocpp, web, token, seconds, delay, prefix = sys.argv[2:8]
        asyncio.run(load(int(ocpp), int(web), token, float(seconds), float(delay), prefix))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="300 operations, 5 s per phase")
    args = ap.parse_args()
    n_ops, seconds = (300, 5.0) if args.quick else (2000, 20.0)
    work = Path(tempfile.mkdtemp(prefix="sitekeeper-bench-ops-"))
    proc, ocpp, web = start_edge(work)
    (work / "other").mkdir()
    proc2, ocpp2, web2 = start_edge(work / "other")  # the control: the same load on another edge process
    try:
        token = (work / "local-api.token").read_text().strip()
        other = (ocpp2, web2, (work / "other" / "local-api.token").read_text().strip())
        res = asyncio.run(measure(ocpp, web, token, n_ops, seconds, other))
    finally:
        for p in (proc, proc2):
            p.terminate()
            p.wait(20)
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
    print(f"B. Heartbeats of 10 other chargers, idle vs while 50 chargers (answering in {ANSWER_DELAY:g} s) have an"
          f" operation under way at all times ({b['ops']} operations in {b['seconds']:g} s,"
          f" {b['ops'] / b['seconds']:.0f}/s)")
    print(f"   {'idle':<38} {ms(b['idle'], 50):7.2f} {ms(b['idle'], 99):7.2f}   n={len(b['idle'])}")
    print(f"   {'the same load on another edge process':<38} {ms(b['elsewhere'], 50):7.2f}"
          f" {ms(b['elsewhere'], 99):7.2f}   n={len(b['elsewhere'])}   p99 ="
          f" {ms(b['elsewhere'], 99) / ms(b['idle'], 99):.2f}× idle (the machine's share: its CPUs are shared)")
    print(f"   {'under 50 concurrent operations':<38} {ms(b['loaded'], 50):7.2f} {ms(b['loaded'], 99):7.2f}"
          f"   n={len(b['loaded'])}   p99 = {ratio:.2f}× idle, target ≤ 1.5×: {'ok' if ratio <= 1.5 else 'MISS'}")
    print(f"   {'capacity: chargers answering at once':<38} {ms(b['flood'], 50):7.2f} {ms(b['flood'], 99):7.2f}"
          f"   n={len(b['flood'])}   ({b['flood_ops'] / b['seconds']:.0f} operations/s: the edge's CPU is"
          f" full; no target)")


if __name__ == "__main__":
    main()
