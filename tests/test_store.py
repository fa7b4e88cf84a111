"""The store: migrations, the group-commit writer, and the bounded journal."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading

from edge.store import outbox
from edge.store.journal import Journal, mask_frame, read
from edge.store.migrations import MIGRATIONS
from edge.store.sqlite import Store


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


async def test_writes_from_the_web_thread_s_loop_are_answered_on_that_loop(tmp_path):
    """The web app runs on a loop of its own in another thread: its writes are committed with the chargers'
    and each writer is woken on its own loop; each thread reads through its own connection and sees them."""
    store = Store.open(str(tmp_path / "s.db"))
    store.start()
    seen: dict = {}

    def web_thread() -> None:
        async def main() -> None:
            def fn(conn: sqlite3.Connection) -> str:
                conn.execute("INSERT INTO auth_cache (id_tag, status, updated) VALUES ('web', 'Accepted', 'now')")
                return "committed"
            seen["result"] = await store.write(fn)
            seen["loop_ok"] = asyncio.get_running_loop() is not main_loop
            seen["conn"] = store.db.conn
            seen["rows"] = store.db.execute("SELECT id_tag FROM auth_cache ORDER BY id_tag").fetchall()
        asyncio.run(main())

    main_loop = asyncio.get_running_loop()
    thread = threading.Thread(target=web_thread)
    thread.start()
    await store.write(lambda c: c.execute("INSERT INTO auth_cache (id_tag, status, updated)"
                                          " VALUES ('ocpp', 'Accepted', 'now')"))
    await asyncio.to_thread(thread.join, 10)
    assert seen["result"] == "committed" and seen["loop_ok"]
    assert seen["conn"] is not store.db.conn, "each thread has its own read connection"
    assert ("web",) in seen["rows"]
    assert [r[0] for r in store.db.execute("SELECT id_tag FROM auth_cache ORDER BY id_tag")] == ["ocpp", "web"]
    await store.aclose()


async def test_journal_keeps_newest_rows_per_charger_and_masks_cards(tmp_path):
    """The oldest blocks go, whole, once a charger is past its limit by a quarter, as long as every charger in
    them keeps at least `max_rows` frames; anything past the age limit goes; none is rewritten (an SD card
    wears with each page written)."""
    store = Store.open(str(tmp_path / "s.db"))
    store.start()
    journal = Journal(store, max_rows=10, max_age_days=1)
    store.write_now(lambda c: c.execute("INSERT INTO journal_blocks (ts, counts, n, frames) VALUES"
                                        " ('2000-01-01T00:00:00.000Z', '{\"B\": 2}', 2, ?)",
                                        (json.dumps({"B": [["2000-01-01T00:00:00.000Z", "c>e", "old"]] * 2}),)))
    for b in range(6):  # six blocks of five frames of A; B speaks in the last
        for i in range(b * 5, b * 5 + 5):
            journal.add("A", "c>e", f'[2,"{i}","Authorize",{{"idTag":"04AABBCCDD{i:02d}"}}]')
        if b == 5:
            journal.add("B", "c>e", '[2,"x","Heartbeat",{}]')
        journal.flush()
        await store.flush()
    assert store.db.execute("SELECT count(*) FROM journal_blocks").fetchone()[0] == 7, "a block per commit"
    assert len(read(store, "A", 100)) == 30
    removed = store.write_now(journal.prune)
    assert removed == 22, "B's two past their age, and A's four oldest blocks (20 frames)"
    rows = read(store, "A", 100)
    assert [r["frame"].split('"')[1] for r in rows] == [str(i) for i in range(20, 30)]
    assert [r["frame"].split('"')[1] for r in read(store, "A", 3)] == ["27", "28", "29"]
    assert store.write_now(journal.prune) == 0
    journal.add("A", "c>e", '[2,"30","Heartbeat",{}]')
    journal.add("A", "c>e", '[2,"31","Heartbeat",{}]')
    journal.flush()
    await store.flush()
    assert store.write_now(journal.prune) == 0, "12 frames: within the quarter's slack, nothing is written"
    assert "04AABBCCDD" not in rows[0]["frame"] and rows[0]["frame"].endswith('"********DD20"}]')
    assert [r["frame"] for r in read(store, "B")] == ['[2,"x","Heartbeat",{}]']
    for i in range(40):  # B quiet, A loud: the block with B's only frame stays, and A's frames in it
        journal.add("A", "c>e", f'[2,"L{i}","Heartbeat",{{}}]')
        if i % 10 == 9:
            journal.flush()
            await store.flush()
    store.write_now(journal.prune)
    assert [r["frame"] for r in read(store, "B")] == ['[2,"x","Heartbeat",{}]'] and len(read(store, "A", 100)) >= 10
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


def test_the_outbox_keeps_its_numbering_through_the_pay_migration(tmp_path):
    """Migration 12 rebuilds the outbox (a new record kind): its rows, their states and the sequence go on,
    so the cloud sees no gap and no number twice, even after the newest rows were pruned."""
    path = str(tmp_path / "s.db")
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:11], start=1):
        conn.executescript(f"BEGIN;{script};PRAGMA user_version={number};COMMIT;")
    conn.executemany("INSERT INTO outbox (key, kind, body, created, state) VALUES (?, 'ledger', '{}', 'x', ?)",
                     [("a", "done"), ("b", "sent"), ("c", "new"), ("d", "new")])
    conn.execute("DELETE FROM outbox WHERE key = 'd'")  # the newest went (as pruned rows go): 4 is still used
    conn.close()
    store = Store.open(path)
    conn = store.db.conn
    assert conn.execute("SELECT seq, key, state FROM outbox ORDER BY seq").fetchall() == [
        (1, "a", "done"), (2, "b", "sent"), (3, "c", "new")]
    seq = store.write_now(lambda c: outbox.add(c, "payment", "pay-1", {"x": 1}))
    assert seq == 5, "after the highest number ever given, not after the highest left"
    store.close()


def test_mask_frame_leaves_other_fields():
    text = '[2,"1","TransactionEvent",{"idToken":{"idToken":"AB12CD34EF","type":"ISO14443"},"seqNo":1}]'
    assert mask_frame(text) == '[2,"1","TransactionEvent",{"idToken":{"idToken":"******34EF","type":"ISO14443"},"seqNo":1}]'


def test_every_record_the_controller_persists_reaches_its_rows(tmp_path):
    """Each record type of `edge.controller.records` has its writer, and a charger's day written through
    `persist.apply` (boot, status, replay state, queue, a 1.6 session start to stop, a 2.0.1 session) leaves
    the rows an owner would read."""
    import typing

    from edge.billing import sessions
    from edge.controller import records as r
    from edge.ocpp import persist

    kinds = set(typing.get_args(r.StoreOp))
    assert kinds - {r.CloseSession, r.AuthCache} == set(persist.WRITERS), "a record type without its writer"
    store = Store.open(str(tmp_path / "s.db"))
    sessions.configure(sessions.BillingSettings(currency="PHP"))
    ts = "2026-03-01T10:00:00Z"
    day = [
        r.ChargerConnected("CP1", "1.6", ts), r.ChargerBoot("CP1", "1.6", "ACME", "M1", "S1", "1.0", ts),
        r.StatusSeen("CP1", 0, 1, "Charging", "NoError", ts), r.ReplaySet("CP1", "boot", "[2]"),
        r.ReplayDone("CP1", "boot", "[2]"), r.Enqueue("CP1", 1, "m1", "Heartbeat", "[2]", None),
        r.Enqueue("CP1", 2, "m2", "Heartbeat", "[2]", None), r.Dequeue("CP1", 1),
        r.TxStart(5, "CP1", "5", "1.6", None, 1, "ABCDEF01", 1000, ts, 1, None, None), r.TxMap(5, 77, "Accepted"),
        r.MeterRows([{"charger_id": "CP1", "tx_key": "5", "connector_id": 1, "timestamp": ts, "context": None,
                      "measurand": "Energy.Active.Import.Register", "phase": None, "unit": "Wh", "value": "2000"}]),
        r.TxStop("CP1", "5", 3000, "2026-03-01T11:00:00Z", "Local"), r.CloseSession("CP1", "5"),
        r.TxEvent(6, "2.0.1", "CP1", "T6", "Started", 1, 1, "ABCDEF02", ts, 0, None),
        r.TxUpstreamStatus("CP1", "T6", "Invalid"),
        r.TxEvent(None, "2.0.1", "CP1", "T6", "Ended", 1, 1, None, "2026-03-01T10:30:00Z", 500, "EVDisconnected"),
        r.AuthCache({"id_tag": "ABCDEF03", "status": "Accepted", "expires": None}),
        r.TransferStatus("CP1", "firmware", "Downloading", None, ts),
        r.TransferStatus("CP1", "firmware", "Installed", None, "2026-03-01T11:10:00Z"),
        r.ReportRows("CP1", [{"key": "OCPPCommCtrlr.HeartbeatInterval", "attribute": "Actual", "value": "300",
                              "mutability": "ReadWrite", "data_type": "integer", "unit": "s"}], ts),
        r.EvNeeds("CP1", 1, 16.0, 30000, "2026-03-01T14:00:00Z", ts),
        r.ChargerDisconnected("CP1", "2026-03-01T12:00:00Z"),
    ]
    assert {type(op) for op in day} == kinds, "the day covers every kind"
    from edge.operations import files
    firmware_update = store.write_now(lambda c: files.new_transfer(c, "firmware", "CP1", "owner", "fw.bin"))
    store.write_now(lambda c: persist.apply(c, day))
    q = store.db.execute
    assert q("SELECT vendor, model, connected FROM chargers").fetchall() == [("ACME", "M1", 0)]
    assert q("SELECT status FROM connector_status").fetchall() == [("Charging",)]
    assert q("SELECT pending FROM replay_state").fetchall() == [(0,)]
    assert q("SELECT seq FROM upstream_queue").fetchall() == [(2,)]
    assert q("SELECT upstream_tx_id, energy_wh, stop_reason FROM transactions WHERE id = 5").fetchall() == [
        (77, 2000, "Local")]
    assert q("SELECT count(*) FROM meter_values").fetchone() == (1,)
    assert q("SELECT upstream_status, energy_wh, stop_reason FROM transactions WHERE tx_key = 'T6'").fetchall() == [
        ("Invalid", 500, "EVDisconnected")]
    assert q("SELECT status FROM auth_cache").fetchall() == [("Accepted",)]
    assert q("SELECT count(*) FROM outbox").fetchone()[0] >= 1, "the closed session's record is queued for the cloud"
    assert [status for _, status in json.loads(q("SELECT history FROM file_transfers WHERE id = ?",
                                                 [firmware_update["id"]]).fetchone()[0])] == [
        "requested", "Downloading", "Installed"]
    assert q("SELECT value FROM device_model WHERE key = 'OCPPCommCtrlr.HeartbeatInterval'").fetchall() == [("300",)]
    assert q("SELECT evse_id, max_current_a, energy_wh FROM ev_needs").fetchall() == [(1, 16.0, 30000)]
    store.close()


def test_mask_frame_masks_a_card_inside_a_data_transfers_data():
    """The California pricing SetUserPrice carries the card in a JSON text inside `data`: masked there too, and
    the frame stays the same JSON otherwise."""
    from edge.controller.costs import user_price

    payload = user_price("04AA0001BB", (("en", "₱15.00 per kWh"), ("fil", "₱15.00 bawat kWh")))
    text = json.dumps([2, "1", "DataTransfer", payload], ensure_ascii=False)
    masked = json.loads(mask_frame(text))
    assert json.loads(masked[3]["data"])["idToken"] == "******01BB"
    assert "04AA0001BB" not in mask_frame(text)
    assert json.loads(masked[3]["data"])["priceText"] == "₱15.00 per kWh"
