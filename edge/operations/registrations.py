"""Which chargers may work at the site (`ocpp.new_chargers`, standalone mode): a new charger's BootNotification
is answered Accepted, or Pending / Rejected until the owner approves it (B02, B03), and it waits in the
owner's list meanwhile. A charger listed under `[ocpp.chargers]` is always the site's.

`chargers.registration`: NULL never decided, 'pending' waiting for the owner, 'accepted' the site's. Approval is
for good (a charger that should go is unplugged, or refused at the handshake with `allow_unknown_chargers`).
"""

from __future__ import annotations

import sqlite3

from edge.clock import now_iso

POLICIES = ("accept", "pending", "reject")


class NotWaiting(LookupError):
    """Approve: the site has never seen this charger."""


def decide(conn: sqlite3.Connection, charger_id: str, policy: str, *, listed: bool) -> str:
    """The status a BootNotification of `charger_id` gets (Accepted, Pending, Rejected); a new charger is
    recorded as waiting for the owner."""
    row = conn.execute("SELECT registration FROM chargers WHERE id = ?", (charger_id,)).fetchone()
    if listed or policy == "accept" or (row is not None and row[0] == "accepted"):
        _set(conn, charger_id, "accepted")
        return "Accepted"
    _set(conn, charger_id, "pending")
    return "Pending" if policy == "pending" else "Rejected"


def approve(conn: sqlite3.Connection, charger_id: str) -> bool:
    """Make a charger the site's; False if it was already. Raises NotWaiting for a charger never seen."""
    row = conn.execute("SELECT registration FROM chargers WHERE id = ?", (charger_id,)).fetchone()
    if row is None:
        raise NotWaiting(f"no charger {charger_id!r} has connected to this site")
    if row[0] == "accepted":
        return False
    conn.execute("UPDATE chargers SET registration = 'accepted' WHERE id = ?", (charger_id,))
    return True


def waiting(conn: sqlite3.Connection) -> list[dict]:
    """Chargers waiting for the owner's approval, the first to come first."""
    cols = ("id", "ocpp_version", "vendor", "model", "serial", "first_seen", "last_seen", "connected")
    return [dict(zip(cols, r, strict=True)) for r in conn.execute(
        f"SELECT {', '.join(cols)} FROM chargers WHERE registration = 'pending' ORDER BY first_seen, id")]


def _set(conn: sqlite3.Connection, charger_id: str, registration: str) -> None:
    conn.execute("INSERT INTO chargers (id, first_seen, last_seen, registration) VALUES (?, ?2, ?2, ?3)"
                 " ON CONFLICT (id) DO UPDATE SET registration = excluded.registration",
                 (charger_id, now_iso(), registration))
