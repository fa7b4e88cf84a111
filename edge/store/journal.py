"""The message journal: every OCPP frame the edge sees or sends, per charger, bounded by count and age.

Frames are buffered and written with the store's next background commit (they never hold up an answer), all
of them in one block: a row holding each charger's frames, compressed (a row per frame was a fifth of the
proxy's CPU; a row per charger per flush, with its index entry, was half of what a site's steady traffic wrote
to its SD card). `prune` keeps at least the newest `max_rows` frames per charger and nothing older than
`max_age_days`. `read` masks card identifiers.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
import zlib

from edge.clock import now_iso
from edge.store.sqlite import Store

_CARD = re.compile(r'("(?:idTag|idToken|parentIdTag|groupIdToken)"\s*:\s*)"([^"]*)"')
# the same inside a JSON text in a string (a DataTransfer's data: the California pricing SetUserPrice's idToken)
_NESTED_CARD = re.compile(r'(\\"(?:idTag|idToken)\\"\s*:\s*)\\"([^"\\]*)\\"')


def mask_uid(uid: str) -> str:
    """Show only the last four characters of a card id: ``****A1B2``."""
    return "*" * max(0, min(len(uid) - 4, 8)) + uid[-4:] if len(uid) > 4 else "*" * len(uid)


def mask_frame(text: str) -> str:
    text = _CARD.sub(lambda m: f'{m.group(1)}"{mask_uid(m.group(2))}"', text)
    return _NESTED_CARD.sub(lambda m: f'{m.group(1)}\\"{mask_uid(m.group(2))}\\"', text)


class Journal:
    """Frames are kept in memory and written with the store's next background commit, all of them in one
    compressed block (so they never sit in the transactions that answers wait for, and a commit adds one small
    row rather than a row and an index entry per charger: what an SD card wears on)."""

    def __init__(self, store: Store, max_rows: int = 2000, max_age_days: int = 14, interval: float = 0.5):
        self.store = store
        self.max_rows = max_rows
        self.max_age_days = max_age_days
        self.interval = interval
        self._rows: list[tuple[str, float, str, str | bytes]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._queued = False  # a write of the buffer waits in the store's queue
        self._totals: dict[str, int] | None = None  # frames kept per charger (the writer thread's; see prune)

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
        the row has been taken for writing already; then the caller journals the send as usual."""
        rows = self._rows
        for i in range(len(rows) - 1, max(-1, len(rows) - 64), -1):
            cid, at, _, f = rows[i]
            if f is frame and cid == charger_id:
                rows[i] = (cid, at, direction, f)
                return True
        return False

    def flush(self) -> None:
        """Have the buffer written with the store's next background commit (what comes meanwhile goes too)."""
        self._timer = None
        if self._rows and not self._queued:
            self._queued = True
            self.store.write_soon(self._write, later=True)

    def _write(self, conn: sqlite3.Connection) -> None:
        self._queued = False  # (first: a frame added from now on has its own write queued)
        rows, self._rows = self._rows, []
        if rows:
            counts = _insert(conn, rows)
            if self._totals is not None:
                for cid, n in counts.items():
                    self._totals[cid] = self._totals.get(cid, 0) + n

    def prune(self, conn: sqlite3.Connection) -> int:
        """Drop the oldest blocks: those past `max_age_days`, and, once a charger is past `max_rows` frames by a
        quarter, those whose every charger keeps at least `max_rows` newer frames; return how many frames went.
        Whole blocks go, none is rewritten (an SD card wears with each page written); a charger that speaks
        rarely keeps the blocks with its frames, and what the others said then, until they are too old."""
        if self._totals is None:
            self._totals = {}
            for (counts,) in conn.execute("SELECT counts FROM journal_blocks"):
                for cid, n in json.loads(counts).items():
                    self._totals[cid] = self._totals.get(cid, 0) + n
        totals = self._totals
        cutoff = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - self.max_age_days * 86400))
        over = max(totals.values(), default=0) > self.max_rows + self.max_rows // 4
        gone: list[int] = []
        n = 0
        for block_id, ts, text in conn.execute("SELECT id, ts, counts FROM journal_blocks ORDER BY id"):
            counts = json.loads(text)
            if ts >= cutoff and not (over and all(totals.get(c, 0) - k >= self.max_rows for c, k in counts.items())):
                break  # (a block spans a background commit: its newest frame's time stands for it)
            gone.append(block_id)
            for cid, k in counts.items():
                totals[cid] = totals.get(cid, 0) - k
                n += k
        conn.executemany("DELETE FROM journal_blocks WHERE id = ?", [(i,) for i in gone])
        return n


def _insert(conn: sqlite3.Connection, rows: list) -> dict[str, int]:
    """One block of `rows`: {charger: [[ts, direction, frame], ...]} as compressed JSON; its counts."""
    frames: dict[str, list] = {}
    for cid, at, direction, frame in rows:
        text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
        frames.setdefault(cid, []).append((now_iso(at), direction, text))
    counts = {cid: len(f) for cid, f in frames.items()}
    conn.execute("INSERT INTO journal_blocks (ts, counts, n, frames) VALUES (?, ?, ?, ?)",
                 (now_iso(rows[-1][1]), json.dumps(counts), len(rows),
                  zlib.compress(json.dumps(frames, ensure_ascii=False).encode())))
    return counts


def _frames_of(stored: str | bytes, charger_id: str) -> list:
    """A block's frames of one charger (blocks moved from an older store are plain JSON)."""
    return json.loads(zlib.decompress(stored) if isinstance(stored, bytes) else stored).get(charger_id, [])


_BLOCKS_OF = ("SELECT id, frames FROM journal_blocks b WHERE EXISTS (SELECT 1 FROM json_each(b.counts) WHERE key = ?)"
              " AND id > ? ORDER BY id")


def _row(batch_id: int, i: int, entry: list) -> dict:
    ts, direction, frame = entry
    return {"id": f"{batch_id}.{i}", "ts": ts, "direction": direction, "frame": mask_frame(frame)}


def read(store: Store, charger_id: str, limit: int = 100) -> list[dict]:
    """The newest `limit` frames of a charger, oldest first, card ids masked (``id``: block and place)."""
    rows: list[dict] = []
    for block_id, stored in store.db.execute(_BLOCKS_OF + " DESC", [charger_id, 0]):
        batch = _frames_of(stored, charger_id)
        for i in range(len(batch) - 1, -1, -1):
            rows.append(_row(block_id, i, batch[i]))
            if len(rows) >= limit:
                return rows[::-1]
    return rows[::-1]


def read_since(store: Store, charger_id: str, after: int) -> tuple[list[dict], int]:
    """Every frame of a charger written in blocks after block `after`, oldest first, card ids masked, and the
    last block id seen (for the next call: `sitekeeper journal --follow`)."""
    rows: list[dict] = []
    for block_id, stored in store.db.execute(_BLOCKS_OF, [charger_id, after]):
        rows += [_row(block_id, i, entry) for i, entry in enumerate(_frames_of(stored, charger_id))]
        after = block_id
    return rows, after


def batch_of(row: dict) -> int:
    """The batch a row from `read` or `read_since` came in."""
    return int(row["id"].split(".")[0])
