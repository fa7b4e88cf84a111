"""The message journal: every OCPP frame the edge sees or sends, per charger, bounded by count and age.

Frames are buffered and written with the store's next batch (they never hold up an answer), one row per charger
per flush holding that charger's frames as a JSON array (a row per frame was a fifth of the proxy's CPU).
`prune` keeps at least the newest `max_rows` frames per charger (a quarter more at most) and nothing older than
`max_age_days`. `read` masks card identifiers.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time

from edge.clock import now_iso
from edge.store.sqlite import Store

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
            self.store.write_soon(lambda conn: _insert(conn, rows), later=True)

    def prune(self, conn: sqlite3.Connection) -> int:
        """Drop frames older than `max_age_days`, and of a charger past `max_rows` frames by a quarter, its oldest
        batches down to at least `max_rows`; return how many frames went. Whole batches go, none is rewritten,
        and a charger is pruned once in a while rather than a batch a minute: an SD card wears with each page
        written, and a charger's batches lie together."""
        cutoff = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - self.max_age_days * 86400))
        n = conn.execute("SELECT coalesce(sum(n), 0) FROM journal_batches WHERE ts < ?", (cutoff,)).fetchone()[0]
        conn.execute("DELETE FROM journal_batches WHERE ts < ?", (cutoff,))  # (a batch spans half a second)
        over = conn.execute("SELECT charger_id, sum(n) FROM journal_batches GROUP BY charger_id HAVING sum(n) > ?",
                            (self.max_rows + self.max_rows // 4,)).fetchall()
        for charger_id, total in over:
            gone, ids = 0, []
            for batch_id, count in conn.execute("SELECT id, n FROM journal_batches WHERE charger_id = ? ORDER BY id",
                                                (charger_id,)):
                if total - gone - count < self.max_rows:
                    break
                gone += count
                ids.append(batch_id)
            conn.executemany("DELETE FROM journal_batches WHERE id = ?", [(i,) for i in ids])
            n += gone
        return n


def _insert(conn: sqlite3.Connection, rows: list) -> None:
    batches: dict[str, list] = {}
    for cid, at, direction, frame in rows:
        text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
        batches.setdefault(cid, []).append((now_iso(at), direction, text))
    conn.executemany("INSERT INTO journal_batches (charger_id, ts, n, frames) VALUES (?, ?, ?, ?)",
                     [(cid, frames[-1][0], len(frames), json.dumps(frames, ensure_ascii=False))
                      for cid, frames in batches.items()])


def _row(batch_id: int, i: int, entry: list) -> dict:
    ts, direction, frame = entry
    return {"id": f"{batch_id}.{i}", "ts": ts, "direction": direction, "frame": mask_frame(frame)}


def read(store: Store, charger_id: str, limit: int = 100) -> list[dict]:
    """The newest `limit` frames of a charger, oldest first, card ids masked (``id``: batch and place)."""
    rows: list[dict] = []
    for batch_id, frames in store.db.execute(
            "SELECT id, frames FROM journal_batches WHERE charger_id = ? ORDER BY id DESC", [charger_id]):
        batch = json.loads(frames)
        for i in range(len(batch) - 1, -1, -1):
            rows.append(_row(batch_id, i, batch[i]))
            if len(rows) >= limit:
                return rows[::-1]
    return rows[::-1]


def read_since(store: Store, charger_id: str, after: int) -> tuple[list[dict], int]:
    """Every frame of a charger written in batches after batch `after`, oldest first, card ids masked, and the
    last batch id seen (for the next call: `sitekeeper journal --follow`)."""
    rows: list[dict] = []
    for batch_id, frames in store.db.execute(
            "SELECT id, frames FROM journal_batches WHERE charger_id = ? AND id > ? ORDER BY id", [charger_id, after]):
        rows += [_row(batch_id, i, entry) for i, entry in enumerate(json.loads(frames))]
        after = batch_id
    return rows, after


def batch_of(row: dict) -> int:
    """The batch a row from `read` or `read_since` came in."""
    return int(row["id"].split(".")[0])
