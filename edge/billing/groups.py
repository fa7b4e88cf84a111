"""Who may stop a session started with another card: the cards of one user share a group (C09), and a
master pass stops any session and starts none (C16, for site attendants).

The charger does the stopping: it compares the group of the card tapped (1.6 parentIdTag, 2.0.1
groupIdToken) with the group the session's card was given; a 2.0.1 charger knows the master pass group
(AuthCtrlr.MasterPassGroupId). A 1.6 charger has no master pass: a master card tapped at a charger with a
session is given that session's group, so the charger stops it by the same rule, and for a minute only (the
charger's authorization cache must not keep a borrowed group).
"""

from __future__ import annotations

import sqlite3
import time

from edge.billing.cards import MASTER_GROUP, Card, group_of
from edge.clock import now_iso

MASTER_ANSWER_S = 60  # how long a 1.6 charger may keep a master card's answer


def user_charging_at(conn: sqlite3.Connection, account_id: int, charger_id: str) -> bool:
    """A card of this user (or a payment of theirs) has a running session at `charger_id`."""
    return conn.execute("SELECT 1 FROM transactions WHERE charger_id = ? AND account_id = ? AND stopped_at IS NULL"
                        " AND coalesce(auth_status, 'Accepted') = 'Accepted' LIMIT 1",
                        (charger_id, account_id)).fetchone() is not None


def master_authorize(conn: sqlite3.Connection, card: Card, charger_id: str, version: str) -> dict:
    """A master pass's Authorize: status, reason, group and (1.6) a short validity."""
    if version != "1.6":
        return {"status": "Accepted", "reason": "master pass (stops sessions)", "group": MASTER_GROUP}
    row = conn.execute("SELECT account_id FROM transactions WHERE charger_id = ? AND stopped_at IS NULL"
                       " AND account_id IS NOT NULL AND coalesce(auth_status, 'Accepted') = 'Accepted'"
                       " ORDER BY id DESC LIMIT 1", (charger_id,)).fetchone()
    until = now_iso(time.time() + MASTER_ANSWER_S)
    if card.expires is not None:
        until = min(until, card.expires)
    if row is None:
        return {"status": "Invalid", "reason": "master pass: nothing charging here to stop", "expires": until,
                "group": None}
    return {"status": "Accepted", "reason": "master pass: stops the session here", "expires": until,
            "group": group_of(row[0])}
