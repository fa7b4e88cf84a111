"""The queries the shells need (the OCPP server, the web app, cloud_sync, the daemon's gauges), as plain
functions on a `sqlite3.Connection` returning plain rows, so that no SQL lives outside `store` and `billing`."""

from __future__ import annotations

import sqlite3


def _dicts(cur: sqlite3.Cursor) -> list[dict]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def link_rows(conn: sqlite3.Connection, charger_id: str) -> dict:
    """What a charger's link starts from: its queue in order, its pending Boot/Status frames, its 1.6
    transactions still in play (open, or with frames still queued), its open sessions on a hold and its open
    2.0.1 transactions, and its standing (`chargers.registration`)."""
    cid = charger_id
    standing = conn.execute("SELECT registration FROM chargers WHERE id = ?", (cid,)).fetchone()
    tx = _dicts(conn.execute(
        "SELECT id, upstream_tx_id, stopped_at IS NOT NULL AS stopped FROM transactions WHERE charger_id = ?"
        " AND ocpp_version = '1.6' AND (stopped_at IS NULL OR id IN"
        " (SELECT tx_id FROM upstream_queue WHERE charger_id = ? AND tx_id IS NOT NULL))", (cid, cid)))
    return {
        "queue": _dicts(conn.execute("SELECT seq, msg_id, action, frame, tx_id FROM upstream_queue"
                                     " WHERE charger_id = ? ORDER BY seq", (cid,))),
        "replay": _dicts(conn.execute("SELECT key, frame, pending FROM replay_state WHERE charger_id = ?", (cid,))),
        "transactions_16": tx,
        "billed": [r[0] for r in conn.execute(
            "SELECT tx_key FROM transactions WHERE charger_id = ? AND stopped_at IS NULL"
            " AND card_kind = 'commercial' AND hold_minor > 0", (cid,))],
        "open_201": [r[0] for r in conn.execute(
            "SELECT tx_key FROM transactions WHERE charger_id = ? AND ocpp_version != '1.6'"
            " AND stopped_at IS NULL", (cid,))],
        "registration": standing[0] if standing else None,
    }


def total_cost(conn: sqlite3.Connection, charger_id: str, tx_key: str, exponent: int = 2) -> float | None:
    """A stopped session's final cost in major units (0 for a personal card's: free), or None if the site did
    not price it (a card not of the site's)."""
    row = conn.execute("SELECT card_kind, cost_minor FROM transactions WHERE charger_id = ? AND tx_key = ?",
                       (charger_id, tx_key)).fetchone()
    if row is None or row[0] is None:
        return None
    if row[0] == "personal":
        return 0.0
    return None if row[1] is None else round(row[1] / 10**exponent, exponent)


def shows_cost(conn: sqlite3.Connection, charger_id: str) -> bool:
    """A 2.0.1 charger whose device model says it shows the cost (TariffCostCtrlr.Enabled, instance Cost)."""
    return conn.execute("SELECT 1 FROM device_model WHERE charger_id = ? AND key = 'TariffCostCtrlr.Enabled[Cost]'"
                        " AND attribute = 'Actual' AND lower(value) = 'true'", (charger_id,)).fetchone() is not None


def open_for_limits(conn: sqlite3.Connection) -> list[dict]:
    """Every session running, oldest first, with its connector (1.6) or EVSE (2.0.1) and what its EV said it
    can take (NotifyEVChargingNeeds, 2.0.1): what the current limits share out."""
    cur = conn.execute(
        "SELECT t.id, t.charger_id, t.ocpp_version, t.tx_key, coalesce(t.evse_id, t.connector_id) AS connector,"
        " n.max_current_a AS ev_max_a, n.updated AS ev_said FROM transactions t LEFT JOIN ev_needs n"
        " ON n.charger_id = t.charger_id AND n.evse_id = t.evse_id"
        " WHERE t.stopped_at IS NULL AND coalesce(t.auth_status, 'Accepted') = 'Accepted' ORDER BY t.id")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def queued_chargers(conn: sqlite3.Connection) -> list[tuple[str, str | None]]:
    """(charger id, its OCPP version if known) of every charger with messages waiting for upstream."""
    return conn.execute("SELECT q.charger_id, c.ocpp_version FROM (SELECT DISTINCT charger_id FROM upstream_queue) q"
                        " LEFT JOIN chargers c ON c.id = q.charger_id").fetchall()


