"""The append-only double-entry-style ledger of prepaid accounts (TigerBeetle's two-phase vocabulary).

Entries, all with a unique idempotency key (a replayed message or a repeated command changes nothing):

    topup, refund     +amount, posted
    adjustment        ±amount, posted
    capture           −amount, posted: what a session cost (closes its hold)
    hold              pending: reserved at session start (or for a pay session, before its charger starts)
    release           the part of a session's hold not captured (bookkeeping; closes nothing by itself);
                      for a pay session's hold (`pay_id`, no session): closes it, whole (a void)

balance = Σ posted; held = Σ holds of sessions without a capture + Σ pay sessions' holds without a release;
available = balance − held. A pay session's hold moves to its charging session when the charger starts (a
release of the one and a hold of the other, in one commit).
All functions run inside the caller's transaction on a `sqlite3.Connection`.
"""

from __future__ import annotations

import sqlite3

from edge.clock import now_iso
from edge.store import outbox

POSTED_SIGN = {"topup": 1, "refund": 1, "adjustment": 1, "capture": -1}


class LedgerError(ValueError):
    """A ledger operation that must not happen (unknown account, bad amount)."""


def post(conn: sqlite3.Connection, account_id: int, kind: str, amount_minor: int, *, key: str, currency: str,
         session_id: int | None = None, note: str | None = None, pay_id: int | None = None) -> tuple[int, bool]:
    """Add an entry unless one with `key` exists. Returns (entry id, whether it was added now)."""
    if kind not in ("topup", "hold", "capture", "release", "refund", "adjustment"):
        raise LedgerError(f"unknown entry kind {kind!r}")
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool):
        raise LedgerError(f"amount must be an integer of minor units, got {amount_minor!r}")
    if kind != "adjustment" and amount_minor < 0:
        raise LedgerError(f"{kind} amount must not be negative")
    if kind in ("topup", "refund") and amount_minor == 0:
        raise LedgerError(f"{kind} of zero")
    row = conn.execute("SELECT id FROM ledger WHERE key = ?", (key,)).fetchone()
    if row is not None:
        return row[0], False
    created = now_iso()
    cur = conn.execute(
        "INSERT INTO ledger (account_id, kind, amount_minor, currency, session_id, key, note, created, pay_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (account_id, kind, amount_minor, currency, session_id, key, note,
                                                created, pay_id))
    entry_id = int(cur.lastrowid or 0)
    if kind in POSTED_SIGN:
        conn.execute("UPDATE accounts SET balance_minor = balance_minor + ? WHERE id = ?",
                     (POSTED_SIGN[kind] * amount_minor, account_id))
    if kind == "hold":
        conn.execute("UPDATE accounts SET held_minor = held_minor + ? WHERE id = ?", (amount_minor, account_id))
    elif kind == "capture" and session_id is not None:  # the capture closes the session's hold
        conn.execute("UPDATE accounts SET held_minor = held_minor - ? WHERE id = ?",
                     (session_hold(conn, session_id) or 0, account_id))
    elif kind == "release" and session_id is None and pay_id is not None:  # a pay session's hold, voided
        if amount_minor != (pay_hold(conn, pay_id) or 0):
            raise LedgerError(f"pay session {pay_id}: a release must void its whole hold")
        conn.execute("UPDATE accounts SET held_minor = held_minor - ? WHERE id = ?", (amount_minor, account_id))
    if kind in POSTED_SIGN:  # holds and releases are the edge's own bookkeeping; the cloud gets what is posted
        outbox.add(conn, "ledger", f"ledger:{key}", {
            "entry_id": entry_id, "entry_key": key, "account_id": account_id, "entry_kind": kind,
            "amount_minor": amount_minor, "signed_minor": POSTED_SIGN[kind] * amount_minor, "currency": currency,
            "session_id": session_id, "note": note, "created": created,
            "balance_minor": balance(conn, account_id)})
    return entry_id, True


def balance(conn: sqlite3.Connection, account_id: int) -> int:
    """Σ posted entries (kept on the account by `post`, in the same commit: O(1) however old the account)."""
    row = conn.execute("SELECT balance_minor FROM accounts WHERE id = ?", (account_id,)).fetchone()
    return int(row[0]) if row else 0


def held(conn: sqlite3.Connection, account_id: int) -> int:
    """Σ holds of sessions not yet captured (kept on the account by `post`)."""
    row = conn.execute("SELECT held_minor FROM accounts WHERE id = ?", (account_id,)).fetchone()
    return int(row[0]) if row else 0


