"""Carrying out the controller's `Persist` actions on a store connection: each operation is a row writer of
`edge.store.ops`, except ``close_session``, billing's rule for a session that ended (settle it once, queue
its record for the cloud). All in the caller's transaction, so a stop, its bill and its record commit together."""

from __future__ import annotations

import sqlite3

from edge.billing import sessions
from edge.store.ops import OPS


def apply(conn: sqlite3.Connection, ops: list[tuple[str, dict]]) -> None:
    """Apply `ops` in order on `conn`."""
    for kind, data in ops:
        if kind == "close_session":
            sessions.close_session(conn, data["charger_id"], data["tx_key"])
        else:
            OPS[kind](conn, data)
