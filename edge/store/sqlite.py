"""The SQLite store: its migrations run (`edge.store.migrations`), pragmas, and a group-commit writer.

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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlite_utils

from edge.store.guard import Identity, StoreError, check_path
from edge.store.migrations import MIGRATIONS

log = logging.getLogger(__name__)

WriteFn = Callable[[sqlite3.Connection], Any]
LATER = object()  # in the writer's queue in place of a waiter: a write that may wait for company



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
        self.background_delay = 0.0  # seconds a batch of only `later` writes waits for more (`_writer`)
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

    def write_soon(self, fn: WriteFn, later: bool = False) -> None:
        """Queue `fn` for the next batch without waiting (journal rows and other best-effort writes); `later`:
        it may also wait up to `background_delay` seconds for company (see `_writer`)."""
        if self._thread is None:
            self.write_now(fn)
        else:
            self._queue.put((fn, LATER if later else None))

    def _writer(self) -> None:
        """The writer thread: take what is queued, commit it as one transaction, hand the results back.

        A batch of only `later` writes (`write_soon(later=True)`: journal rows, meter samples, heartbeats)
        waits up to `background_delay` seconds for more before it is committed, so that a quiet site's messages
        share pages and commits (what an SD card is worn by); any other write commits at once, with whatever
        is queued before it."""
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            deadline = time.monotonic() + self.background_delay
            while True:
                waiting = all(fut is LATER for _, fut in batch) and time.monotonic() < deadline
                try:
                    more = self._queue.get(timeout=max(0.0, deadline - time.monotonic())) if waiting \
                        else self._queue.get_nowait()
                except queue.Empty:
                    if waiting:
                        continue  # the delay is over: the loop's next turn takes what is left, then commits
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            results = self._apply(batch)
            by_loop: dict[asyncio.AbstractEventLoop, list] = {}  # each waiter is woken on its own loop
            for item, result in zip(batch, results, strict=True):
                fut = item[1]
                if fut is not None and fut is not LATER:
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
