"""Accounts (the site's registered users) and their cards. Functions on a `sqlite3.Connection`, run inside
the caller's transaction; the CLI, the web backend and cloud_sync are all faces over them.

Every card change bumps the local authorization list version (`meta.local_list_version`) so that the
chargers' local lists can be kept in step.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC

from edge.clock import now_iso, parse_ts
from edge.money import normalise_uid
from edge.store import outbox

KINDS = ("personal", "commercial")
STATUSES = ("active", "blocked", "lost")
# The group of a master pass's cards (2.0.1 AuthCtrlr.MasterPassGroupId, C16): they stop any session
MASTER_GROUP = "SK-MASTERPASS"


def group_of(account_id: int, master: bool = False) -> str:
    """The group id the cards of one account share (1.6 parentIdTag, 2.0.1 groupIdToken): a driver stops
    a session with any card of the same user (C09); a master pass's cards, the master pass group (C16)."""
    return MASTER_GROUP if master else f"SK-A{account_id}"


class CardError(ValueError):
    """Bad input about a card or account: the message says what is wrong."""


@dataclass
class Card:
    uid: str
    account_id: int
    kind: str
    status: str
    chargers: list[str] | None
    name: str
    account_blocked: bool
    last_used: str | None = None
    expires: str | None = None  # UTC, ISO 8601 with a Z; None: valid until blocked
    master: bool = False  # a master pass: its account is the site attendants' (stops any session, starts none)

    @property
    def group(self) -> str:
        """Its group id: the account's, or the master pass group."""
        return group_of(self.account_id, self.master)

    def allowed_at(self, charger_id: str) -> bool:
        return self.chargers is None or charger_id in self.chargers

    def expired(self, now: str | None = None) -> bool:
        """Past its validity end (ISO strings of one form compare as times)."""
        return _past(self.expires, now or now_iso())


def _past(expires: str | None, now: str) -> bool:
    return expires is not None and now >= expires


def _card(row: sqlite3.Row | tuple | None) -> Card | None:
    if row is None:
        return None
    uid, account_id, kind, status, chargers, name, blocked, last_used, expires, master = row
    return Card(uid, account_id, kind, status, json.loads(chargers) if chargers else None, name, bool(blocked),
                last_used, expires, bool(master))


_SELECT = ("SELECT c.uid, c.account_id, c.kind, c.status, c.chargers, a.name, a.blocked, c.last_used, c.expires,"
           " a.master_pass FROM cards c JOIN accounts a ON a.id = c.account_id")


def parse_expiry(text: str | None) -> str | None:
    """A validity end as stored: an ISO 8601 time (its offset, or UTC without one) → UTC with a Z; None or "" →
    None. A person's dates are made times in the site's zone first (`owner.parse_expiry`)."""
    if not text:
        return None
    when = parse_ts(text)
    if when is None:
        raise CardError(f"not a date or time: {text!r} (e.g. 2027-06-30T23:59:59+08:00)")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def get_card(conn: sqlite3.Connection, uid: str) -> Card | None:
    return _card(conn.execute(_SELECT + " WHERE c.uid = ?", (uid,)).fetchone())


def list_cards(conn: sqlite3.Connection) -> list[Card]:
    return [c for c in map(_card, conn.execute(_SELECT + " ORDER BY a.name, c.uid").fetchall()) if c]


def changed_since(conn: sqlite3.Connection, list_version: int) -> list[Card]:
    """The cards changed after local-list version `list_version` (0: all), by UID."""
    rows = conn.execute(_SELECT + " WHERE c.list_version > ? ORDER BY c.uid", (list_version,)).fetchall()
    return [c for c in map(_card, rows) if c]


def bump_list_version(conn: sqlite3.Connection, uid: str | None = None) -> int:
    """A card changed: a new local-list version, recorded on the card (for differential updates)."""
    conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'local_list_version'")
    version = list_version(conn)
    if uid is not None:
        conn.execute("UPDATE cards SET list_version = ? WHERE uid = ?", (version, uid))
        card = get_card(conn, uid)
        assert card is not None
        outbox.add(conn, "card", f"card:{uid}:{version}", {
            "uid": uid, "account_id": card.account_id, "name": card.name, "card_kind": card.kind, "status": card.status,
            "chargers": card.chargers, "account_blocked": card.account_blocked, "expires": card.expires,
            "list_version": version,
            "changed": now_iso()})
    return version


def all_cards(conn: sqlite3.Connection) -> dict[str, tuple[bool, list[str] | None, str]]:
    """Every card the site has, any status (a blocked or expired card is known, and refused by billing): uid →
    (usable: active on an account not blocked, not expired, the chargers it is limited to or None, its group)."""
    now = now_iso()
    return {uid: (status == "active" and not blocked and not _past(expires, now),
                  json.loads(chargers) if chargers else None, group_of(account_id, bool(master)))
            for uid, status, blocked, chargers, expires, account_id, master in conn.execute(
                "SELECT c.uid, c.status, a.blocked, c.chargers, c.expires, c.account_id, a.master_pass FROM cards c"
                " JOIN accounts a ON a.id = c.account_id")}