def queue_summary(conn: sqlite3.Connection) -> tuple[int, str | None, list[str]]:
    """(messages waiting for upstream, the oldest one's time, the chargers they are of)."""
    count, oldest = conn.execute("SELECT count(*), min(created) FROM upstream_queue").fetchone()
    return count, oldest, [r[0] for r in conn.execute("SELECT DISTINCT charger_id FROM upstream_queue")]


def chargers(conn: sqlite3.Connection) -> list[dict]:
    """Every charger the site has seen, with its connectors' latest status."""
    rows = _dicts(conn.execute("SELECT * FROM chargers ORDER BY id"))
    for row in rows:
        row["connectors"] = _dicts(conn.execute(
            "SELECT evse_id, connector_id, status, error_code, timestamp FROM connector_status"
            " WHERE charger_id = ? ORDER BY evse_id, connector_id", (row["id"],)))
    return rows


def charger_statuses(conn: sqlite3.Connection) -> dict[str, dict]:
    """charger id → {"connected": bool, "connectors": [...]}, for every charger with a row or a status."""
    out = {cid: {"connected": bool(c), "connectors": []}
           for cid, c in conn.execute("SELECT id, connected FROM chargers")}
    for cid, evse, conn_id, status, error, ts in conn.execute(
            "SELECT charger_id, evse_id, connector_id, status, error_code, timestamp FROM connector_status"
            " ORDER BY charger_id, evse_id, connector_id"):
        out.setdefault(cid, {"connected": False, "connectors": []})["connectors"].append(
            {"evse_id": evse, "connector_id": conn_id, "status": status, "error_code": error, "timestamp": ts})
    return out


def transactions(conn: sqlite3.Connection, limit: int = 100) -> list[dict]:
    """The newest transactions, every column."""
    return _dicts(conn.execute("SELECT * FROM transactions ORDER BY id DESC LIMIT ?", (limit,)))


def transaction(conn: sqlite3.Connection, tx_id: int) -> dict | None:
    """One session's row (every column), or None."""
    rows = _dicts(conn.execute("SELECT * FROM transactions WHERE id = ?", (tx_id,)))
    return rows[0] if rows else None


def open_transaction_of(conn: sqlite3.Connection, charger_id: str, uid: str, after_id: int) -> dict | None:
    """The session `uid` has open on `charger_id` with an id above `after_id` (one a remote start began)."""
    rows = _dicts(conn.execute(
        "SELECT id, charger_id, tx_key, connector_id, evse_id, id_tag, started_at, hold_minor FROM transactions"
        " WHERE charger_id = ? AND id_tag = ? AND stopped_at IS NULL AND id > ? ORDER BY id DESC LIMIT 1",
        (charger_id, uid, after_id)))
    return rows[0] if rows else None


def auth_cache(conn: sqlite3.Connection) -> list[tuple[str, str, str | None]]:
    """(id tag, status, expires) of every card upstream has answered for."""
    return conn.execute("SELECT id_tag, status, expires FROM auth_cache").fetchall()


def max_transaction_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM transactions").fetchone()[0])


def reservation_at(conn: sqlite3.Connection, charger_id: str, connector_id: int, now: str) -> dict | None:
    """The reservation holding `connector_id` of `charger_id` at `now` (accepted by the charger, not expired,
    cancelled or used), if any."""
    row = conn.execute("SELECT id, id_tag, expires FROM reservations WHERE charger_id = ? AND connector_id = ?"
                       " AND status = 'active' AND expires > ? ORDER BY id DESC LIMIT 1",
                       (charger_id, connector_id, now)).fetchone()
    return None if row is None else {"id": row[0], "id_tag": row[1], "expires": row[2]}


def device_variables(conn: sqlite3.Connection, charger_id: str) -> list[dict]:
    """A 2.0.1 charger's variables as its NotifyReports said them, by COMPONENT.VARIABLE and attribute."""
    rows = conn.execute("SELECT key, attribute, value, mutability, data_type, unit, updated FROM device_model"
                        " WHERE charger_id = ? ORDER BY key, attribute", (charger_id,)).fetchall()
    return [dict(zip(("key", "attribute", "value", "mutability", "data_type", "unit", "updated"), r, strict=True))
            for r in rows]
