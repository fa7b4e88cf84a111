"""The row writers for the local controller's `Persist` actions: one per record type of
`edge.controller.records`, called with that record's fields as a dict (`edge.ocpp.persist` pairs them).

Kept apart from the controller so that the controller stays free of SQL and the writers can be tested
against a real database on their own. They only write rows: what a stopped session costs is billing's
(`close_session`, which `edge.ocpp.persist` runs where the controller asks for it).
"""

from __future__ import annotations

import json
import sqlite3

from edge.clock import boot_id, clock_synced, now_iso


def charger_boot(conn: sqlite3.Connection, d: dict) -> None:
    conn.execute(
        "INSERT INTO chargers (id, ocpp_version, vendor, model, serial, firmware, first_seen, last_seen, last_boot,"
        " registration) VALUES (:charger_id, :version, :vendor, :model, :serial, :firmware, :ts, :ts, :ts,"
        " CASE WHEN :accepted THEN 'accepted' END)"
        " ON CONFLICT (id) DO UPDATE SET ocpp_version=:version, vendor=:vendor, model=:model, serial=:serial,"
        " firmware=:firmware, last_seen=:ts, last_boot=:ts,"
        " registration = CASE WHEN :accepted THEN 'accepted' ELSE registration END", d)


def charger_connected(conn: sqlite3.Connection, d: dict) -> None:
    conn.execute("INSERT INTO chargers (id, ocpp_version, first_seen, last_seen, connected)"
                 " VALUES (:charger_id, :version, :ts, :ts, 1) ON CONFLICT (id) DO UPDATE SET connected = 1,"
                 " ocpp_version = excluded.ocpp_version, last_seen = excluded.last_seen", d)


def charger_disconnected(conn: sqlite3.Connection, d: dict) -> None:
    conn.execute("UPDATE chargers SET connected = 0, last_seen = :ts WHERE id = :charger_id", d)


def status(conn: sqlite3.Connection, d: dict) -> None:
    conn.execute(
        "INSERT INTO connector_status (charger_id, evse_id, connector_id, status, error_code, timestamp)"
        " VALUES (:charger_id, :evse_id, :connector_id, :status, :error_code, :ts)"
        " ON CONFLICT DO UPDATE SET status=:status, error_code=:error_code, timestamp=:ts", d)


def replay_set(conn: sqlite3.Connection, d: dict) -> None:
    conn.execute("INSERT INTO replay_state (charger_id, key, frame, pending) VALUES (:charger_id, :key, :frame, 1)"
                 " ON CONFLICT DO UPDATE SET frame=:frame, pending=1", d)


def replay_done(conn: sqlite3.Connection, d: dict) -> None:
    conn.execute("UPDATE replay_state SET pending=0 WHERE charger_id=:charger_id AND key=:key AND frame=:frame", d)


def enqueue(conn: sqlite3.Connection, d: dict) -> None:
    conn.execute("INSERT INTO upstream_queue (charger_id, seq, msg_id, action, frame, tx_id, created)"
                 " VALUES (:charger_id, :seq, :msg_id, :action, :frame, :tx_id, :created)",
                 {**d, "created": now_iso()})


def dequeue(conn: sqlite3.Connection, d: dict) -> None:
    conn.execute("DELETE FROM upstream_queue WHERE charger_id=:charger_id AND seq=:seq", d)


def tx_start(conn: sqlite3.Connection, d: dict) -> None:
    conn.execute(
        "INSERT INTO transactions (id, charger_id, tx_key, ocpp_version, evse_id, connector_id, id_tag,"
        " meter_start, started_at, started_offline, upstream_tx_id, upstream_status, boot_id, clock_synced)"
        " VALUES (:id, :charger_id, :tx_key, :version, :evse_id, :connector_id, :id_tag, :meter_start,"
        " :started_at, :started_offline, :upstream_tx_id, :upstream_status, :boot_id, :clock_synced)",
        {**d, "boot_id": boot_id(), "clock_synced": int(clock_synced())})


def tx_map(conn: sqlite3.Connection, d: dict) -> None:
    conn.execute("UPDATE transactions SET upstream_tx_id=:upstream_tx_id, upstream_status=:upstream_status"
                 " WHERE id=:id", d)


def tx_upstream_status(conn: sqlite3.Connection, d: dict) -> None:
    conn.execute("UPDATE transactions SET upstream_status=:status WHERE charger_id=:charger_id AND tx_key=:tx_key",
                 d)


def tx_stop(conn: sqlite3.Connection, d: dict) -> None:
    conn.execute(
        "UPDATE transactions SET meter_stop=:meter_stop, stopped_at=:stopped_at, stop_reason=:reason,"
        " energy_wh=CASE WHEN meter_start IS NULL OR :meter_stop IS NULL THEN NULL"
        " ELSE :meter_stop - meter_start END"
        " WHERE charger_id=:charger_id AND tx_key=:tx_key AND stopped_at IS NULL", d)


