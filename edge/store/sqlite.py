"""The SQLite store: schema migrations, pragmas, and a group-commit writer.

One file, WAL, ``synchronous=FULL``. All writes go through `Store.write` (awaited: the caller continues only
after the change is committed and fsynced) or `Store.write_soon` (journal rows; committed with the next
batch). Writes from many connections are gathered and committed together in one transaction on a writer
thread, so a thousand chargers cost a handful of fsyncs a second, not a thousand. Reads use their own
connection (`Store.db`, a sqlite-utils `Database`), one per thread (a loop's and its helper threads' reads
never share a transaction); WAL lets them run beside writes. The web process has a `Store` of its own on the
same file: SQLite takes turns between the two processes' writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlite_utils

from edge.store.guard import Identity, StoreError, check_path

log = logging.getLogger(__name__)

WriteFn = Callable[[sqlite3.Connection], Any]

MIGRATIONS: list[str] = [
    # 1: chargers, connector status, transactions, meter values, the upstream queue, auth cache, journal
    """
    CREATE TABLE chargers (
        id TEXT PRIMARY KEY,
        ocpp_version TEXT,
        vendor TEXT, model TEXT, serial TEXT, firmware TEXT,
        first_seen TEXT, last_seen TEXT, last_boot TEXT,
        connected INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE connector_status (
        charger_id TEXT NOT NULL, evse_id INTEGER NOT NULL, connector_id INTEGER NOT NULL,
        status TEXT NOT NULL, error_code TEXT, timestamp TEXT,
        PRIMARY KEY (charger_id, evse_id, connector_id)
    );
    CREATE TABLE transactions (
        id INTEGER PRIMARY KEY,              -- the edge's own id (what a 1.6 charger is given)
        charger_id TEXT NOT NULL,
        tx_key TEXT NOT NULL,                -- 1.6: str(id); 2.0.1: the charger's transactionId
        ocpp_version TEXT NOT NULL,
        evse_id INTEGER, connector_id INTEGER,
        id_tag TEXT,
        meter_start INTEGER, meter_stop INTEGER, energy_wh INTEGER,
        started_at TEXT, stopped_at TEXT, stop_reason TEXT,
        started_offline INTEGER NOT NULL DEFAULT 0,
        upstream_tx_id INTEGER,              -- 1.6 proxy: upstream's id for this transaction
        upstream_status TEXT,                -- 1.6 proxy: upstream's idTagInfo status at start
        boot_id TEXT, clock_synced INTEGER NOT NULL DEFAULT 0,
        UNIQUE (charger_id, tx_key)
    );
    CREATE TABLE meter_values (
        id INTEGER PRIMARY KEY,
        charger_id TEXT NOT NULL, tx_key TEXT, connector_id INTEGER,
        timestamp TEXT, measurand TEXT, phase TEXT, unit TEXT, context TEXT, value TEXT
    );
    CREATE INDEX meter_values_tx ON meter_values (charger_id, tx_key);
    CREATE TABLE upstream_queue (
        charger_id TEXT NOT NULL,
        seq INTEGER NOT NULL,                -- per charger, in the order upstream must see them
        msg_id TEXT NOT NULL,
        action TEXT NOT NULL,
        frame TEXT NOT NULL,                 -- the charger's original text
        tx_id INTEGER,                       -- 1.6: the edge's transaction id the frame refers to
        created TEXT NOT NULL,
        PRIMARY KEY (charger_id, seq)
    );
    CREATE TABLE replay_state (              -- latest Boot and Status frames to send first on reconnect
        charger_id TEXT NOT NULL, key TEXT NOT NULL, frame TEXT NOT NULL, pending INTEGER NOT NULL,
        PRIMARY KEY (charger_id, key)
    );
    CREATE TABLE auth_cache (
        id_tag TEXT PRIMARY KEY, status TEXT NOT NULL, expires TEXT, info TEXT, updated TEXT NOT NULL
    );
    CREATE TABLE journal (
        id INTEGER PRIMARY KEY,
        charger_id TEXT NOT NULL, ts TEXT NOT NULL,
        direction TEXT NOT NULL,             -- 'c>e' charger to edge, 'e>c', 'e>u', 'u>e'; 'c>u'/'u>c':
                                             -- passed through unchanged
        frame TEXT NOT NULL
    );
    CREATE INDEX journal_charger ON journal (charger_id, id);
    """,
    # 2: billing: accounts (the site's registered users), cards, the append-only ledger, session billing
    """
    CREATE TABLE accounts (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL, phone TEXT, email TEXT,
        created TEXT NOT NULL,
        blocked INTEGER NOT NULL DEFAULT 0,
        balance_minor INTEGER NOT NULL DEFAULT 0,  -- Σ posted entries, kept by ledger.post (same commit)
        held_minor INTEGER NOT NULL DEFAULT 0      -- Σ open holds, kept by ledger.post
    );
    CREATE TABLE cards (
        uid TEXT PRIMARY KEY,                -- upper-case hex of the UID bytes
        account_id INTEGER NOT NULL REFERENCES accounts (id),
        kind TEXT NOT NULL CHECK (kind IN ('personal', 'commercial')),
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'blocked', 'lost')),
        chargers TEXT,                       -- JSON list: the chargers a personal card may use; NULL: all
        created TEXT NOT NULL, updated TEXT NOT NULL, last_used TEXT,
        list_version INTEGER NOT NULL DEFAULT 0  -- the local-list version in which it last changed
    );
    CREATE INDEX cards_account ON cards (account_id);
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts (id),
        kind TEXT NOT NULL CHECK (kind IN ('topup', 'hold', 'capture', 'release', 'refund', 'adjustment')),
        amount_minor INTEGER NOT NULL,       -- hold/capture/release: positive; adjustment: signed
        currency TEXT NOT NULL,
        session_id INTEGER REFERENCES transactions (id),
        key TEXT NOT NULL UNIQUE,            -- idempotency key, derived from what caused the entry
        note TEXT,
        created TEXT NOT NULL
    );
    CREATE INDEX ledger_account ON ledger (account_id, kind);
    CREATE INDEX ledger_session ON ledger (session_id);
    ALTER TABLE transactions ADD COLUMN account_id INTEGER;
    ALTER TABLE transactions ADD COLUMN card_kind TEXT;
    ALTER TABLE transactions ADD COLUMN hold_minor INTEGER;
    ALTER TABLE transactions ADD COLUMN cost_minor INTEGER;
    ALTER TABLE transactions ADD COLUMN captured_minor INTEGER;
    ALTER TABLE transactions ADD COLUMN uncollected_minor INTEGER;
    ALTER TABLE transactions ADD COLUMN cost_detail TEXT;
    ALTER TABLE transactions ADD COLUMN billing_stop TEXT;  -- why the edge itself stopped the session
    ALTER TABLE transactions ADD COLUMN auth_status TEXT;   -- the edge's decision at start (a retry gets it)
    CREATE INDEX transactions_open_card ON transactions (id_tag) WHERE stopped_at IS NULL;
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('local_list_version', '0');
    """,
    # 3: cloud sync: the outbox (written in the same transaction as the change), commands applied once,
    # tariffs replaced by the cloud
    """
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- the per-site sequence: gap-free, never reused
        key TEXT NOT NULL UNIQUE,            -- idempotency key of the record
        kind TEXT NOT NULL CHECK (kind IN ('session', 'ledger', 'card')),
        body TEXT NOT NULL,                  -- the record's fields (JSON)
        created TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'sent', 'done')),
        sent_at TEXT, done_at TEXT
    );
    CREATE INDEX outbox_state ON outbox (state, seq);
    CREATE TABLE applied_commands (
        id TEXT PRIMARY KEY, kind TEXT NOT NULL, ok INTEGER NOT NULL, error TEXT, applied_at TEXT NOT NULL
    );
    CREATE TABLE tariffs (
        id INTEGER PRIMARY KEY, valid_from TEXT NOT NULL, body TEXT NOT NULL, command_id TEXT,
        created TEXT NOT NULL
    );
    INSERT INTO meta (key, value) VALUES ('sync_last_ack', '0');
    """,
    # 4: taps of cards the site does not know, kept briefly so that an owner can enrol a card by tapping it
    """
    CREATE TABLE unknown_taps (
        id INTEGER PRIMARY KEY, uid TEXT NOT NULL, reader TEXT NOT NULL, at TEXT NOT NULL
    );
    """,
    # 5: the journal is written in batches, one row per charger per flush (a row a frame cost the proxy a
    # fifth of its CPU); frames: a JSON array of [ts, direction, frame], oldest first
    """
    CREATE TABLE journal_batches (
        id INTEGER PRIMARY KEY,
        charger_id TEXT NOT NULL,
        ts TEXT NOT NULL,                    -- the newest frame's time
        n INTEGER NOT NULL,
        frames TEXT NOT NULL
    );
    CREATE INDEX journal_batches_charger ON journal_batches (charger_id, id);
    INSERT INTO journal_batches (charger_id, ts, n, frames)
        SELECT charger_id, ts, 1, json_array(json_array(ts, direction, frame)) FROM journal ORDER BY id;
    DROP TABLE journal;
    """,
    # 6: what each applied cloud command said (a digest), so that one id re-sent with other content is refused
    """
    ALTER TABLE applied_commands ADD COLUMN digest TEXT;
    """,
    # 7: the HTTP API's bearer tokens (only their SHA-256) and the audit of operations on chargers
    """
    CREATE TABLE api_tokens (
        name TEXT PRIMARY KEY, role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'owner')),
        hash TEXT NOT NULL UNIQUE, created TEXT NOT NULL, last_used TEXT
    );
    CREATE TABLE operations (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        who TEXT NOT NULL,                   -- the token's name (or "cli" for the CLI on the Pi)
        charger_id TEXT NOT NULL,
        action TEXT NOT NULL,
        request TEXT NOT NULL,               -- the payload sent (JSON)
        status TEXT NOT NULL,                -- answered, callerror, not_connected, timeout
        response TEXT, error TEXT, problem TEXT, took_ms REAL
    );
    CREATE INDEX operations_charger ON operations (charger_id, id);
    """,
    # 8: firmware images the edge serves, file transfers (firmware updates, log uploads) and the charger's word
    # on each, reservations, and each 2.0.1 charger's device model (NotifyReport)
    """
    CREATE TABLE firmware (name TEXT PRIMARY KEY, size INTEGER NOT NULL, sha256 TEXT NOT NULL, added TEXT NOT NULL);
    CREATE TABLE file_transfers (
        id INTEGER PRIMARY KEY,              -- also the requestId sent to a 2.0.1 charger
        kind TEXT NOT NULL CHECK (kind IN ('firmware', 'log')),
        charger_id TEXT NOT NULL,
        secret TEXT NOT NULL UNIQUE,         -- the one-time part of the URL the charger downloads from / uploads to
        file TEXT,                           -- firmware: the image's name; log: the name the upload came with
        size INTEGER,                        -- log: bytes received
        status TEXT NOT NULL,                -- requested, then the charger's statuses (Downloading, Installed, ...)
        history TEXT NOT NULL DEFAULT '[]',  -- [[at, status], ...]
        who TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL, expires TEXT NOT NULL
    );
    CREATE INDEX file_transfers_charger ON file_transfers (charger_id, kind, id);
    CREATE TABLE reservations (
        id INTEGER PRIMARY KEY,              -- the reservationId / id sent to the charger
        charger_id TEXT NOT NULL, connector_id INTEGER NOT NULL, id_tag TEXT NOT NULL,
        expires TEXT NOT NULL,
        status TEXT NOT NULL,                -- requested, active (the charger accepted), used, cancelled, refused
        who TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL
    );
    CREATE INDEX reservations_at ON reservations (charger_id, connector_id, status);
    CREATE TABLE device_model (
        charger_id TEXT NOT NULL,
        key TEXT NOT NULL,                   -- COMPONENT.VARIABLE as the configuration intents name it (evse, instance)
        attribute TEXT NOT NULL,             -- Actual, Target, MinSet, MaxSet
        value TEXT, mutability TEXT, data_type TEXT, unit TEXT, updated TEXT NOT NULL,
        PRIMARY KEY (charger_id, key, attribute)
    );
    """,
    # 9: the owner backend's accounts (scrypt hashes), their login sessions (only a hash of each id is kept),
    # failed logins by name (for the lockout, known name or not), and the secret that signs session cookies
    """
    CREATE TABLE admins (
        name TEXT PRIMARY KEY, role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'owner')),
        password_hash TEXT NOT NULL, created TEXT NOT NULL, last_login TEXT
    );
    CREATE TABLE web_sessions (
        id_hash TEXT PRIMARY KEY, admin TEXT NOT NULL REFERENCES admins (name) ON DELETE CASCADE,
        csrf TEXT NOT NULL, created TEXT NOT NULL, expires TEXT NOT NULL
    );
    CREATE TABLE login_failures (name TEXT PRIMARY KEY, count INTEGER NOT NULL, last TEXT NOT NULL,
                                 locked_until TEXT);
    CREATE TABLE web_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 10: every change made through the owner backend: who, when, what, and the thing before and after
    """
    CREATE TABLE changes (
        id INTEGER PRIMARY KEY, at TEXT NOT NULL, who TEXT NOT NULL, what TEXT NOT NULL, subject TEXT NOT NULL,
        before TEXT, after TEXT
    );
    """,
    # 11: the owner's pages on a year of sessions: the newest first, a day's or a month's, a user's
    """
    CREATE INDEX transactions_started ON transactions (started_at);
    CREATE INDEX transactions_stopped ON transactions (stopped_at);
    CREATE INDEX transactions_account ON transactions (account_id, started_at);
    """,
]


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations not yet applied; return the schema version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        log.info("store: applied migration %d", number)
        version = number
    return version


