"""What money costs on this machine's disk: the ledger and billing against a bare SQLite commit.

Measures, in one run and against a baseline taken in the same run:

(a) bare commit: one small row inserted and committed on a plain `sqlite3` connection with
    ``journal_mode=WAL`` and ``synchronous=FULL``: p50/p99 latency and commits/s. Every ratio below is
    against this.
(b) tap to decision: a card UID as a reader hands it over (``"04:a2:3b:c4"``) → normalised → the session's
    start record → ``billing.decide(kind="start")`` run and committed through ``Store.write_now``, hold
    posted: p50/p99 latency. Target: p99 ≤ 3× a bare commit's p99 (like for like: both tails are mostly
    the disk's fsync; the p50 ratio is printed too).
(c) ledger postings: ``ledger.post`` top-ups, each in its own committed transaction (``Store.write_now``),
    spread over the (b) accounts (each with a few entries): postings/s. Target: ≥ 0.5× bare commits/s.
(d) group commit: the same top-ups from many concurrent writers (one account each) through the asyncio
    writer (``Store.start()``; ``await store.write(fn)``): postings/s, per-write p50/p99 and postings per
    commit. No target: it shows what batching buys when many chargers write at once.
(e) (b) for a card whose account already has ``--history`` billed sessions (a topup, hold, capture and
    release each, written directly as setup), each tap followed by an unmeasured StopTransaction. The same
    target as (b): balance and held are sums over the account's entries, so this shows how the decision
    grows with an account's age.
(f) (c) on that account: one top-up per commit. The same target as (c).

(a), (b), (c), (e) and (f) run in rounds, interleaved, so that other load on the machine (other people's work, the
disk's own moods) falls on the baseline and the measurements alike. The database files live in a temporary
directory inside the repository (same disk as the repo, never tmpfs, so every fsync is real) that is removed
at the end; ``--dir`` picks another place. Not pass/fail: it prints a table and "ok"/"MISS" per target.

Run::

    .venv/bin/python bench/ledger.py            # ~30 s: 5 rounds of 300 samples, 100 writers, history 5000
    .venv/bin/python bench/ledger.py --quick    # ~5 s: 2 rounds of 100 samples, 50 writers, history 1000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "bench")) if p not in sys.path]

from benchutil import percentile  # noqa: E402

from edge.billing import cards, ledger  # noqa: E402
from edge.billing import sessions as billing  # noqa: E402
from edge.billing.tariff import Tariff  # noqa: E402
from edge.clock import now_iso  # noqa: E402
from edge.controller import observe  # noqa: E402
from edge.money import normalise_uid  # noqa: E402
from edge.ocpp import persist  # noqa: E402
from edge.store.sqlite import Store  # noqa: E402

CURRENCY = "PHP"
TARGET_TAP_P99 = 3.0  # × a bare commit's p99
TARGET_POSTINGS = 0.5  # × bare commits/s


@dataclass
class Samples:
    """Latencies in seconds, and the wall time they took all together."""

    values: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    def timed(self, fn: Callable[[], object], n: int) -> None:
        """Run `fn` `n` times, recording each call's latency and the total."""
        start = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            self.values.append(time.perf_counter() - t0)
        self.elapsed += time.perf_counter() - start

    def p(self, q: float) -> float:
        return percentile(sorted(self.values), q)

    @property
    def rate(self) -> float:
        return len(self.values) / self.elapsed if self.elapsed else float("nan")


def fs_of(path: Path) -> str:
    """The file system type and device of `path` (from /proc/mounts; the longest mount point that holds it)."""
    best, found = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return found
    real = str(path.resolve())
    for line in mounts:
        dev, mount, fstype = line.split()[:3]
        if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
            best, found = mount, f"{fstype} on {dev}"
    return found


class Bare:
    """(a): a plain sqlite3 connection, WAL + synchronous=FULL, one small row per commit."""

    def __init__(self, path: Path):
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        self.samples = Samples()

    def one(self) -> None:
        self.conn.execute("BEGIN")
        self.conn.execute("INSERT INTO t (v) VALUES ('x')")
        self.conn.execute("COMMIT")

    def run(self, n: int) -> None:
        self.samples.timed(self.one, n)

    def close(self) -> None:
        self.conn.close()