def tx_event(conn: sqlite3.Connection, d: dict) -> None:
    conn.execute(
        "INSERT INTO transactions (id, charger_id, tx_key, ocpp_version, evse_id, connector_id, id_tag,"
        " meter_start, started_at, boot_id, clock_synced) VALUES (:id, :charger_id, :tx_key, :version, :evse_id,"
        " :connector_id, :id_tag, :energy_wh, :ts, :boot_id, :clock_synced)"
        " ON CONFLICT (charger_id, tx_key) DO UPDATE SET id_tag=COALESCE(transactions.id_tag, :id_tag),"
        " evse_id=COALESCE(transactions.evse_id, :evse_id),"
        " meter_start=COALESCE(transactions.meter_start, :energy_wh)",
        {**d, "boot_id": boot_id(), "clock_synced": int(clock_synced())})
    if d["energy_wh"] is not None:
        conn.execute("UPDATE transactions SET meter_stop=:energy_wh, energy_wh=:energy_wh - meter_start"
                     " WHERE charger_id=:charger_id AND tx_key=:tx_key AND meter_start IS NOT NULL", d)
    if d["event"] == "Ended":
        conn.execute("UPDATE transactions SET stopped_at=:ts, stop_reason=COALESCE(:reason, 'Local')"
                     " WHERE charger_id=:charger_id AND tx_key=:tx_key AND stopped_at IS NULL", d)


def meter(conn: sqlite3.Connection, d: dict) -> None:
    conn.executemany(
        "INSERT INTO meter_values (charger_id, tx_key, connector_id, timestamp, measurand, phase, unit, context,"
        " value) VALUES (:charger_id, :tx_key, :connector_id, :timestamp, :measurand, :phase, :unit, :context,"
        " :value)", d["rows"])


def auth_cache(conn: sqlite3.Connection, d: dict) -> None:
    conn.execute("INSERT INTO auth_cache (id_tag, status, expires, info, updated) VALUES (?, ?, ?, ?, ?)"
                 " ON CONFLICT DO UPDATE SET status=excluded.status, expires=excluded.expires,"
                 " updated=excluded.updated",
                 (d["id_tag"], d["status"], d["expires"], json.dumps(d), now_iso()))


# a transfer is over once its charger says one of these (its URL then stops working; `edge.operations.files`)
TRANSFER_OVER = {"firmware": ("Installed", "InstallationFailed", "DownloadFailed", "InstallVerificationFailed",
                              "InvalidSignature"),
                 "log": ("Uploaded", "UploadFailed", "UploadFailure", "BadMessage", "NotSupportedOperation",
                         "PermissionDenied")}


def transfer_status(conn: sqlite3.Connection, d: dict) -> None:
    """A charger's FirmwareStatusNotification / DiagnosticsStatusNotification / LogStatusNotification, onto the
    transfer it is about: the one its requestId names (2.0.1), else its newest one still under way."""
    over = TRANSFER_OVER[d["kind"]] + ("refused", "not_connected")
    row = None
    if d.get("request_id") is not None:
        row = conn.execute("SELECT id, history FROM file_transfers WHERE id = ? AND charger_id = ? AND kind = ?",
                           (d["request_id"], d["charger_id"], d["kind"])).fetchone()
    if row is None:
        row = conn.execute(
            f"SELECT id, history FROM file_transfers WHERE charger_id = ? AND kind = ? AND status NOT IN"
            f" ({', '.join('?' * len(over))}) ORDER BY id DESC LIMIT 1",
            (d["charger_id"], d["kind"], *over)).fetchone()
    if row is None:  # an Idle when asked by a TriggerMessage, or a transfer the cloud asked for
        return
    conn.execute("UPDATE file_transfers SET status = ?, history = ?, updated = ? WHERE id = ?",
                 (d["status"], json.dumps([*json.loads(row[1]), [d["ts"], d["status"]]]), d["ts"], row[0]))


def ev_needs(conn: sqlite3.Connection, d: dict) -> None:
    conn.execute("INSERT INTO ev_needs (charger_id, evse_id, max_current_a, energy_wh, departure, updated)"
                  " VALUES (:charger_id, :evse_id, :max_current_a, :energy_wh, :departure, :ts)"
                  " ON CONFLICT (charger_id, evse_id) DO UPDATE SET max_current_a = excluded.max_current_a,"
                  " energy_wh = excluded.energy_wh, departure = excluded.departure, updated = excluded.updated", d)


def ev_gone(conn: sqlite3.Connection, charger_id: str, tx_key: str) -> None:
    """The session on an EVSE has ended: what its EV needed no longer holds (the next EV says its own)."""
    conn.execute("DELETE FROM ev_needs WHERE charger_id = ? AND evse_id = (SELECT evse_id FROM transactions"
                 " WHERE charger_id = ? AND tx_key = ?)", (charger_id, charger_id, tx_key))


def report(conn: sqlite3.Connection, d: dict) -> None:
    """Rows of a 2.0.1 NotifyReport (one part of a report): each variable's attributes, by COMPONENT.VARIABLE."""
    conn.executemany(
        "INSERT INTO device_model (charger_id, key, attribute, value, mutability, data_type, unit, updated)"
        " VALUES (:charger_id, :key, :attribute, :value, :mutability, :data_type, :unit, :ts)"
        " ON CONFLICT (charger_id, key, attribute) DO UPDATE SET value = excluded.value,"
        " mutability = excluded.mutability, data_type = excluded.data_type, unit = excluded.unit,"
        " updated = excluded.updated", [{**row, "charger_id": d["charger_id"], "ts": d["ts"]} for row in d["rows"]])
    if d.get("request_id") is not None:  # the report it is a part of (B08: several parts, tbc until the last)
        conn.execute("INSERT INTO device_reports (charger_id, request_id, parts, variables, complete, updated)"
                     " VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT (charger_id, request_id) DO UPDATE SET"
                     " parts = parts + 1, variables = variables + excluded.variables,"
                     " complete = excluded.complete, updated = excluded.updated",
                     (d["charger_id"], d["request_id"], len({r["key"] for r in d["rows"]}), int(not d.get("tbc")),
                      d["ts"]))
