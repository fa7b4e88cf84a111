"""Reservations: a connector held for one card until a time (ReserveNow / CancelReservation).

The edge keeps each reservation (`reservations` table) with the charger's word on it. In standalone mode it
also enforces an active one: a start on that connector with another card is refused until it expires, is
cancelled or is used (`edge.billing.sessions.decide` asks `edge.store.reads.reservation_at`). Plain
functions on a connection; callers commit."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from edge.clock import now_iso


class ReservationError(ValueError):
    """A reservation that cannot be made or cancelled as asked; the message says why."""


def create(conn: sqlite3.Connection, charger_id: str, connector: int, id_tag: str, minutes: int, who: str) -> dict:
    """A reservation about to be sent (status 'requested'); its row."""
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 24 * 60:
        raise ReservationError(f"a reservation lasts 1 to 1440 minutes, got {minutes!r}")
    now = now_iso()
    taken = conn.execute("SELECT id, id_tag, expires FROM reservations WHERE charger_id = ? AND connector_id = ?"
                         " AND status IN ('requested', 'active') AND expires > ?",
                         (charger_id, connector, now)).fetchone()
    if taken is not None:
        raise ReservationError(f"connector {connector} of {charger_id} is reserved already (reservation {taken[0]},"
                               f" until {taken[2]}): cancel it first")
    expires = (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cur = conn.execute("INSERT INTO reservations (charger_id, connector_id, id_tag, expires, status, who, created,"
                       " updated) VALUES (?, ?, ?, ?, 'requested', ?, ?, ?)",
                       (charger_id, connector, id_tag, expires, who, now, now))
    return get(conn, int(cur.lastrowid))  # type: ignore[return-value]


def get(conn: sqlite3.Connection, reservation_id: int) -> dict | None:
    row = conn.execute("SELECT id, charger_id, connector_id, id_tag, expires, status, who, created, updated"
                       " FROM reservations WHERE id = ?", (reservation_id,)).fetchone()
    if row is None:
        return None
    out = dict(zip(("id", "charger_id", "connector", "id_tag", "expires", "status", "who", "created", "updated"),
                   row, strict=True))
    if out["status"] in ("requested", "active") and out["expires"] <= now_iso():
        out["status"] = "expired"
    return out


def set_status(conn: sqlite3.Connection, reservation_id: int, status: str) -> None:
    conn.execute("UPDATE reservations SET status = ?, updated = ? WHERE id = ?", (status, now_iso(), reservation_id))


def listed(conn: sqlite3.Connection, charger_id: str, limit: int = 50) -> list[dict]:
    """A charger's reservations, newest first (an active one past its time shows as expired)."""
    ids = [r[0] for r in conn.execute("SELECT id FROM reservations WHERE charger_id = ? ORDER BY id DESC LIMIT ?",
                                      (charger_id, limit))]
    return [r for r in (get(conn, i) for i in ids) if r is not None]