class Billing:
    """(b) and (c): the site's store with prepaid cards, one per tap, each with money on its account."""

    def __init__(self, path: Path, taps: int, history: int):
        billing.configure(billing.BillingSettings(currency=CURRENCY, min_start_balance=5000, max_hold=100000,
                                                  tariff=Tariff(per_kwh=Decimal(1500))))
        self.store = Store.open(str(path))
        self.uids = [f"{0x04000000 + i:08x}" for i in range(taps)]  # as a reader might print them: lower-case

        def setup(conn: sqlite3.Connection) -> list[int]:
            accounts = []
            for uid in self.uids:
                accounts.append(cards.add_card(conn, uid, "commercial", name=f"driver {uid}").account_id)
                ledger.post(conn, accounts[-1], "topup", 200000, key=f"setup:{uid}", currency=CURRENCY)
            return accounts

        self.accounts = self.store.write_now(setup)  # (c) tops them up in turn
        self.veteran_uid = "0A0B0C0D"
        self.veteran_account = self.store.write_now(lambda c: self._history(c, history))
        self.next_tap = 0
        self.next_tx = history + 1
        self.next_key = 0
        self.tap = Samples()
        self.post = Samples()
        self.veteran = Samples()
        self.veteran_post = Samples()

    def _history(self, conn: sqlite3.Connection, sessions: int) -> int:
        """The veteran account of (e): `sessions` billed sessions, written as the billing code leaves them."""
        account = cards.add_card(conn, self.veteran_uid, "commercial", name="veteran").account_id
        ledger.post(conn, account, "topup", 10**9, key="setup:veteran", currency=CURRENCY)
        ts = "2024-01-01T00:00:00.000Z"
        for sid in range(1, sessions + 1):
            conn.execute("INSERT INTO transactions (id, charger_id, tx_key, ocpp_version, connector_id, id_tag,"
                         " meter_start, meter_stop, energy_wh, started_at, stopped_at, account_id, card_kind,"
                         " hold_minor, cost_minor, captured_minor, uncollected_minor)"
                         " VALUES (?, 'OLD', ?, '1.6', 1, ?, 0, 2000, 2000, ?, ?, ?, 'commercial', 5000, 3000,"
                         " 3000, 0)", (sid, str(sid), self.veteran_uid, ts, ts, account))
            conn.executemany("INSERT INTO ledger (account_id, kind, amount_minor, currency, session_id, key, created)"
                             " VALUES (?, ?, ?, ?, ?, ?, ?)", [
                                 (account, "topup", 3000, CURRENCY, None, f"setup:topup:{sid}", ts),
                                 (account, "hold", 5000, CURRENCY, sid, f"session:{sid}:hold", ts),
                                 (account, "capture", 3000, CURRENCY, sid, f"session:{sid}:capture", ts),
                                 (account, "release", 2000, CURRENCY, sid, f"session:{sid}:release", ts)])
        return account

    def one_tap(self) -> None:
        """A card comes in from the reader; return once its start is decided and the hold committed."""
        raw = ":".join(self.uids[self.next_tap][i:i + 2] for i in range(0, 8, 2))
        self.next_tap += 1
        uid = normalise_uid(raw)
        tx_id, self.next_tx = self.next_tx, self.next_tx + 1
        charger = f"CP{tx_id % 50}"
        tx = vars(observe.start_op_16(charger, tx_id, {"connectorId": 1, "idTag": uid, "meterStart": 1000,
                                                     "timestamp": now_iso()}, offline=False))
        out = self.store.write_now(lambda c: billing.decide(c, uid=uid, charger_id=charger, version="1.6",
                                                            kind="start", tx=tx))
        assert out["status"] == "Accepted" and out["hold_minor"] > 0, out

    def one_veteran_tap(self) -> None:
        """(b) for the veteran card; then its StopTransaction (2 kWh), outside the measurement."""
        t0 = time.perf_counter()
        uid = normalise_uid(self.veteran_uid.lower())
        tx_id, self.next_tx = self.next_tx, self.next_tx + 1
        tx = vars(observe.start_op_16("CP0", tx_id, {"connectorId": 1, "idTag": uid, "meterStart": 1000,
                                                   "timestamp": now_iso()}, offline=False))
        out = self.store.write_now(lambda c: billing.decide(c, uid=uid, charger_id="CP0", version="1.6",
                                                            kind="start", tx=tx))
        self.veteran.values.append(time.perf_counter() - t0)
        assert out["status"] == "Accepted" and out["hold_minor"] > 0, out
        stop = observe.stop_ops_16("CP0", {"transactionId": tx_id, "meterStop": 3000, "timestamp": now_iso()})
        self.store.write_now(lambda c: persist.apply(c, stop))
        self.veteran.elapsed += time.perf_counter() - t0

    def one_post(self, account: int | None = None) -> None:
        """A top-up in its own transaction: to the (b) accounts in turn, or to `account`."""
        self.next_key += 1
        key = f"bench:topup:{self.next_key}"
        if account is None:
            account = self.accounts[self.next_key % len(self.accounts)]
        _, added = self.store.write_now(lambda c: ledger.post(c, account, "topup", 100, key=key, currency=CURRENCY))
        assert added

    def run(self, n: int, n_veteran: int) -> None:
        """One round of (b), (c) and (e)."""
        self.tap.timed(self.one_tap, n)
        self.post.timed(self.one_post, n)
        for _ in range(n_veteran):
            self.one_veteran_tap()
        self.veteran_post.timed(lambda: self.one_post(self.veteran_account), n_veteran)


