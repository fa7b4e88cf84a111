"""What the edge writes to the SD card: bytes a charger message costs, and a day of a typical site.

A real edge (`sitekeeper run`, standalone) on a database in a temporary folder inside the repository (the same
disk, never tmpfs), and 20 simulated 1.6 chargers playing a day of a typical site, squeezed in time: each sends
MeterValues for every minute of the day (1440), 8 sessions (StartTransaction, StopTransaction) with an
Authorize each, a Heartbeat every 5 minutes (288) and a StatusNotification around each session. What the edge
writes to its database files (the database, its WAL: every frame the edge journals is in there too), divided
by the messages sent, is the cost of one message; times the day's messages, a day. Baseline, measured the same
way in the same run: the same number of bare SQLite commits of one 100-byte row (WAL, synchronous=FULL).

How the bytes are counted: strace follows the edge's writes to its database files and its syncs, and a 4 kB page
of a file dirtied between two syncs of that file counts once, 4096 bytes: what a kernel that caches files in
4 kB pages (a Raspberry Pi's) writes to the card. Not /proc/<pid>/io `write_bytes`: kernels from 6.16 cache
ext4 files in large folios and count a whole folio (here up to 1.7 MB) for a one-byte write.

Squeezed in time, many messages share each commit; a real site's are a minute apart. `--paced MINUTES` is the
honest figure for an SD card, in two phases at the real pace: the steady state (each charger in a session sends
a MeterValues a minute, staggered, and a Heartbeat every 5 minutes) for that many minutes, then the sessions'
own messages (StopTransaction, two StatusNotifications, Authorize, StartTransaction) a second apart, each
committed on its own; each phase ends with a full WAL checkpoint, counted too (what the day's automatic
checkpoints write). A day is then each phase's bytes per message times that kind's messages in a day. Before
them, a day of the site's history is played squeezed and not counted (`--age`): a new site's tables and indexes
are small and share pages that a site in service has spread over many. Every driver's card is a commercial one
with money: sessions are billed, as they are at a site that sells charging.

Target: at most 200 MB a day for that site.

    .venv/bin/python bench/writes.py              # a full day of 20 chargers (about 35,000 messages), squeezed
    .venv/bin/python bench/writes.py --quick      # a tenth of it, scaled up
    .venv/bin/python bench/writes.py --paced 5    # five real minutes, scaled to a day
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "bench")) if p not in sys.path]

from benchutil import Charger, Clock, start_edge  # noqa: E402

from edge.billing import cards, ledger  # noqa: E402
from edge.config import StoreConfig  # noqa: E402
from edge.store.sqlite import Store  # noqa: E402

CHARGERS, SESSIONS, MINUTES, HEARTBEATS = 20, 8, 1440, 288


PAGE = 4096
_WRITE = re.compile(r'^\d+ +pwrite64\(\d+<([^>]+)>, .*, (\d+), (\d+)\) = (\d+)$')
_SYNC = re.compile(r'^\d+ +f(?:data)?sync\(\d+<([^>]+)>\) = 0$')


def page_bytes(trace: Path, folder: Path) -> int:
    """Bytes the traced writes under `folder` send to storage, counted in 4 kB pages: each page dirtied between
    two syncs of its file once (what is still dirty at the end is written back later: counted too)."""
    dirty: dict[str, set[int]] = {}
    total = 0
    for line in trace.read_text(errors="replace").splitlines():
        if m := _WRITE.match(line):
            path, offset, done = m[1], int(m[3]), int(m[4])
            if path.startswith(str(folder)) and done:
                dirty.setdefault(path, set()).update(range(offset // PAGE, (offset + done - 1) // PAGE + 1))
        elif (m := _SYNC.match(line)) and m[1] in dirty:
            total += PAGE * len(dirty.pop(m[1]))
    return total + PAGE * sum(len(pages) for pages in dirty.values())


class Traced:
    """strace on a running process (its threads too) while a phase runs: `stop()` gives `page_bytes`."""

    def __init__(self, pid: int, folder: Path):
        self.folder = folder
        self.log = folder / f"strace-{pid}-{time.monotonic_ns()}.txt"
        self.proc = subprocess.Popen(["strace", "-qq", "-f", "-y", "-s", "0", "-e", "signal=none", "-e",
                                      "trace=pwrite64,fsync,fdatasync", "-o", str(self.log), "-p", str(pid)])
        time.sleep(1)  # attached

    def stop(self) -> int:
        self.proc.terminate()
        self.proc.wait(30)
        return page_bytes(self.log, self.folder)


def traced_run(folder: Path, code: str) -> int:
    """`page_bytes` of a Python snippet run under strace in a process of its own."""
    log = folder / f"strace-run-{time.monotonic_ns()}.txt"
    subprocess.run(["strace", "-qq", "-f", "-y", "-s", "0", "-e", "trace=pwrite64,fsync,fdatasync", "-o", str(log),
                    sys.executable, "-c", code], check=True)
    return page_bytes(log, folder)


async def day(ch: Charger, i: int, share: float, clock: Clock) -> int:
    """Charger `i`'s day (`share` of it), its driver's card billed: the number of messages sent."""
    sent = 0
    meters = int(MINUTES * share)
    sessions = max(1, int(SESSIONS * share))
    per_session = meters // sessions
    beats_every = max(1, meters // max(1, int(HEARTBEATS * share)))
    wh = 0
    tag = card(i)
    for _ in range(sessions):
        await ch.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"})
        await ch.call("Authorize", {"idTag": tag})
        await ch.call("StartTransaction", {"connectorId": 1, "idTag": tag, "meterStart": wh, "timestamp": clock.now()})
        assert ch.last is not None
        tx = ch.last[2]["transactionId"]
        sent += 3
        for m in range(per_session):
            wh += 120
            await ch.call("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [{"timestamp": clock.now(), "sampledValue": [
                {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}]})
            sent += 1
            if m % beats_every == 0:
                await ch.call("Heartbeat", {})
                sent += 1
        await ch.call("StopTransaction", {"transactionId": tx, "meterStop": wh, "timestamp": clock.now()})
        await ch.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"})
        sent += 2
    return sent


async def steady(ch: Charger, i: int, tx: int, minutes: int, clock: Clock) -> int:
    """A charger in a session at the real pace for `minutes`: a MeterValues a minute, a Heartbeat every five;
    staggered by `i` (3 s each) so that the chargers do not speak at once. The number of messages sent."""
    await asyncio.sleep(i * 3.0)
    sent = 0
    for m in range(minutes):
        await asyncio.sleep(60)
        await ch.call("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [
            {"timestamp": clock.now(), "sampledValue": [{"value": str(120 * m), "unit": "Wh",
                                                         "measurand": "Energy.Active.Import.Register"}]}]})
        sent += 1
        if m % 5 == 4:
            await ch.call("Heartbeat", {})
            sent += 1
    return sent


async def turnover(ch: Charger, i: int, tx: int, wh: int, clock: Clock) -> int:
    """One session ends and the next begins on `ch`, a second between messages: the five messages a session
    adds to a day. The new session's transaction id."""
    tag = card(i)
    for action, body in (
            ("StopTransaction", {"transactionId": tx, "meterStop": wh, "timestamp": clock.now()}),
            ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"}),
            ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"}),
            ("Authorize", {"idTag": tag}),
            ("StartTransaction", {"connectorId": 1, "idTag": tag, "meterStart": wh, "timestamp": clock.now()})):
        await ch.call(action, body)
        await asyncio.sleep(1)
    assert ch.last is not None
    return ch.last[2]["transactionId"]


