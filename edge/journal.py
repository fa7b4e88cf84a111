"""The message journal: every OCPP frame the edge sees or sends, per charger, bounded by count and age.

Rows are buffered and written with the store's next batch (they never hold up an answer). `prune` keeps at
most `max_rows` per charger and nothing older than `max_age_days`. `read` masks card identifiers.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time

from edge.clock import now_iso
from edge.store import Store

_CARD = re.compile(r'("(?:idTag|idToken|parentIdTag|groupIdToken)"\s*:\s*)"([^"]*)"')


def mask_uid(uid: str) -> str:
    """Show only the last four characters of a card id: ``****A1B2``."""
    return "*" * max(0, min(len(uid) - 4, 8)) + uid[-4:] if len(uid) > 4 else "*" * len(uid)


def mask_frame(text: str) -> str:
    return _CARD.sub(lambda m: f'{m.group(1)}"{mask_uid(m.group(2))}"', text)


class Journal:
    """Frames are kept in memory for a moment and written every `interval` seconds in one batch of their own,
    so they never sit in the transactions that answers wait for."""

    def __init__(self, store: Store, max_rows: int = 2000, max_age_days: int = 14, interval: float = 0.5):
        self.store = store
        self.max_rows = max_rows
        self.max_age_days = max_age_days
        self.interval = interval
        self._rows: list[tuple[str, float, str, str | bytes]] = []
        self._timer: asyncio.TimerHandle | None = None

    def add(self, charger_id: str, direction: str, frame: str | bytes) -> None:
        self._rows.append((charger_id, time.time(), direction, frame))
        if self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(self.interval, self.flush)
            except RuntimeError:  # no loop (a script, a test): write at once
                self.flush()

    def passed_through(self, charger_id: str, frame: str | bytes, direction: str) -> bool:
        """The edge forwards `frame` unchanged (the very text it just journaled as received): relabel that row
        ('c>u' charger → upstream, 'u>c' upstream → charger) instead of writing the text twice. False if
        the row has been written already; then the caller journals the send as usual."""
        rows = self._rows
        for i in range(len(rows) - 1, max(-1, len(rows) - 64), -1):
            cid, at, _, f = rows[i]
            if f is frame and cid == charger_id:
                rows[i] = (cid, at, direction, f)
                return True
        return False

    def flush(self) -> None:
        self._timer = None
        rows, self._rows = self._rows, []
        if rows:
            self.store.write_soon(lambda conn: _insert(conn, rows))

    def prune(self, conn: sqlite3.Connection) -> int:
        cutoff = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - self.max_age_days * 86400))
        n = conn.execute("DELETE FROM journal WHERE ts < ?", (cutoff,)).rowcount
        for (charger_id,) in conn.execute("SELECT charger_id FROM journal GROUP BY charger_id HAVING count(*) > ?",
                                          (self.max_rows,)).fetchall():
            n += conn.execute(
                "DELETE FROM journal WHERE charger_id = ? AND id <= (SELECT id FROM journal WHERE charger_id = ?"
                " ORDER BY id DESC LIMIT 1 OFFSET ?)", (charger_id, charger_id, self.max_rows)).rowcount
        return n


def _insert(conn: sqlite3.Connection, rows: list) -> None:
    conn.executemany("INSERT INTO journal (charger_id, ts, direction, frame) VALUES (?, ?, ?, ?)",
                     [(cid, now_iso(at), direction, frame.decode("utf-8", "replace") if isinstance(frame, bytes)
                       else frame) for cid, at, direction, frame in rows])


def read(store: Store, charger_id: str, limit: int = 100) -> list[dict]:
    """The newest `limit` frames of a charger, oldest first, card ids masked."""
    rows = list(store.db.query(
        "SELECT id, ts, direction, frame FROM journal WHERE charger_id = ? ORDER BY id DESC LIMIT ?",
        [charger_id, limit]))
    for row in rows:
        row["frame"] = mask_frame(row["frame"])
    return rows[::-1]