async def group_commit(path: Path, writers: int, per_writer: int) -> tuple[Samples, int, int]:
    """(d): `writers` tasks, each posting `per_writer` top-ups one after another through `Store.write`."""
    store = Store.open(str(path))
    accounts = store.write_now(lambda c: [cards.add_card(c, f"{0x0A000000 + w:08X}", "commercial",
                                                         name=f"writer {w}").account_id for w in range(writers)])
    store.start()
    samples = Samples()

    async def writer(w: int) -> None:
        for i in range(per_writer):
            key = f"bench:group:{w}:{i}"
            t0 = time.perf_counter()
            await store.write(lambda c, key=key: ledger.post(c, accounts[w], "topup", 100, key=key,
                                                             currency=CURRENCY))
            samples.values.append(time.perf_counter() - t0)

    await store.flush()
    commits0 = store.commits
    start = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    samples.elapsed = time.perf_counter() - start
    commits = store.commits - commits0
    posted = store.db.execute("SELECT count(*) FROM ledger WHERE key LIKE 'bench:group:%'").fetchone()[0]
    await store.aclose()
    return samples, commits, posted


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer samples and writers (about 10 s)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds of (a), (b), (c)")
    ap.add_argument("--samples", type=int, help="samples per measure per round")
    ap.add_argument("--writers", type=int, help="concurrent writers in (d)")
    ap.add_argument("--per-writer", type=int, help="top-ups each writer posts in (d)")
    ap.add_argument("--history", type=int, help="past sessions of the account in (e)")
    ap.add_argument("--dir", type=Path, default=ROOT, help="where to make the temporary directory (default:"
                    " the repository, so the files are on its disk)")
    args = ap.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    n = args.samples or (100 if args.quick else 300)
    writers = args.writers or (50 if args.quick else 100)
    per_writer = args.per_writer or (10 if args.quick else 20)
    history = args.history if args.history is not None else (1000 if args.quick else 5000)
    n_veteran = max(1, n // 5)
    warmup = 20

    with tempfile.TemporaryDirectory(prefix=".bench-ledger-", dir=args.dir) as tmp:
        d = Path(tmp)
        fs = fs_of(d)
        bare = Bare(d / "bare.db")
        bill = Billing(d / "site.db", taps=rounds * n + warmup, history=history)
        bare.run(warmup)
        bill.tap.timed(bill.one_tap, warmup)
        bill.post.timed(bill.one_post, warmup)
        bill.one_veteran_tap()
        bill.one_post(bill.veteran_account)
        bare.samples, bill.tap, bill.post = Samples(), Samples(), Samples()
        bill.veteran, bill.veteran_post = Samples(), Samples()
        for _ in range(rounds):
            bare.run(n)
            bill.run(n, n_veteran)
        bare.close()
        bill.store.close()
        group, commits, posted = asyncio.run(group_commit(d / "group.db", writers, per_writer))
        assert posted == writers * per_writer, (posted, writers * per_writer)

    b50, b99, brate = bare.samples.p(50), bare.samples.p(99), bare.samples.rate
    tap_ratio = bill.tap.p(99) / b99
    veteran_ratio = bill.veteran.p(99) / b99
    veteran_post_ratio = bill.veteran_post.rate / brate
    post_ratio = bill.post.rate / brate
    group_ratio = group.rate / brate
    print(f"bench/ledger.py: {'quick, ' if args.quick else ''}{rounds} rounds × {n} samples interleaved;"
          f" {fs} ({d.parent}); SQLite {sqlite3.sqlite_version}, Python {platform.python_version()},"
          f" {os.cpu_count()} CPUs")
    head = f"{'measure':<46} {'n':>5} {'p50 ms':>7} {'p99 ms':>7} {'per s':>8}  {'ratio':<22} {'target':<8}"
    print(head)
    print("-" * len(head))
    print(f"{'(a) bare commit, WAL + synchronous=FULL':<46} {len(bare.samples.values):>5} {ms(b50):>7}"
          f" {ms(b99):>7} {brate:>8.0f}  {'1 (baseline)':<22}")
    print(f"{'(b) tap → decide(start), hold committed':<46} {len(bill.tap.values):>5} {ms(bill.tap.p(50)):>7}"
          f" {ms(bill.tap.p(99)):>7} {bill.tap.rate:>8.0f}  {f'p99 = {tap_ratio:.3g}× bare p99':<22}"
          f" {f'≤ {TARGET_TAP_P99:g}×':<6} {verdict(tap_ratio <= TARGET_TAP_P99)}")
    print(f"{'(c) ledger.post topup, one commit each':<46} {len(bill.post.values):>5} {ms(bill.post.p(50)):>7}"
          f" {ms(bill.post.p(99)):>7} {bill.post.rate:>8.0f}  {f'{post_ratio:.3g}× bare commits/s':<22}"
          f" {f'≥ {TARGET_POSTINGS:g}×':<6} {verdict(post_ratio >= TARGET_POSTINGS)}")
    label = f"(d) group commit, {writers} writers × {per_writer}"
    print(f"{label:<46} {len(group.values):>5} {ms(group.p(50)):>7} {ms(group.p(99)):>7} {group.rate:>8.0f}"
          f"  {f'{group_ratio:.3g}× bare commits/s':<22} {f'{posted / commits:.1f} postings/commit'}")
    label = f"(e) = (b), account with {history} past sessions"
    print(f"{label:<46} {len(bill.veteran.values):>5} {ms(bill.veteran.p(50)):>7} {ms(bill.veteran.p(99)):>7}"
          f" {'':>8}  {f'p99 = {veteran_ratio:.3g}× bare p99':<22}"
          f" {f'≤ {TARGET_TAP_P99:g}×':<6} {verdict(veteran_ratio <= TARGET_TAP_P99)}")
    label = "(f) = (c), on that account"
    print(f"{label:<46} {len(bill.veteran_post.values):>5} {ms(bill.veteran_post.p(50)):>7}"
          f" {ms(bill.veteran_post.p(99)):>7} {bill.veteran_post.rate:>8.0f}"
          f"  {f'{veteran_post_ratio:.3g}× bare commits/s':<22}"
          f" {f'≥ {TARGET_POSTINGS:g}×':<6} {verdict(veteran_post_ratio >= TARGET_POSTINGS)}")
    print(f"also: (b) p50 = {bill.tap.p(50) / b50:.2f}× bare p50, p99 = {bill.tap.p(99) / b50:.2f}× bare p50;"
          f" (c) p50 = {bill.post.p(50) / b50:.2f}× bare p50")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