def list_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT value FROM meta WHERE key = 'local_list_version'").fetchone()[0])


def add_account(conn: sqlite3.Connection, name: str, phone: str | None = None, email: str | None = None) -> int:
    if not name or not name.strip():
        raise CardError("a name is needed")
    if email is not None and "@" not in email:
        raise CardError(f"not an email address: {email!r}")
    cur = conn.execute("INSERT INTO accounts (name, phone, email, created) VALUES (?, ?, ?, ?)",
                       (name.strip(), phone, email, now_iso()))
    return int(cur.lastrowid or 0)


def get_account(conn: sqlite3.Connection, account_id: int) -> dict | None:
    cur = conn.execute("SELECT id, name, phone, email, created, blocked, master_pass FROM accounts WHERE id = ?",
                       (account_id,))
    row = cur.fetchone()
    if row is None:
        return None
    account = dict(zip([d[0] for d in cur.description], row, strict=True))
    account["master_pass"] = bool(account["master_pass"])
    return account


def add_card(conn: sqlite3.Connection, uid: str, kind: str, *, account_id: int | None = None,
             name: str | None = None, phone: str | None = None, email: str | None = None,
             chargers: list[str] | None = None, expires: str | None = None) -> Card:
    """Register a card, on an existing account or a new one made from name/phone/email."""
    uid = normalise_uid(uid)
    if kind not in KINDS:
        raise CardError(f"kind must be personal or commercial, not {kind!r}")
    if chargers is not None and kind != "personal":
        raise CardError("only a personal card can be limited to chargers")
    if get_card(conn, uid) is not None:
        raise CardError(f"card {uid} is already registered")
    if account_id is None:
        account_id = add_account(conn, name or "", phone, email)
    elif get_account(conn, account_id) is None:
        raise CardError(f"no account {account_id}")
    expires = parse_expiry(expires)
    now = now_iso()
    conn.execute("INSERT INTO cards (uid, account_id, kind, chargers, created, updated, expires)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (uid, account_id, kind, json.dumps(chargers) if chargers else None, now, now, expires))
    bump_list_version(conn, uid)
    card = get_card(conn, uid)
    assert card is not None
    return card


def update_card(conn: sqlite3.Connection, uid: str, *, status: str | None = None, kind: str | None = None,
                chargers: list[str] | None | bool = False, expires: str | None | bool = False) -> Card:
    """Change a card's status, kind, allowed chargers (`chargers=None` lifts the limit) or validity end
    (`expires=None` lifts it). What is already so changes nothing: no write, no new local-list version, no
    record for the cloud (from any face alike)."""
    uid = normalise_uid(uid)
    card = get_card(conn, uid)
    if card is None:
        raise CardError(f"unknown card {uid}")
    if status is not None and status not in STATUSES:
        raise CardError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    if kind is not None and kind not in KINDS:
        raise CardError(f"kind must be personal or commercial, not {kind!r}")
    sets, args = [], []
    if status is not None and status != card.status:
        sets.append("status = ?")
        args.append(status)
    if kind is not None and kind != card.kind:
        sets.append("kind = ?")
        args.append(kind)
    if chargers is not False and (chargers or None) != card.chargers:
        sets.append("chargers = ?")
        args.append(json.dumps(chargers) if chargers else None)
    new_end = card.expires if expires is False else parse_expiry(expires or None)  # type: ignore[arg-type]
    if new_end != card.expires:
        sets.append("expires = ?")
        args.append(new_end)
    if sets:
        conn.execute(f"UPDATE cards SET {', '.join(sets)}, updated = ? WHERE uid = ?", (*args, now_iso(), uid))
        bump_list_version(conn, uid)
    updated = get_card(conn, uid)
    assert updated is not None
    return updated


def touch(conn: sqlite3.Connection, uid: str) -> None:
    conn.execute("UPDATE cards SET last_used = ? WHERE uid = ?", (now_iso(), uid))


# -- unknown cards (enrol by tap) ------------------------------------------------------------------------
KEEP_UNKNOWN = 50  # the newest unknown taps kept


def record_unknown(conn: sqlite3.Connection, uid: str, reader: str) -> None:
    conn.execute("INSERT INTO unknown_taps (uid, reader, at) VALUES (?, ?, ?)", (uid, reader, now_iso()))
    conn.execute("DELETE FROM unknown_taps WHERE id <= (SELECT id FROM unknown_taps ORDER BY id DESC"
                 " LIMIT 1 OFFSET ?)", (KEEP_UNKNOWN,))


def unknown(conn: sqlite3.Connection, limit: int = 20) -> list[dict]:
    """Unknown cards tapped recently, newest first, one row per card (its latest tap)."""
    cur = conn.execute(
        "SELECT uid, reader, max(at) AS at, count(*) AS taps FROM unknown_taps"
        " WHERE uid NOT IN (SELECT uid FROM cards) GROUP BY uid ORDER BY max(id) DESC LIMIT ?", (limit,))
    return [dict(zip([d[0] for d in cur.description], row, strict=True)) for row in cur.fetchall()]


def last_unknown(conn: sqlite3.Connection) -> dict | None:
    rows = unknown(conn, 1)
    return rows[0] if rows else None