def card(i: int) -> str:
    return f"04{i:06X}"


def cards_for_drivers(db: Path) -> None:
    """A commercial card with money for each charger's drivers: their sessions are billed, as at a real site
    (each meter value then asks for the running cost against the hold)."""
    store = Store.open(str(db))
    try:
        def add(conn: sqlite3.Connection) -> None:
            for i in range(CHARGERS):
                made = cards.add_card(conn, card(i), "commercial", name=f"Driver {i}")
                ledger.post(conn, made.account_id, "topup", 10_000_000, key=f"bench-{i}", currency="PHP")
        store.write_now(add)
    finally:
        store.close()


def checkpoint(db: Path) -> int:
    """Bytes a full WAL checkpoint of `db` writes (what the day's automatic checkpoints would have)."""
    return traced_run(db.parent, f"import sqlite3; c = sqlite3.connect({str(db)!r}, timeout=30); "
                                 "c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.close()")


def bare_commits(folder: Path, n: int) -> int:
    db = folder / "bare.db"
    return traced_run(folder, f"import sqlite3; c = sqlite3.connect({str(db)!r}, isolation_level=None); "
                              "c.execute('PRAGMA journal_mode=WAL'); c.execute('PRAGMA synchronous=FULL'); "
                              "c.execute('CREATE TABLE t (x TEXT)'); "
                              f"[c.execute('INSERT INTO t VALUES (?)', ('x' * 100,)) for _ in range({n})]; c.close()")