def balance_from_entries(conn: sqlite3.Connection, account_id: int) -> tuple[int, int]:
    """(balance, held) summed from the entries themselves: the audit of the figures kept on the account."""
    posted = conn.execute(
        "SELECT coalesce(sum(CASE kind WHEN 'capture' THEN -amount_minor ELSE amount_minor END), 0)"
        " FROM ledger WHERE account_id = ? AND kind IN ('topup', 'refund', 'adjustment', 'capture')",
        (account_id,)).fetchone()[0]
    holds = conn.execute(
        "SELECT coalesce(sum(h.amount_minor), 0) FROM ledger h WHERE h.account_id = ? AND h.kind = 'hold'"
        " AND CASE WHEN h.session_id IS NOT NULL"
        " THEN NOT EXISTS (SELECT 1 FROM ledger c WHERE c.session_id = h.session_id AND c.kind = 'capture')"
        " ELSE NOT EXISTS (SELECT 1 FROM ledger r WHERE r.pay_id = h.pay_id AND r.kind = 'release'"
        " AND r.session_id IS NULL) END", (account_id,)).fetchone()[0]
    return int(posted), int(holds)


def audit(conn: sqlite3.Connection) -> list[dict]:
    """Accounts whose kept balance or holds differ from the sum of their entries (none, on a sound ledger)."""
    out = []
    for account_id, kept_balance, kept_held in conn.execute("SELECT id, balance_minor, held_minor FROM accounts"):
        summed_balance, summed_held = balance_from_entries(conn, account_id)
        if (summed_balance, summed_held) != (kept_balance, kept_held):
            out.append({"account_id": account_id, "balance_minor": kept_balance, "entries_balance_minor": summed_balance,
                        "held_minor": kept_held, "entries_held_minor": summed_held})
    return out


def available(conn: sqlite3.Connection, account_id: int) -> int:
    return balance(conn, account_id) - held(conn, account_id)


def session_hold(conn: sqlite3.Connection, session_id: int) -> int | None:
    row = conn.execute("SELECT amount_minor FROM ledger WHERE session_id = ? AND kind = 'hold'",
                       (session_id,)).fetchone()
    return None if row is None else int(row[0])


def pay_hold(conn: sqlite3.Connection, pay_id: int) -> int | None:
    """The hold made for pay session `pay_id` before its charger started (None if there is none)."""
    row = conn.execute("SELECT amount_minor FROM ledger WHERE pay_id = ? AND kind = 'hold' AND session_id IS NULL",
                       (pay_id,)).fetchone()
    return None if row is None else int(row[0])


def settle(conn: sqlite3.Connection, *, account_id: int, session_id: int, cost_minor: int, overdraft_limit: int,
           currency: str) -> dict:
    """Capture a session's cost against its hold and release the rest, once.

    The capture never exceeds hold + `overdraft_limit`, nor what the account can still pay (its available
    balance with this hold + `overdraft_limit`: the overdraft limit is per account, not per session). What
    is left of the cost is returned as `uncollected_minor` for the caller to record. A second call finds the
    capture's key and changes nothing.
    """
    hold = session_hold(conn, session_id) or 0
    open_hold = hold if not conn.execute("SELECT 1 FROM ledger WHERE key = ?",
                                         (f"session:{session_id}:capture",)).fetchone() else 0
    can_pay = available(conn, account_id) + open_hold + overdraft_limit
    capture = max(0, min(cost_minor, hold + overdraft_limit, can_pay))
    _, added = post(conn, account_id, "capture", capture, key=f"session:{session_id}:capture", currency=currency,
                    session_id=session_id)
    if not added:
        row = conn.execute("SELECT amount_minor FROM ledger WHERE key = ?", (f"session:{session_id}:capture",))
        capture = int(row.fetchone()[0])
        return {"captured_minor": capture, "released_minor": max(0, hold - capture),
                "uncollected_minor": max(0, cost_minor - capture), "settled_now": False}
    if hold > capture:
        post(conn, account_id, "release", hold - capture, key=f"session:{session_id}:release", currency=currency,
             session_id=session_id)
    return {"captured_minor": capture, "released_minor": max(0, hold - capture),
            "uncollected_minor": max(0, cost_minor - capture), "settled_now": True}


def entries(conn: sqlite3.Connection, account_id: int, limit: int = 1000) -> list[dict]:
    cur = conn.execute("SELECT id, kind, amount_minor, currency, session_id, key, note, created FROM ledger"
                       " WHERE account_id = ? ORDER BY id LIMIT ?", (account_id, limit))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
