"""Benchmark of the owner's web pages on a year of a busy site (not a test: it prints figures).

The database: a year of a 20-charger site, seeded straight into the edge's own schema (`Store.open` migrates
it): 500 users with a card each (400 prepaid, 100 personal), about 8 sessions a day per charger (60,000
sessions) with their meter samples (50 a session, 3 million rows), and the ledger of each prepaid session
(hold, capture, release) with monthly top-ups, balances kept as the ledger keeps them. Then `sitekeeper run`
on it, a logged-in owner's session cookie, and the site's chargers connected over OCPP.

A. Page times: each page asked for N times in turn on one keep-alive connection (p50 and p99 of the whole
   round trip); the baseline in the same run, interleaved: a bare `GET /healthz`. Pages: the dashboard, a
   charger's 30-day table, a user's page, the month report, the sessions list and one session's receipt.
   Target: p99 ≤ 150 ms for the first four.
B. The chargers' loop is not stalled by page work: 10 chargers send Heartbeats one after the other, idle, then
   while 20 clients load pages in a loop (from a second process, niced: on a site they are phones and
   laptops). Control in the same run: the same 20 clients against a second edge on a copy of the database,
   so that what the machine adds (two cores shared with the clients) shows apart from what the edge adds.
   Target: Heartbeat p99 under page load ≤ 1.5× idle.

Run::

    .venv/bin/python bench/web.py --quick    # about 2 minutes (most of it the seeding)
    .venv/bin/python bench/web.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from benchutil import Charger, Http, heartbeats, heartbeats_beside, ms, start_edge

from edge.operations import admins
from edge.store.sqlite import Store
from edge.web import session

TZ = ZoneInfo("Asia/Manila")
CHARGERS = [f"CP-{i:02d}" for i in range(1, 21)]
PER_KWH_MINOR = 1500  # ₱15.00 a kWh
HOLD_MINOR = 100000  # ₱1,000.00 held at each prepaid start


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def seed(path: Path, days: int = 365, users: int = 500, per_day: float = 8.2, samples: int = 50) -> dict:
    """Fill a new database at `path` with `days` of the site's life; what it holds."""
    Store.open(str(path)).close()  # the schema, by the edge's own migrations
    rng = random.Random(7)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    now = datetime.now(UTC)
    first = now - timedelta(days=days)
    conn.executemany(
        "INSERT INTO chargers (id, ocpp_version, vendor, model, serial, firmware, first_seen, last_seen, last_boot,"
        " connected) VALUES (?, '1.6', 'bench', 'AC22', ?, '1.0', ?, ?, ?, 0)",
        [(cid, f"SN-{cid}", iso(first), iso(now), iso(now)) for cid in CHARGERS])
    conn.executemany(
        "INSERT INTO connector_status (charger_id, evse_id, connector_id, status, error_code, timestamp)"
        " VALUES (?, ?, ?, 'Available', 'NoError', ?)", [(cid, c, c, iso(now)) for cid in CHARGERS for c in (1, 2)])
    kinds = ["commercial" if i < users * 4 // 5 else "personal" for i in range(users)]
    for i in range(users):
        conn.execute("INSERT INTO accounts (id, name, phone, email, created) VALUES (?, ?, ?, ?, ?)",
                     (i + 1, f"Driver {i + 1:03d} Dela Cruz", f"+63917{i:07d}", f"driver{i + 1}@example.ph",
                      iso(first)))
        conn.execute("INSERT INTO cards (uid, account_id, kind, created, updated) VALUES (?, ?, ?, ?, ?)",
                     (f"04{i:06X}", i + 1, kinds[i], iso(first), iso(first)))
    spend: dict[tuple[int, str], int] = {}  # (account, month) → captured
    tx_rows, meter_rows, ledger_rows = [], [], []
    tx_id = 0
    day = first.astimezone(TZ).date()
    while day < now.astimezone(TZ).date():
        for cid in CHARGERS:
            n = int(per_day) + (rng.random() < per_day % 1)
            for _ in range(n):
                start = datetime(day.year, day.month, day.day, 6, tzinfo=TZ) + timedelta(minutes=rng.randrange(16 * 60))
                minutes = rng.randrange(20, 180)
                stop = start + timedelta(minutes=minutes)
                if stop >= now:
                    continue
                tx_id += 1
                account = rng.randrange(users)
                kind = kinds[account]
                energy = int(minutes / 60 * rng.uniform(3500, 7400))
                cost = round(energy * PER_KWH_MINOR / 1000) if kind == "commercial" else 0
                meter_start = tx_id * 10000
                tx_rows.append((tx_id, cid, str(tx_id), rng.choice((1, 2)), f"04{account:06X}", meter_start,
                                meter_start + energy, energy, iso(start), iso(stop), account + 1, kind,
                                HOLD_MINOR if cost else None, cost, cost, 0))
                for k in range(samples):
                    at = start + timedelta(minutes=minutes * k / (samples - 1))
                    meter_rows.append((cid, str(tx_id), 1, iso(at), str(meter_start + energy * k // (samples - 1))))
                if cost:
                    for entry, amount, when in (("hold", HOLD_MINOR, start), ("capture", cost, stop),
                                                ("release", HOLD_MINOR - cost, stop)):
                        ledger_rows.append((account + 1, entry, amount, tx_id, f"{entry}:{tx_id}", iso(when)))
                    month = start.strftime("%Y-%m")
                    spend[(account + 1, month)] = spend.get((account + 1, month), 0) + cost
        if len(meter_rows) > 200000:
            _flush(conn, tx_rows, meter_rows, ledger_rows)
        day += timedelta(days=1)
    _flush(conn, tx_rows, meter_rows, ledger_rows)
    balance: dict[int, int] = {}
    for (account, month), spent in sorted(spend.items()):  # each month's top-up covers it, with some to spare
        amount = (spent // 50000 + 2) * 50000
        conn.execute("INSERT INTO ledger (account_id, kind, amount_minor, currency, key, note, created)"
                     " VALUES (?, 'topup', ?, 'PHP', ?, 'counter', ?)",
                     (account, amount, f"topup:{account}:{month}", f"{month}-01T00:00:00Z"))
        balance[account] = balance.get(account, 0) + amount - spent
    conn.executemany("UPDATE accounts SET balance_minor = ? WHERE id = ?", [(b, a) for a, b in balance.items()])
    admins.add(conn, "bench", "owner", "bench-password-1")
    key = session.secret(conn)
    cookie = session.sign(key, session.create(conn, "bench"))
    conn.execute("COMMIT")
    counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608 (our own table names)
              for t in ("transactions", "meter_values", "ledger", "accounts")}
    busiest = conn.execute("SELECT account_id FROM transactions GROUP BY account_id ORDER BY count(*) DESC"
                           " LIMIT 1").fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return {**counts, "cookie": cookie, "user": busiest, "tx": tx_id}


def _flush(conn: sqlite3.Connection, tx_rows: list, meter_rows: list, ledger_rows: list) -> None:
    conn.executemany(
        "INSERT INTO transactions (id, charger_id, tx_key, ocpp_version, connector_id, id_tag, meter_start,"
        " meter_stop, energy_wh, started_at, stopped_at, stop_reason, account_id, card_kind, hold_minor, cost_minor,"
        " captured_minor, uncollected_minor, clock_synced) VALUES (?, ?, ?, '1.6', ?, ?, ?, ?, ?, ?, ?, 'Local', ?, ?,"
        " ?, ?, ?, ?, 1)", tx_rows)
    conn.executemany(
        "INSERT INTO meter_values (charger_id, tx_key, connector_id, timestamp, measurand, unit, context, value)"
        " VALUES (?, ?, ?, ?, 'Energy.Active.Import.Register', 'Wh', 'Sample.Periodic', ?)", meter_rows)
    conn.executemany("INSERT INTO ledger (account_id, kind, amount_minor, currency, session_id, key, created)"
                     " VALUES (?, ?, ?, 'PHP', ?, ?, ?)", ledger_rows)
    tx_rows.clear()
    meter_rows.clear()
    ledger_rows.clear()


def pages(info: dict) -> dict[str, str]:
    today = datetime.now(UTC).astimezone(TZ).date()
    last_month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    return {"dashboard": "/", "charger, 30 days": f"/chargers/{CHARGERS[0]}", "user page": f"/users/{info['user']}",
            "month report": f"/reports?kind=month&month={last_month}", "sessions list": "/sessions",
            "one session": f"/sessions/{info['tx'] // 2}"}


TARGETED = ("dashboard", "charger, 30 days", "user page", "month report")


async def measure(ocpp: int, web: int, info: dict, n: int, seconds: float, other: tuple[int, int]) -> dict:
    cookie = {"Cookie": f"{session.COOKIE}={info['cookie']}", "Accept": "text/html"}
    http = Http(web, cookie)
    baseline = "GET /healthz (baseline)"
    times: dict[str, list[float]] = {name: [] for name in [baseline, *pages(info)]}
    for name, path in pages(info).items():  # each page once, checked, before anything is timed
        status, body = await http.request("GET", path)
        assert status == 200 and b"<html" in body, (name, status, body[:300])
    for _ in range(n):
        for name, path in [(baseline, "/healthz"), *pages(info).items()]:
            t0 = time.perf_counter()
            status, _ = await http.request("GET", path)
            times[name].append(time.perf_counter() - t0)
            assert status == 200, (name, status)
    await http.aclose()
    url = f"ws://127.0.0.1:{ocpp}/ocpp"
    beating = [await Charger(url, cid).connect() for cid in CHARGERS[:10]]

    def under_load(port: int) -> Awaitable[tuple[list[float], int]]:
        return heartbeats_beside([__file__, "--load", str(port), info["cookie"], str(seconds), str(info["user"]),
                                  str(info["tx"])], beating, seconds)

    idle = await heartbeats(beating, seconds)
    elsewhere, _ = await under_load(other[1])
    loaded, done = await under_load(web)
    return {"A": times, "B": {"idle": idle, "elsewhere": elsewhere, "loaded": loaded, "pages": done,
                              "seconds": seconds}}


async def load(web: int, cookie: str, seconds: float, user: int, tx: int) -> None:
    """The other process of B: 20 clients, each loading the pages one after the other for `seconds`."""
    os.nice(19)
    paths = list(pages({"user": user, "tx": tx}).values())
    done = 0

    async def client(i: int, until: float) -> None:
        nonlocal done
        http = Http(web, {"Cookie": f"{session.COOKIE}={cookie}", "Accept": "text/html"})
        k = i
        while time.perf_counter() < until:
            status, _ = await http.request("GET", paths[k % len(paths)])
            assert status == 200, status
            k += 1
            done += 1
        await http.aclose()

    print("started", flush=True)
    until = time.perf_counter() + seconds
    await asyncio.gather(*(client(i, until) for i in range(20)))
    print(done, flush=True)


def main() -> None:
    if sys.argv[1:2] == ["--load"]:
        web, cookie, seconds, user, tx = sys.argv[2:7]
        asyncio.run(load(int(web), cookie, float(seconds), int(user), int(tx)))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 rounds of pages, 10 s per phase of B")
    args = ap.parse_args()
    n, seconds = (20, 10.0) if args.quick else (100, 30.0)
    work = Path(tempfile.mkdtemp(prefix="sitekeeper-bench-web-"))
    t0 = time.perf_counter()
    info = seed(work / "site.db")
    seeded = time.perf_counter() - t0
    (work / "other").mkdir()
    shutil.copy(work / "site.db", work / "other" / "site.db")
    proc, ocpp, web = start_edge(work, "bench-web")
    proc2, ocpp2, web2 = start_edge(work / "other", "bench-web")
    try:
        res = asyncio.run(measure(ocpp, web, info, n, seconds, (ocpp2, web2)))
    finally:
        for p in (proc, proc2):
            p.terminate()
            p.wait(20)
    size = (work / "site.db").stat().st_size / 1e6
    print(f"sitekeeper web pages benchmark{' (quick)' if args.quick else ''}: {os.cpu_count()} CPUs, load average"
          f" {os.getloadavg()[0]:.2f}; work dir {work}")
    print(f"database: {info['transactions']} sessions, {info['meter_values']} meter samples, {info['ledger']} ledger"
          f" entries, {info['accounts']} users, {len(CHARGERS)} chargers, {size:.0f} MB (seeded in {seeded:.0f} s)")
    a = res["A"]
    print(f"A. {n} rounds of each page in turn on one connection (a logged-in owner)")
    print(f"   {'page':<26} {'p50 ms':>7} {'p99 ms':>7}")
    for name, values in a.items():
        p99 = ms(values, 99)
        verdict = f"   target p99 ≤ 150 ms: {'ok' if p99 <= 150 else 'MISS'}" if name in TARGETED else ""
        print(f"   {name:<26} {ms(values, 50):7.2f} {p99:7.2f}{verdict}")
    b = res["B"]
    ratio = ms(b["loaded"], 99) / ms(b["idle"], 99)
    print(f"B. Heartbeats of 10 chargers, idle vs while 20 clients load pages in a loop ({b['pages']} pages in"
          f" {b['seconds']:g} s, {b['pages'] / b['seconds']:.0f}/s)")
    print(f"   {'idle':<38} {ms(b['idle'], 50):7.2f} {ms(b['idle'], 99):7.2f}   n={len(b['idle'])}")
    print(f"   {'the same load on another edge process':<38} {ms(b['elsewhere'], 50):7.2f}"
          f" {ms(b['elsewhere'], 99):7.2f}   n={len(b['elsewhere'])}   p99 ="
          f" {ms(b['elsewhere'], 99) / ms(b['idle'], 99):.2f}× idle (the machine's share: its CPUs are shared)")
    print(f"   {'under 20 page clients':<38} {ms(b['loaded'], 50):7.2f} {ms(b['loaded'], 99):7.2f}"
          f"   n={len(b['loaded'])}   p99 = {ratio:.2f}× idle, target ≤ 1.5×: {'ok' if ratio <= 1.5 else 'MISS'}")


if __name__ == "__main__":
    main()
