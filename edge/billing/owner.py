"""The site owner's changes: register cards, block / unblock / mark them lost, top up accounts, change a user's contact, move a card to another user, set tariffs.

Functions on a `sqlite3.Connection`, run inside the caller's transaction (`store.write_now(...)`), so a
refused change writes nothing. The `sitekeeper` CLI and the web backend are both faces over them; the reads
and reports are in `edge.billing.reports`.

Top-up rules:
- The money goes to the card's *account* (the card is only an identifier). A blocked or lost card can still
  be topped up: the balance belongs to the account and its other (or a replacement) card can use it; the
  result says the card's status so that a face can warn.
- A personal card does not use money: a top-up to it is refused.
- Every top-up has a ledger key. Without one a fresh key is made (each call is a new top-up); with one
  (`topup:<key>` in the ledger) a repeated call changes nothing, and reusing a key for a different account
  or amount is refused.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from edge.billing import cards, ledger
from edge.billing.tariff import Tariff, build_tariff, spec_of, utc_key
from edge.clock import now_iso
from edge.money import MoneyError, normalise_uid, to_minor

MAX_TOPUP_MINOR = 10**12  # far above any real top-up, far below SQLite's 64-bit integers


class OwnerError(ValueError):
    """A change the owner asked for that cannot be made; the message says why."""


def parse_amount(text: str, exponent: int = 2) -> int:
    """A top-up amount in major units ('250', '250.50') → minor units; zero, negative or malformed is an error."""
    amount = to_minor(text, exponent)
    _check_amount(amount, text)
    return amount


def _check_amount(amount: int, shown: object) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise MoneyError(f"the amount must be above zero, got {shown!r}")
    if amount > MAX_TOPUP_MINOR:
        raise MoneyError(f"the amount is too large: {shown!r}")


def parse_chargers(text: str | None) -> list[str] | None:
    """'A, B' → ['A', 'B']; None → None (no limit). An empty list is an error."""
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise OwnerError(f"no charger ids in {text!r}")
    return names


def parse_expiry(text: str | None, timezone: str) -> str | None:
    """A card's validity end as a person gives it: a date (valid through the end of that day in the site's time
    zone), a time (ISO 8601; without an offset, the site's time zone), or "never" / "" (no end) → the time in
    ISO 8601 with its offset, or None."""
    text = (text or "").strip()
    if text.lower() in ("", "never", "none"):
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise OwnerError(f"not a date or time: {text!r} (e.g. 2027-06-30, or never)") from None
    if len(text) == 10:  # a date alone: through its last second
        when = when.replace(hour=23, minute=59, second=59)
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(timezone))
    return when.isoformat()


def register_card(conn: sqlite3.Connection, uid: str, kind: str, *, name: str | None = None,
                  phone: str | None = None, email: str | None = None, chargers: list[str] | None = None,
                  account_id: int | None = None, expires: str | None = None) -> cards.Card:
    """A new card on a new account (name, phone, email) or on an existing one (`account_id`); `expires`: its
    validity end (`parse_expiry`)."""
    if account_id is not None and (name or phone or email):
        raise OwnerError("give either an existing account or a name/phone/email for a new one, not both")
    return cards.add_card(conn, uid, kind, account_id=account_id, name=name, phone=phone, email=email,
                          chargers=chargers, expires=expires)


_PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{5,24}$")


def update_contact(conn: sqlite3.Connection, account_id: int, *, name: str | None = None,
                   phone: str | None = None, email: str | None = None) -> tuple[dict, dict]:
    """Change a user's name, phone or email (None: leave it; "": clear phone or email). Returns the contact
    before and after. A new name reaches the cloud with each of the user's cards (its records carry it)."""
    before = cards.get_account(conn, account_id)
    if before is None:
        raise OwnerError(f"no user {account_id}")
    after = {k: before[k] for k in ("name", "phone", "email")}
    if name is not None:
        if not name.strip():
            raise OwnerError("a user needs a name")
        after["name"] = name.strip()[:120]
    if phone is not None:
        phone = phone.strip()
        if phone and not _PHONE.match(phone):
            raise OwnerError(f"not a phone number: {phone!r} (digits, with + and spaces or dashes if you like)")
        after["phone"] = phone or None
    if email is not None:
        email = email.strip()
        if email and ("@" not in email or len(email) > 254 or " " in email):
            raise OwnerError(f"not an email address: {email!r}")
        after["email"] = email or None
    old = {k: before[k] for k in after}
    if after != old:
        conn.execute("UPDATE accounts SET name = ?, phone = ?, email = ? WHERE id = ?",
                     (after["name"], after["phone"], after["email"], account_id))
        if after["name"] != old["name"]:
            for (uid,) in conn.execute("SELECT uid FROM cards WHERE account_id = ?", (account_id,)).fetchall():
                cards.bump_list_version(conn, uid)
    return old, after


def set_master_pass(conn: sqlite3.Connection, account_id: int, on: bool) -> bool:
    """Make a user's cards master passes (site attendants: they stop any session and start none,
    `edge.billing.groups`), or ordinary cards again. Returns whether it was so before. A user charging now is
    not changed (the session's card would change its nature under it)."""
    account = cards.get_account(conn, account_id)
    if account is None:
        raise OwnerError(f"no user {account_id}")
    before = account["master_pass"]
    if before == on:
        return before
    if conn.execute("SELECT 1 FROM transactions WHERE account_id = ? AND stopped_at IS NULL"
                    " AND coalesce(auth_status, 'Accepted') = 'Accepted'", (account_id,)).fetchone():
        raise OwnerError(f"user {account_id} is charging now: change this when the session has ended")
    conn.execute("UPDATE accounts SET master_pass = ? WHERE id = ?", (int(on), account_id))
    for (uid,) in conn.execute("SELECT uid FROM cards WHERE account_id = ?", (account_id,)).fetchall():
        cards.bump_list_version(conn, uid)  # the chargers' lists carry the group
    return before


def assign_card(conn: sqlite3.Connection, uid: str, account_id: int) -> tuple[int, cards.Card]:
    """Move a card to another user (a card given to a family member, a replacement found to be someone
    else's). The money stays with the accounts: the card only identifies. A card in a running session is not
    moved (its hold is on the old account). Returns the old account id and the card."""
    uid = normalise_uid(uid)
    card = cards.get_card(conn, uid)
    if card is None:
        raise OwnerError(f"unknown card {uid}")
    if cards.get_account(conn, account_id) is None:
        raise OwnerError(f"no user {account_id}")
    if card.account_id == account_id:
        return account_id, card
    if conn.execute("SELECT 1 FROM transactions WHERE id_tag = ? AND stopped_at IS NULL", (uid,)).fetchone():
        raise OwnerError(f"card {uid} is charging now: move it when the session has ended")
    conn.execute("UPDATE cards SET account_id = ?, updated = ? WHERE uid = ?", (account_id, now_iso(), uid))
    cards.bump_list_version(conn, uid)
    moved = cards.get_card(conn, uid)
    assert moved is not None
    return card.account_id, moved


def set_card_status(conn: sqlite3.Connection, uid: str, status: str) -> cards.Card:
    """'active', 'blocked' or 'lost'."""
    return cards.update_card(conn, uid, status=status)


def topup(conn: sqlite3.Connection, uid: str, amount_minor: int, *, currency: str, key: str | None = None,
          note: str | None = None) -> dict:
    """Credit `amount_minor` to the account of card `uid`, once per key. Returns what happened."""
    uid = normalise_uid(uid)
    card = cards.get_card(conn, uid)
    if card is None:
        raise cards.CardError(f"unknown card {uid}")
    if card.kind == "personal":
        raise OwnerError(f"card {uid} is a personal card: personal cards charge free and hold no money")
    out = topup_account(conn, card.account_id, amount_minor, currency=currency, key=key, note=note)
    return {"uid": uid, "name": card.name, "card_status": card.status, **out}


def topup_account(conn: sqlite3.Connection, account_id: int, amount_minor: int, *, currency: str,
                  key: str | None = None, note: str | None = None) -> dict:
    """Credit `amount_minor` to account `account_id`, once per key (the same key again changes nothing and
    says so: `applied` False). Returns what happened."""
    if conn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone() is None:
        raise OwnerError(f"no account {account_id}")
    _check_amount(amount_minor, amount_minor)
    if key is not None and not key.strip():
        raise OwnerError("an empty key")
    ledger_key = f"topup:{key}" if key is not None else f"topup:auto:{uuid.uuid4().hex}"
    row = conn.execute("SELECT account_id, kind, amount_minor, currency FROM ledger WHERE key = ?",
                       (ledger_key,)).fetchone()
    if row is not None and tuple(row) != (account_id, "topup", amount_minor, currency):
        raise OwnerError(f"key {key!r} was already used for a different entry ({row[1]} of {row[2]} {row[3]}"
                         f" to account {row[0]})")
    entry_id, added = ledger.post(conn, account_id, "topup", amount_minor, key=ledger_key, currency=currency,
                                  note=note)
    return {"account_id": account_id, "amount_minor": amount_minor, "currency": currency, "entry_id": entry_id,
            "applied": added, "key": ledger_key, "balance_minor": ledger.balance(conn, account_id),
            "available_minor": ledger.available(conn, account_id)}


def add_tariff(conn: sqlite3.Connection, valid_from: datetime, spec: dict, *, source: str | None = None,
               exponent: int, timezone: str) -> str:
    """A tariff for sessions that start from `valid_from` on (checked first: a bad one raises TariffError and
    writes nothing); `source`: the command that brought it. Returns `valid_from` as stored (UTC)."""
    written = spec_of(build_tariff(spec, exponent, timezone), exponent)  # "0" is kept as "0.00", as shown
    when = utc_key(valid_from)
    conn.execute("INSERT INTO tariffs (valid_from, body, command_id, created) VALUES (?, ?, ?, ?)",
                 (when, json.dumps(written), source, now_iso()))
    return when


def tariffs(conn: sqlite3.Connection, base: Tariff, exponent: int, *, now: datetime | None = None) -> dict:
    """The site's tariffs as an owner reads them: the one in force `now`, those set to start later, and every
    one set so far (newest first), each in its written form; `base` is the config file's, in force until the
    first replacement. `source`: the cloud command or the account that set it."""
    now = now or datetime.now(UTC)
    rows = conn.execute("SELECT id, valid_from, body, command_id, created FROM tariffs"
                        " ORDER BY valid_from DESC, id DESC").fetchall()
    listed = [{"id": i, "valid_from": vf, "tariff": json.loads(body), "source": src, "created": created}
              for i, vf, body, src, created in rows]
    key = utc_key(now)
    current = next((t for t in listed if t["valid_from"] <= key), None)
    in_force = current or {"id": None, "valid_from": None, "tariff": spec_of(base, exponent), "source": "config",
                           "created": None}
    return {"in_force": in_force, "upcoming": [t for t in reversed(listed) if t["valid_from"] > key],
            "history": listed}