STEADY_A_DAY = CHARGERS * (MINUTES + HEARTBEATS)  # MeterValues and Heartbeats of a typical site's day
SESSION_MESSAGES_A_DAY = CHARGERS * SESSIONS * 5


def report(title: str, rows: list[tuple[str, int, int]], per_day: float, bare: float) -> None:
    """`rows`: (what, messages, bytes)."""
    print(f"sitekeeper write benchmark: {CHARGERS} chargers, {title}")
    print(f"   {'measure':<52} {'messages':>9} {'bytes/message':>14}")
    print(f"   {'bare SQLite commit of a 100-byte row (baseline)':<52} {'':>9} {bare:14.0f}")
    for what, n, b in rows:
        print(f"   {what:<52} {n:9d} {b / n:14.0f}   ({b / n / bare:.1f}× the baseline)")
    print(f"   a typical site's day: {per_day:.0f} MB written; target ≤ 200 MB: {'ok' if per_day <= 200 else 'MISS'}")


async def run(share: float, minutes: int, delay: float | None, age: float) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-writes-", dir=ROOT))
    try:
        proc, ocpp, _ = start_edge(work, "bench-writes",
                                   store=f"background_delay = {delay}\n" if delay is not None else "")
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    settle = (StoreConfig.background_delay if delay is None else delay) + 3  # the last background commits
    db = work / "site.db"
    try:
        clock = Clock()
        chargers = [await Charger(f"ws://127.0.0.1:{ocpp}/ocpp", f"CP-{i:02d}").connect() for i in range(CHARGERS)]
        cards_for_drivers(db)
        label = f"background_delay {'default ' if delay is None else ''}{settle - 3:g} s"
        if minutes:
            if age:  # a site with a history: its tables and indexes are as big as a day or more makes them
                await asyncio.gather(*(day(ch, i, age, clock) for i, ch in enumerate(chargers)))
                label += f", after {age:g} day(s) of history"
                # the journal's prune (a minute's housekeeping) trims what a squeezed day piled up at once; a
                # real site trims each charger's journal a little every few hours (not in the figures below)
                await asyncio.sleep(65)
            txs = []
            for i, ch in enumerate(chargers):
                await ch.call("StartTransaction", {"connectorId": 1, "idTag": card(i), "meterStart": 0,
                                                   "timestamp": clock.now()})
                assert ch.last is not None
                txs.append(ch.last[2]["transactionId"])
            await asyncio.sleep(settle)
            checkpoint(db)
            tracer = Traced(proc.pid, work)
            steady_n = sum(await asyncio.gather(*(steady(ch, i, txs[i], minutes, clock)
                                                  for i, ch in enumerate(chargers))))
            await asyncio.sleep(settle)
            steady_b = tracer.stop() + checkpoint(db)
            tracer = Traced(proc.pid, work)
            for i, ch in enumerate(chargers):
                await turnover(ch, i, txs[i], 120 * minutes, clock)
            await asyncio.sleep(settle)
            session_b = tracer.stop() + checkpoint(db)
            session_n = 5 * CHARGERS
            bare = bare_commits(work, 200) / 200
            per_day = (steady_b / steady_n * STEADY_A_DAY + session_b / session_n * SESSION_MESSAGES_A_DAY) / 1e6
            report(f"{minutes} real minutes, then {CHARGERS} session turnovers; {label}",
                   [("steady: MeterValues and Heartbeats", steady_n, steady_b),
                    ("a session's Stop, Status ×2, Authorize, Start", session_n, session_b)], per_day, bare)
        else:
            await asyncio.sleep(1)
            tracer = Traced(proc.pid, work)
            sent = sum(await asyncio.gather(*(day(ch, i, share, clock) for i, ch in enumerate(chargers))))
            await asyncio.sleep(settle)
            edge_b = tracer.stop()
            bare = bare_commits(work, sent) / sent
            report(f"{share:.0%} of a day squeezed; {label}", [("the edge: a charger message", sent, edge_b)],
                   edge_b / share / 1e6, bare)
    finally:
        proc.terminate()
        proc.wait(15)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the day, scaled up")
    ap.add_argument("--paced", type=int, default=0, metavar="MINUTES", help="real pace for this many minutes")
    ap.add_argument("--delay", type=float, default=None, help="the edge's store.background_delay (seconds)")
    ap.add_argument("--age", type=float, default=1.0, metavar="DAYS",
                    help="--paced: days of history played (squeezed) first; 0 for a new site")
    args = ap.parse_args()
    asyncio.run(run(0.1 if args.quick else 1.0, args.paced, args.delay, args.age))


if __name__ == "__main__":
    main()
