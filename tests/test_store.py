"""The store: migrations, the group-commit writer, and the bounded journal."""

from __future__ import annotations

import asyncio
import json
import sqlite3

from edge.store.journal import Journal, mask_frame, read
from edge.store.sqlite import MIGRATIONS, Store


def test_migrations_are_applied_once_and_pragmas_set(tmp_path):
    path = str(tmp_path / "s.db")
    store = Store.open(path)
    assert store.version == len(MIGRATIONS)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._wconn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()
    again = Store.open(path)  # reopening applies nothing twice
    assert again.version == len(MIGRATIONS)
    again.close()


async def test_concurrent_writes_are_batched_and_durable(tmp_path):
    path = str(tmp_path / "s.db")
    store = Store.open(path)
    store.start()

    async def one(i: int) -> int:
        def fn(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO auth_cache (id_tag, status, updated) VALUES (?, 'Accepted', 'now')", (f"t{i}",))
            return i
        return await store.write(fn)

    results = await asyncio.gather(*(one(i) for i in range(500)))
    assert results == list(range(500))
    assert store.commits < 100, "500 writers should share a few commits"

    def bad(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO auth_cache (id_tag, status, updated) VALUES ('t1', 'Accepted', 'now')")

    ok, failed = await asyncio.gather(one(1000), store.write(bad), return_exceptions=True)
    assert ok == 1000 and isinstance(failed, sqlite3.IntegrityError), "one bad write does not sink the batch"
    await store.aclose()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM auth_cache").fetchone()[0] == 501


async def test_journal_keeps_newest_rows_per_charger_and_masks_cards(tmp_path):
    store = Store.open(str(tmp_path / "s.db"))
    store.start()
    journal = Journal(store, max_rows=10, max_age_days=1)
    for i in range(25):
        journal.add("A", "c>e", f'[2,"{i}","Authorize",{{"idTag":"04AABBCCDD{i:02d}"}}]')
    journal.add("B", "c>e", '[2,"x","Heartbeat",{}]')
    journal.flush()
    await store.flush()
    for i in range(25, 30):  # a second batch: the limit falls inside the first
        journal.add("A", "c>e", f'[2,"{i}","Heartbeat",{{}}]')
    journal.flush()
    await store.flush()
    store.write_now(lambda c: c.execute("INSERT INTO journal_batches (charger_id, ts, n, frames) VALUES"
                                        " ('B', '2000-01-01T00:00:00.000Z', 2, ?)",
                                        (json.dumps([["2000-01-01T00:00:00.000Z", "c>e", "old"]] * 2),)))
    assert len(read(store, "A", 100)) == 30
    removed = store.write_now(journal.prune)
    assert removed == 22
    rows = read(store, "A", 100)
    assert [r["frame"].split('"')[1] for r in rows] == [str(i) for i in range(20, 30)]
    assert [r["frame"].split('"')[1] for r in read(store, "A", 3)] == ["27", "28", "29"]
    assert store.write_now(journal.prune) == 0
    assert "04AABBCCDD" not in rows[0]["frame"] and rows[0]["frame"].endswith('"********DD20"}]')
    assert [r["frame"] for r in read(store, "B")] == ['[2,"x","Heartbeat",{}]']
    await store.aclose()


def test_journal_rows_of_an_older_store_survive_the_move_to_batches(tmp_path):
    path = str(tmp_path / "s.db")
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:4], start=1):
        conn.executescript(f"BEGIN;{script};PRAGMA user_version={number};COMMIT;")
    conn.executemany("INSERT INTO journal (charger_id, ts, direction, frame) VALUES (?, ?, ?, ?)",
                     [("A", "2026-01-01T00:00:00.000Z", "c>e", '[2,"1","Heartbeat",{}]'),
                      ("B", "2026-01-01T00:00:00.500Z", "c>e", '[2,"x","Heartbeat",{}]'),
                      ("A", "2026-01-01T00:00:01.000Z", "e>c", '[3,"1",{"currentTime":"2026-01-01T00:00:01Z"}]')])
    conn.close()
    store = Store.open(path)
    rows = read(store, "A")
    assert [(r["ts"], r["direction"], json.loads(r["frame"])[0]) for r in rows] == [
        ("2026-01-01T00:00:00.000Z", "c>e", 2), ("2026-01-01T00:00:01.000Z", "e>c", 3)]
    assert [r["frame"] for r in read(store, "B")] == ['[2,"x","Heartbeat",{}]']
    store.close()


def test_mask_frame_leaves_other_fields():
    text = '[2,"1","TransactionEvent",{"idToken":{"idToken":"AB12CD34EF","type":"ISO14443"},"seqNo":1}]'
    assert mask_frame(text) == '[2,"1","TransactionEvent",{"idToken":{"idToken":"******34EF","type":"ISO14443"},"seqNo":1}]'
