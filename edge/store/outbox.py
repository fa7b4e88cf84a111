"""The outbox: records the cloud must receive, written in the same SQLite transaction as the change itself.

`add` is called by the billing and card code inside their transactions, so a record exists if and only if
its change committed. Each row gets the next per-site sequence number (AUTOINCREMENT: gap-free, never
reused, since a rolled-back insert takes no number) and keeps its idempotency key; `cloud_sync` publishes
rows in `seq` order and marks them sent (PUBACK) and done (the cloud's ack).
"""

from __future__ import annotations

import json
import sqlite3

from edge.clock import clock_synced, now_iso


def add(conn: sqlite3.Connection, kind: str, key: str, body: dict) -> int | None:
    """Queue a record unless one with `key` is queued already; return its seq (None if it was there)."""
    record = {**body, "clock_synced": body.get("clock_synced", clock_synced())}
    cur = conn.execute("INSERT OR IGNORE INTO outbox (key, kind, body, created) VALUES (?, ?, ?, ?)",
                       (key, kind, json.dumps(record, separators=(",", ":")), now_iso()))
    return int(cur.lastrowid) if cur.rowcount else None


def session_record(conn: sqlite3.Connection, charger_id: str, tx_key: str, currency: str) -> None:
    """Queue the record of a completed session (called where the stop is committed)."""
    cur = conn.execute(
        "SELECT id, charger_id, tx_key, ocpp_version, evse_id, connector_id, id_tag, account_id, card_kind,"
        " meter_start, meter_stop, energy_wh, started_at, stopped_at, stop_reason, billing_stop, hold_minor,"
        " cost_minor, captured_minor, uncollected_minor, started_offline, boot_id, clock_synced"
        " FROM transactions WHERE charger_id = ? AND tx_key = ? AND stopped_at IS NOT NULL", (charger_id, tx_key))
    row = cur.fetchone()
    if row is None:
        return
    body = dict(zip([d[0] for d in cur.description], row, strict=True))
    body["session_id"] = body.pop("id")
    body["card_uid"] = body.pop("id_tag")
    body["clock_synced"] = bool(body["clock_synced"])
    body["started_offline"] = bool(body["started_offline"])
    body["currency"] = currency
    add(conn, "session", f"session:{charger_id}:{tx_key}", body)
