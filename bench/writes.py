"""What the edge writes to the SD card: bytes a charger message costs, and a day of a typical site.

A real edge (`sitekeeper run`, standalone) on a database in a temporary folder inside the repository (the same
disk, never tmpfs), and 20 simulated 1.6 chargers playing a day of a typical site, squeezed in time: each sends
MeterValues for every minute of the day (1440), 8 sessions (StartTransaction, StopTransaction) with an
Authorize each, a Heartbeat every 5 minutes (288) and a StatusNotification around each session. What the
kernel counts as written to storage by the edge and its web process (`write_bytes` of /proc/<pid>/io: the
database, its WAL, the journal of frames; fsyncs included), divided by the messages sent, is the cost of one
message; times the day's messages, a day. Baseline, measured in the same run: the same number of bare SQLite
commits of one 100-byte row (WAL, synchronous=FULL) on the same disk.

Target: at most 200 MB a day for that site.

    .venv/bin/python bench/writes.py            # a full day of 20 chargers (about 40,000 messages)
    .venv/bin/python bench/writes.py --quick    # a tenth of it, scaled up
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "bench")) if p not in sys.path]

import psutil  # noqa: E402
from benchutil import Charger, Clock, start_edge  # noqa: E402

CHARGERS, SESSIONS, MINUTES, HEARTBEATS = 20, 8, 1440, 288


def written(pid: int) -> int:
    """Bytes the process and its children have had written to storage."""
    proc = psutil.Process(pid)
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += int(dict(line.split(": ") for line in Path(f"/proc/{p.pid}/io").read_text().splitlines())
                         ["write_bytes"])
        except (OSError, KeyError, ValueError):
            pass
    return total


async def day(ch: Charger, share: float, clock: Clock) -> int:
    """One charger's day (`share` of it): the number of messages sent."""
    sent = 0
    meters = int(MINUTES * share)
    sessions = max(1, int(SESSIONS * share))
    per_session = meters // sessions
    beats_every = max(1, meters // max(1, int(HEARTBEATS * share)))
    wh = 0
    for s in range(sessions):
        tag = f"04{s:06X}"
        await ch.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"})
        await ch.call("Authorize", {"idTag": tag})
        await ch.call("StartTransaction", {"connectorId": 1, "idTag": tag, "meterStart": wh, "timestamp": clock.now()})
        sent += 3
        for m in range(per_session):
            wh += 120
            await ch.call("MeterValues", {"connectorId": 1, "meterValue": [{"timestamp": clock.now(), "sampledValue": [
                {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}]})
            sent += 1
            if m % beats_every == 0:
                await ch.call("Heartbeat", {})
                sent += 1
        await ch.call("StopTransaction", {"transactionId": s + 1, "meterStop": wh, "timestamp": clock.now()})
        await ch.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"})
        sent += 2
    return sent


def bare_commits(folder: Path, n: int) -> int:
    db = folder / "bare.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (x TEXT)")
    before = written(os.getpid())
    for _ in range(n):
        conn.execute("INSERT INTO t VALUES (?)", ("x" * 100,))
    conn.close()
    return written(os.getpid()) - before


async def run(share: float) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-writes-", dir=ROOT))
    proc, ocpp, _ = start_edge(work, "bench-writes")
    try:
        clock = Clock()
        chargers = [await Charger(f"ws://127.0.0.1:{ocpp}/ocpp", f"CP-{i:02d}").connect() for i in range(CHARGERS)]
        await asyncio.sleep(1)
        before = written(proc.pid)
        sent = sum(await asyncio.gather(*(day(ch, share, clock) for ch in chargers)))
        await asyncio.sleep(3)  # the journal's batches and the last commits
        edge_bytes = written(proc.pid) - before
        bare = bare_commits(work, sent)
        per = edge_bytes / sent
        per_day = per * sent / share / 1e6
        print(f"sitekeeper write benchmark: {CHARGERS} chargers, {share:.0%} of a day ({sent} messages)")
        print(f"   {'measure':<48} {'bytes/message':>14}")
        print(f"   {'bare SQLite commit of a 100-byte row (baseline)':<48} {bare / sent:14.0f}")
        print(f"   {'the edge: a charger message':<48} {per:14.0f}   ({per / (bare / sent):.1f}× the baseline)")
        print(f"   a typical site's day: {per_day:.0f} MB written; target ≤ 200 MB: {'ok' if per_day <= 200 else 'MISS'}")
    finally:
        proc.terminate()
        proc.wait(15)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the day, scaled up")
    args = ap.parse_args()
    asyncio.run(run(0.1 if args.quick else 1.0))


if __name__ == "__main__":
    main()
