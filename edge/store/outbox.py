"""The outbox: records the cloud must receive, written in the same SQLite transaction as the change itself.

`add` is called by the billing and card code inside their transactions, so a record exists if and only if
its change committed. Each row gets the next per-site sequence number (AUTOINCREMENT: never reused; gap-free
because a rolled-back insert takes no number and a record already queued is never inserted again) and keeps its idempotency key; `cloud_sync` publishes
rows in `seq` order (`page`) and marks them sent (PUBACK, `mark_sent`) and done (the cloud's ack,
`mark_done`); `status` is the backlog for `sitekeeper sync --status` and /metrics. Plain functions on a
`sqlite3.Connection`; each caller commits on its own.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass

from edge.clock import clock_synced, now_iso, parse_ts


def add(conn: sqlite3.Connection, kind: str, key: str, body: dict) -> int | None:
    """Queue a record unless one with `key` is queued already; return its seq (None if it was there)."""
    if conn.execute("SELECT 1 FROM outbox WHERE key = ?", (key,)).fetchone() is not None:
        return None  # asked first: an ignored INSERT would still take a seq, and leave a hole the cloud waits on
    record = {**body, "clock_synced": body.get("clock_synced", clock_synced())}
    cur = conn.execute("INSERT INTO outbox (key, kind, body, created) VALUES (?, ?, ?, ?)",
                       (key, kind, json.dumps(record, separators=(",", ":")), now_iso()))
    return int(cur.lastrowid)


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


@dataclass(frozen=True, slots=True)
class Record:
    seq: int
    key: str
    kind: str
    payload: bytes  # the JSON published


def page(conn: sqlite3.Connection, site: str, after_seq: int, limit: int) -> list[Record]:
    """Records not yet done with seq > `after_seq`, in order (at most `limit`: memory stays flat)."""
    rows = conn.execute("SELECT seq, key, kind, body FROM outbox WHERE seq > ? AND state != 'done' ORDER BY seq"
                        " LIMIT ?", (after_seq, limit)).fetchall()
    out = []
    for seq, key, kind, body in rows:
        record = {**json.loads(body), "key": key, "seq": seq, "kind": kind, "site": site}
        out.append(Record(seq, key, kind, json.dumps(record, separators=(",", ":")).encode()))
    return out


def first_not_done(conn: sqlite3.Connection) -> int:
    """The seq to resume publishing after (everything up to it is done)."""
    row = conn.execute("SELECT min(seq) FROM outbox WHERE state != 'done'").fetchone()
    return (row[0] - 1) if row[0] is not None else int(conn.execute(
        "SELECT coalesce(max(seq), 0) FROM outbox").fetchone()[0])


def mark_sent(conn: sqlite3.Connection, seqs: list[int]) -> None:
    now = now_iso()
    conn.executemany("UPDATE outbox SET state = 'sent', sent_at = ? WHERE seq = ? AND state = 'new'",
                     [(now, s) for s in seqs])


def last_sent(conn: sqlite3.Connection) -> int:
    """The highest seq ever published (sent or done); 0 if none. The cloud cannot have more than this."""
    row = conn.execute("SELECT max(seq) FROM outbox WHERE state != 'new'").fetchone()
    done = conn.execute("SELECT value FROM meta WHERE key = 'sync_last_ack'").fetchone()
    return max(row[0] or 0, int(done[0]) if done else 0)


def mark_done(conn: sqlite3.Connection, upto: int) -> int:
    """The cloud has everything ≤ `upto` (a PUBACK only meant the broker had it). Returns rows marked."""
    n = conn.execute("UPDATE outbox SET state = 'done', done_at = ? WHERE seq <= ? AND state != 'done'",
                     (now_iso(), upto)).rowcount
    conn.execute("UPDATE meta SET value = ? WHERE key = 'sync_last_ack' AND CAST(value AS INTEGER) < ?",
                 (str(upto), upto))
    return n


def prune(conn: sqlite3.Connection, retention_days: float) -> int:
    cutoff = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - retention_days * 86400))
    return conn.execute("DELETE FROM outbox WHERE state = 'done' AND done_at < ?", (cutoff,)).rowcount


def set_meta(conn: sqlite3.Connection, **values: str) -> None:
    conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                     [(f"sync_{k}", v) for k, v in values.items()])


def status(conn: sqlite3.Connection) -> dict:
    """Backlog figures: what `sitekeeper sync --status` and /metrics show."""
    meta = dict(conn.execute("SELECT key, value FROM meta WHERE key LIKE 'sync_%'").fetchall())
    # counts by state through the (state, seq) index: a long backlog does not make this slow
    unsent = conn.execute("SELECT count(*) FROM outbox WHERE state = 'new'").fetchone()[0]
    backlog = unsent + conn.execute("SELECT count(*) FROM outbox WHERE state = 'sent'").fetchone()[0]
    row = conn.execute("SELECT created FROM outbox WHERE state = 'new' ORDER BY seq LIMIT 1").fetchone()
    oldest = parse_ts(row[0]) if row else None
    heartbeat = parse_ts(meta.get("sync_heartbeat"))
    alive = heartbeat is not None and time.time() - heartbeat.timestamp() < 30
    return {
        "connected": alive and meta.get("sync_connected") == "1",
        "running": alive,
        "broker": meta.get("sync_broker", ""),
        "last_error": meta.get("sync_error", ""),
        "backlog": int(backlog),
        "unsent": int(unsent),
        "oldest_unsent_age_s": round(time.time() - oldest.timestamp(), 1) if oldest else 0.0,
        "last_ack_seq": int(meta.get("sync_last_ack", "0")),
        "last_seq": int(conn.execute("SELECT coalesce(max(seq), 0) FROM outbox").fetchone()[0]),
    }