class Store:
    """The site's database. Create with `Store.open(path)`; in asyncio, `start()` the writer thread and
    `await aclose()` at the end (it commits what is queued)."""

    def __init__(self, path: str, create: bool = True):
        self.path = path
        check_path(path, create=create)
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._wconn = _connect(path)
            self.version = migrate(self._wconn)
            self._first_db = sqlite_utils.Database(_connect(path))
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"cannot open the database {path}: {e}") from None
        self.identity = Identity.of(path)
        self.write_error: str | None = None  # the store itself failed its last commit (not a caller's bad write)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._reads = threading.local()  # each thread's own read connection
        self._reads.db = self._first_db
        self._read_dbs = [self._first_db]
        self.commits = 0

    @classmethod
    def open(cls, path: str, create: bool = True) -> Store:
        """The database at `path`, migrated; `create=False`: a missing file is a `StoreError`, not a new
        empty database (only `run` and `init` make one)."""
        return cls(path, create)

    @property
    def db(self) -> sqlite_utils.Database:
        """The calling thread's read connection (made on its first read): a connection must not be shared by
        two threads, whose transactions would interleave. An in-memory database has only the one."""
        db = getattr(self._reads, "db", None)
        if db is None:
            if self.path == ":memory:":
                return self._first_db
            db = self._reads.db = sqlite_utils.Database(_connect(self.path))
            with self._lock:
                self._read_dbs.append(db)
        return db

    def problem(self) -> str | None:
        """Why the store cannot do its job now (for `/healthz`), or None: the file was deleted or replaced
        under the running edge (`file_problem`), or the last commit failed (`write_error`)."""
        return self.file_problem() or self.write_error

    def file_problem(self) -> str | None:
        if self.path == ":memory:":
            return None
        now = Identity.of(self.path)
        if now is None:
            return f"the database {self.path} was deleted while the edge runs: what is written now is lost at restart"
        if now != self.identity:
            return f"the database {self.path} was replaced while the edge runs (restart the edge to use the new file)"
        return None

    def _wrote(self, error: str | None) -> None:
        """The last commit's outcome; a change is said loudly in the log."""
        if error is not None and self.write_error is None:
            log.error("STORE PROBLEM: %s", error)
        elif error is None and self.write_error is not None:
            log.warning("store: writable again")
        self.write_error = error

    # -- synchronous use (CLI, start-up, other threads) ----------------------------------------------------
    def read_now(self, fn: WriteFn) -> Any:
        """Run the read `fn` on one snapshot of the database (the read connection, on the calling thread)."""
        conn = self.db.conn
        conn.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            conn.execute("ROLLBACK")

    def write_now(self, fn: WriteFn) -> Any:
        """Run `fn` in its own committed transaction, on the calling thread."""
        with self._lock:
            self._wconn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(self._wconn)
                self._wconn.execute("COMMIT")
            except BaseException:
                self._wconn.execute("ROLLBACK")
                raise
        return result

    # -- asyncio use: a writer thread commits batches --------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._writer, name="store-writer", daemon=True)
        self._thread.start()

    async def write(self, fn: WriteFn) -> Any:
        """Commit `fn`'s changes (batched with other writers) and return its result once durable."""
        if self._thread is None:
            return self.write_now(fn)
        fut = asyncio.get_running_loop().create_future()
        self._queue.put((fn, fut))
        return await fut

    async def settled(self) -> None:
        """Wait until everything queued before this call (`write_soon` too) is committed: a read after it sees
        what the same client was already told happened."""
        await self.write(lambda conn: None)

    def write_soon(self, fn: WriteFn) -> None:
        """Queue `fn` for the next batch without waiting (journal rows and other best-effort writes)."""
        if self._thread is None:
            self.write_now(fn)
        else:
            self._queue.put((fn, None))

    def _writer(self) -> None:
        """The writer thread: take what is queued, commit it as one transaction, hand the results back."""
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            results = self._apply(batch)
            by_loop: dict[asyncio.AbstractEventLoop, list] = {}  # each waiter is woken on its own loop
            for item, result in zip(batch, results, strict=True):
                fut = item[1]
                if fut is not None:
                    by_loop.setdefault(fut.get_loop(), []).append((fut, result))
                elif not result[0]:
                    log.error("store: background write failed: %s", result[1])
            for loop, waiters in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_deliver, waiters)
                except RuntimeError:  # that loop is closed: nobody is waiting there any more
                    pass
            if stop:
                return

    def _apply(self, batch: list) -> list[tuple[bool, Any]]:
        """All of `batch` in one transaction; if one write fails, each is run again in its own, so that one
        bad write does not sink the others."""
        with self._lock:
            conn = self._wconn
            try:
                conn.execute("BEGIN IMMEDIATE")
                results = [(True, fn(conn)) for fn, _ in batch]
                conn.execute("COMMIT")
                self.commits += 1
                self._wrote(None)
                return results
            except Exception:
                _rollback(conn)
            results = []
            for fn, _ in batch:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    result = fn(conn)
                    conn.execute("COMMIT")
                    results.append((True, result))
                    self.commits += 1
                    self._wrote(None)
                except Exception as e:
                    _rollback(conn)
                    if isinstance(e, sqlite3.OperationalError | sqlite3.DatabaseError) and \
                            not isinstance(e, sqlite3.IntegrityError):
                        self._wrote(f"the database {self.path} cannot be written: {e}")
                    results.append((False, e))
            return results

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        await self.write(lambda conn: None)

    async def aclose(self) -> None:
        if self._thread is not None:
            await self.flush()
            self._queue.put(None)
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
            self._thread = None
        self.close()

    def close(self) -> None:
        self._wconn.close()
        with self._lock:
            for db in self._read_dbs:
                db.conn.close()


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _deliver(waiters: list[tuple[asyncio.Future, tuple[bool, Any]]]) -> None:
    for fut, (ok, value) in waiters:
        if not fut.done():
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
