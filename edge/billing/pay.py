"""Pay sessions: a driver pays at `/pay/<charger>/<connector>`, the money is held, then the charger is told to
start. Functions on a `sqlite3.Connection`, each inside the caller's transaction; the pay pages
(`edge.web.pay_pages`), the charger's start (`edge.billing.sessions.decide`) and the session's end
(`close_session`) are their callers.

The states of a pay session (one busy session per connector, kept so by a unique index):

    paying    (QR Ph) the provider's QR is shown; its webhook (`paid`) credits the wallet and holds
    starting  the hold is committed; the start command may go out; the charger has until `expires` to start
    charging  the charger started with the session's id tag ("PAY" + code): the hold moved to its session
    done      the session stopped and was billed: the receipt `/receipt/<code>`
    failed    the charger did not start in time (or refused): the hold is released, the money stays
    expired   (QR Ph) nobody paid before the QR's end

Money paid by QR Ph is credited to a wallet (an account) found by the driver's phone number, or made for it;
a wallet this pay session made may be given a PIN on the spot, so that what is left can be used next time.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from edge.billing import cards, ledger
from edge.billing.payments import Event
from edge.clock import now_iso, parse_ts
from edge.money import PAY_CODE_ALPHABET as _ALPHABET
from edge.money import PAY_CODE_LENGTH as _CODE_LEN
from edge.money import PAY_PREFIX as PREFIX
from edge.money import UidError, is_pay_tag, normalise_uid
from edge.store import outbox

BUSY = ("paying", "starting", "charging")
PIN_TRIES = 5
PIN_LOCK = timedelta(minutes=15)


class PayError(ValueError):
    """What a driver is told when paying cannot go on: `key` names the text in the driver catalogs, `values`
    fill it in; the English text is the exception's message (for logs and the API)."""

    def __init__(self, key: str, english: str, **values: object):
        super().__init__(english)
        self.key, self.values = key, values


@dataclass(frozen=True)
class Money:
    """The site's money rules a pay session needs (from `edge.billing.sessions.SETTINGS`)."""

    currency: str
    min_start: int
    max_hold: int


# -- names ---------------------------------------------------------------------------------------------------
def new_secret() -> tuple[str, str]:
    """(the secret that goes in the driver's page address, what is stored of it)."""
    token = secrets.token_urlsafe(24)
    return token, secret_hash(token)


def secret_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_code() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(_CODE_LEN))


def id_tag(code: str) -> str:
    """What the charger is told to start for (an idTag of 1.6 fits 20 characters)."""
    return PREFIX + code


def normalise_phone(text: str) -> str:
    """'0917 123 4567', '+63 917-123-4567', '639171234567' → '+639171234567' (other countries: +<8-15 digits>)."""
    raw = re.sub(r"[\s\-().]", "", text or "")
    if re.fullmatch(r"09\d{9}", raw):
        return "+63" + raw[1:]
    if re.fullmatch(r"639\d{9}", raw):
        return "+" + raw
    if re.fullmatch(r"\+\d{8,15}", raw):
        return raw
    raise PayError("pay.err.phone", f"not a phone number: {text!r}", phone=text)


def mask_phone(phone: str | None) -> str:
    """'+639171234567' → '+63 917 *** 4567' (enough for its owner to know it)."""
    if not phone:
        return ""
    if phone.startswith("+63") and len(phone) == 13:
        return f"+63 {phone[3:6]} *** {phone[-4:]}"
    return phone[:4] + " *** " + phone[-4:]


# -- wallets and PINs ----------------------------------------------------------------------------------------
def accounts_by_phone(conn: sqlite3.Connection, phone: str) -> list[int]:
    out = []
    for account_id, stored in conn.execute("SELECT id, phone FROM accounts WHERE phone IS NOT NULL AND phone != ''"):
        try:
            if normalise_phone(stored) == phone:
                out.append(account_id)
        except PayError:
            continue
    return out


def find_wallet(conn: sqlite3.Connection, who: str) -> dict:
    """The account a driver names by card number (its UID) or phone number, with its PIN state."""
    try:
        uid: str | None = normalise_uid(who)
    except UidError:
        uid = None
    if uid is not None:
        card = cards.get_card(conn, uid)
        account_id = card.account_id if card is not None else None
        if card is not None and card.status != "active":  # a lost card's number is no way in, PIN or not
            raise PayError("pay.err.card_blocked", f"this card is {card.status}")
    else:
        try:
            found = accounts_by_phone(conn, normalise_phone(who))
        except PayError:
            found = []
        if len(found) > 1:
            raise PayError("pay.err.ambiguous", "more than one account has this phone number: use the card number")
        account_id = found[0] if found else None
    row = None if account_id is None else conn.execute(
        "SELECT id, name, pin_hash, pin_failures, pin_locked_until, blocked FROM accounts WHERE id = ?",
        (account_id,)).fetchone()
    if row is None:
        raise PayError("pay.err.no_wallet", "no account with this card or phone number")
    return {"id": row[0], "name": row[1], "pin_hash": row[2], "failures": row[3], "locked_until": row[4],
            "blocked": bool(row[5])}


def pin_locked(wallet: dict, now: datetime | None = None) -> str | None:
    """Until when the wallet's PIN is locked (its UTC time), or None."""
    until = parse_ts(wallet.get("locked_until"))
    now = now or datetime.now(UTC)
    return wallet["locked_until"] if until is not None and until > now else None


def record_pin(conn: sqlite3.Connection, account_id: int, ok: bool) -> str | None:
    """Count a PIN try: a right one clears the count; the `PIN_TRIES`th wrong one in a row locks the PIN for
    `PIN_LOCK`. Returns the lock's end when this try locked it."""
    if ok:
        conn.execute("UPDATE accounts SET pin_failures = 0, pin_locked_until = NULL WHERE id = ?", (account_id,))
        return None
    conn.execute("UPDATE accounts SET pin_failures = pin_failures + 1 WHERE id = ?", (account_id,))
    failures = conn.execute("SELECT pin_failures FROM accounts WHERE id = ?", (account_id,)).fetchone()[0]
    if failures < PIN_TRIES:
        return None
    until = (datetime.now(UTC) + PIN_LOCK).isoformat().replace("+00:00", "Z")
    conn.execute("UPDATE accounts SET pin_failures = 0, pin_locked_until = ? WHERE id = ?", (until, account_id))
    return until


def check_pin_format(pin: str) -> str:
    if not re.fullmatch(r"\d{4,8}", pin or ""):
        raise PayError("pay.err.pin_format", "a PIN is 4 to 8 digits")
    return pin


def set_pin_hash(conn: sqlite3.Connection, account_id: int, pin_hash: str) -> None:
    """Give an account its (new) PIN, already hashed (`edge.security.hash_secret`); the lock is lifted."""
    cur = conn.execute("UPDATE accounts SET pin_hash = ?, pin_failures = 0, pin_locked_until = NULL WHERE id = ?",
                       (pin_hash, account_id))
    if cur.rowcount != 1:
        raise PayError("pay.err.no_wallet", f"no account {account_id}")


# -- the pay session's life ----------------------------------------------------------------------------------
_COLUMNS = ("id", "code", "charger_id", "connector_id", "method", "state", "account_id", "phone", "amount_minor",
            "hold_minor", "provider_ref", "provider_qr", "transaction_id", "message", "created", "updated",
            "expires", "history")


def _row(conn: sqlite3.Connection, where: str, args: tuple) -> dict | None:
    row = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM pay_sessions WHERE {where}", args).fetchone()
    if row is None:
        return None
    out = dict(zip(_COLUMNS, row, strict=True))
    out["history"] = json.loads(out["history"])
    return out


def get(conn: sqlite3.Connection, pay_id: int) -> dict | None:
    return _row(conn, "id = ?", (pay_id,))


def by_secret(conn: sqlite3.Connection, token: str) -> dict | None:
    return _row(conn, "token_hash = ?", (secret_hash(token),))


def by_code(conn: sqlite3.Connection, code: str) -> dict | None:
    return _row(conn, "code = ?", (code.upper(),))


def by_provider_ref(conn: sqlite3.Connection, ref: str) -> dict | None:
    return _row(conn, "provider_ref = ?", (ref,))


def busy(conn: sqlite3.Connection, charger_id: str, connector_id: int) -> dict | None:
    """The connector's pay session in progress, if any."""
    return _row(conn, "charger_id = ? AND connector_id = ? AND state IN ('paying', 'starting', 'charging')",
                (charger_id, connector_id))


def _later(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _move(conn: sqlite3.Connection, pay: dict, state: str, message: str | None = None, **fields: object) -> dict:
    """Set the pay session's state (and fields), note it in its history, and queue its record for the cloud."""
    at = now_iso()
    history = [*pay["history"], [at, state, message or ""]]
    sets = {"state": state, "updated": at, "history": json.dumps(history), **fields}
    if message is not None:
        sets["message"] = message
    conn.execute(f"UPDATE pay_sessions SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                 (*sets.values(), pay["id"]))
    moved = get(conn, pay["id"])
    assert moved is not None
    _record(conn, moved)
    return moved


def _record(conn: sqlite3.Connection, pay: dict) -> None:
    outbox.add(conn, "payment", f"payment:{pay['id']}:{pay['state']}", {
        "pay_id": pay["id"], "code": pay["code"], "charger_id": pay["charger_id"],
        "connector_id": pay["connector_id"], "method": pay["method"], "state": pay["state"],
        "account_id": pay["account_id"], "phone": pay["phone"], "amount_minor": pay["amount_minor"],
        "hold_minor": pay["hold_minor"], "provider_ref": pay["provider_ref"],
        "transaction_id": pay["transaction_id"], "message": pay["message"], "at": pay["updated"]})


def _insert(conn: sqlite3.Connection, *, token_hash: str, charger_id: str, connector_id: int, method: str,
            state: str, expires: str, **fields: object) -> dict:
    if busy(conn, charger_id, connector_id) is not None:
        raise PayError("pay.err.busy", f"connector {connector_id} of {charger_id} is in use")
    at = now_iso()
    values = {"token_hash": token_hash, "code": new_code(), "charger_id": charger_id, "connector_id": connector_id,
              "method": method, "state": state, "created": at, "updated": at, "expires": expires,
              "history": json.dumps([[at, state, ""]]), **fields}
    cur = conn.execute(f"INSERT INTO pay_sessions ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                       tuple(values.values()))
    pay = get(conn, int(cur.lastrowid or 0))
    assert pay is not None
    _record(conn, pay)
    return pay


def _hold(conn: sqlite3.Connection, pay: dict, account_id: int, money: Money, start_timeout: float) -> dict:
    available = ledger.available(conn, account_id)
    if available < money.min_start:
        raise PayError("pay.err.low_balance", "the balance is below the minimum to start",
                       balance_minor=available, minimum_minor=money.min_start)
    amount = min(available, money.max_hold)
    ledger.post(conn, account_id, "hold", amount, key=f"pay:{pay['id']}:hold", currency=money.currency,
                pay_id=pay["id"], note=f"pay {pay['code']} at {pay['charger_id']}:{pay['connector_id']}")
    return _move(conn, pay, "starting", account_id=account_id, hold_minor=amount, expires=_later(start_timeout))


def start_wallet(conn: sqlite3.Connection, *, token_hash: str, charger_id: str, connector_id: int,
                 account_id: int, money: Money, start_timeout: float) -> dict:
    """The driver's wallet (PIN checked by the caller) pays: the hold is made in this commit; after it, and
    only after it, the start command may go out. Raises `PayError` (busy connector, too low a balance)."""
    blocked = conn.execute("SELECT blocked FROM accounts WHERE id = ?", (account_id,)).fetchone()
    if blocked is None or blocked[0]:
        raise PayError("pay.err.blocked", "this account is blocked")
    pay = _insert(conn, token_hash=token_hash, charger_id=charger_id, connector_id=connector_id, method="wallet",
                  state="starting", expires=_later(start_timeout), account_id=account_id)
    return _hold(conn, pay, account_id, money, start_timeout)


def begin_qrph(conn: sqlite3.Connection, *, token_hash: str, charger_id: str, connector_id: int, phone: str,
               amount_minor: int, expires_s: float) -> dict:
    """A QR Ph payment is about to be asked of the provider: the connector is the driver's until `expires_s`."""
    return _insert(conn, token_hash=token_hash, charger_id=charger_id, connector_id=connector_id, method="qrph",
                   state="paying", expires=_later(expires_s), phone=phone, amount_minor=amount_minor)


def set_provider_ref(conn: sqlite3.Connection, pay_id: int, ref: str, qr: str | None) -> None:
    """The provider's payment for the pay session, and the QR code to show for it."""
    conn.execute("UPDATE pay_sessions SET provider_ref = ?, provider_qr = ?, updated = ? WHERE id = ?",
                 (ref, qr, now_iso(), pay_id))


def wallet_for_phone(conn: sqlite3.Connection, phone: str, pay_id: int) -> int:
    """The account QR Ph money for `phone` goes to: the one account with that phone, else a new wallet that
    remembers the pay session that made it (only that pay session may give it a PIN)."""
    found = accounts_by_phone(conn, phone)
    if len(found) == 1:
        return found[0]
    cur = conn.execute("INSERT INTO accounts (name, phone, created, made_by_pay) VALUES (?, ?, ?, ?)",
                       (f"Wallet {mask_phone(phone)}", phone, now_iso(), pay_id))
    return int(cur.lastrowid or 0)


def paid(conn: sqlite3.Connection, pay: dict, *, amount_minor: int, payment_ref: str, money: Money,
         start_timeout: float) -> dict:
    """The provider says the driver paid: credit the wallet (once: the payment's id is the entry's key) and,
    if the pay session still waits for it, hold and move to `starting`. A payment for a pay session that no
    longer waits (expired) is credited all the same: the money is the driver's, in the wallet."""
    account_id = pay["account_id"] or wallet_for_phone(conn, pay["phone"], pay["id"])
    ledger.post(conn, account_id, "topup", amount_minor, key=f"pay:{payment_ref}", currency=money.currency,
                pay_id=pay["id"], note=f"QR Ph payment {payment_ref} ({pay['code']})")
    if pay["state"] != "paying":
        conn.execute("UPDATE pay_sessions SET account_id = ? WHERE id = ?", (account_id, pay["id"]))
        return {**pay, "account_id": account_id}
    conn.execute("UPDATE pay_sessions SET account_id = ? WHERE id = ?", (account_id, pay["id"]))
    try:
        return _hold(conn, {**pay, "account_id": account_id}, account_id, money, start_timeout)
    except PayError as e:  # paid less than it takes to start: the money stays in the wallet
        return _move(conn, {**pay, "account_id": account_id}, "failed", str(e))


def fail(conn: sqlite3.Connection, pay_id: int, message: str) -> dict | None:
    """The charger did not start: release the hold (the money stays in the wallet). Only from `starting`
    (a charger that started meanwhile keeps its session); returns the pay session, or None if it had moved on."""
    pay = get(conn, pay_id)
    if pay is None or pay["state"] != "starting":
        return None
    hold = conn.execute("SELECT amount_minor, currency FROM ledger WHERE pay_id = ? AND kind = 'hold'"
                        " AND session_id IS NULL", (pay_id,)).fetchone()
    if hold is not None:
        ledger.post(conn, pay["account_id"], "release", hold[0], key=f"pay:{pay_id}:release", currency=hold[1],
                    pay_id=pay_id, note="the charger did not start")
    return _move(conn, pay, "failed", message)


def expire(conn: sqlite3.Connection, pay_id: int, message: str = "no payment came before the QR code ended") \
        -> dict | None:
    pay = get(conn, pay_id)
    if pay is None or pay["state"] != "paying":
        return None
    return _move(conn, pay, "expired", message)


def overdue(conn: sqlite3.Connection, now: str | None = None) -> list[tuple[int, str]]:
    """Pay sessions whose time is up: (id, state) of those `paying` past the QR's end and `starting` past the
    charger's time to start."""
    return [(r[0], r[1]) for r in conn.execute(
        "SELECT id, state FROM pay_sessions WHERE state IN ('paying', 'starting') AND expires < ? ORDER BY id",
        (now or now_iso(),))]


def for_start(conn: sqlite3.Connection, tag: str, charger_id: str) -> dict | None:
    """The pay session a charger's start (or Authorize) with `tag` belongs to, if it may still start."""
    pay = _row(conn, "code = ?", (tag[len(PREFIX):],)) if is_pay_tag(tag) else None
    if pay is None or pay["charger_id"] != charger_id or pay["state"] not in ("starting", "charging"):
        return None
    return pay


def started(conn: sqlite3.Connection, pay: dict, session_id: int, currency: str) -> int:
    """The charger started session `session_id` for `pay`: its hold moves to the session (one commit).
    Returns the session's hold."""
    hold = ledger.pay_hold(conn, pay["id"]) or 0
    if hold:
        ledger.post(conn, pay["account_id"], "release", hold, key=f"pay:{pay['id']}:moved", currency=currency,
                    pay_id=pay["id"], note=f"moved to session {session_id}")
    ledger.post(conn, pay["account_id"], "hold", hold, key=f"session:{session_id}:hold", currency=currency,
                session_id=session_id, pay_id=pay["id"])
    _move(conn, pay, "charging", transaction_id=session_id)
    return hold


def finished(conn: sqlite3.Connection, session_id: int) -> dict | None:
    """Session `session_id` stopped and was billed: its pay session (if it had one) is done."""
    pay = _row(conn, "transaction_id = ? AND state = 'charging'", (session_id,))
    return None if pay is None else _move(conn, pay, "done")


_TX = ("SELECT started_at, stopped_at, energy_wh, meter_start, meter_stop, cost_minor, captured_minor, hold_minor,"
       " stop_reason, charger_id, coalesce(evse_id, connector_id) AS connector_id, id_tag, account_id, id"
       " FROM transactions")


def _tx(conn: sqlite3.Connection, where: str, arg: object) -> dict | None:
    cur = conn.execute(f"{_TX} WHERE {where}", (arg,))
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))


def receipt(conn: sqlite3.Connection, code: str) -> dict | None:
    """What the receipt `code` shows: a pay session and its charging session's figures, or a card's session
    (method "card", the card masked by the caller)."""
    code = code.upper()
    paid = by_code(conn, code)
    if paid is not None:
        tx = _tx(conn, "id = ?", paid["transaction_id"]) if paid["transaction_id"] is not None else None
        balance = ledger.available(conn, paid["account_id"]) if paid["account_id"] is not None else None
        return {**paid, "tx": tx, "available_minor": balance}
    tx = _tx(conn, "receipt_code = ?", code)
    if tx is None:
        return None
    return {"code": code, "method": "card", "state": "done", "charger_id": tx["charger_id"],
            "connector_id": tx["connector_id"], "hold_minor": tx["hold_minor"] or 0, "amount_minor": 0,
            "card": tx["id_tag"], "tx": tx, "available_minor": ledger.available(conn, tx["account_id"])}


def listing(conn: sqlite3.Connection, limit: int = 200) -> list[dict]:
    """The newest pay sessions, for the owner."""
    ids = [r[0] for r in conn.execute("SELECT id FROM pay_sessions ORDER BY id DESC LIMIT ?", (limit,))]
    return [p for p in (get(conn, i) for i in ids) if p is not None]


# -- the provider's word (webhooks) --------------------------------------------------------------------------
def take_event(conn: sqlite3.Connection, provider: str, event: Event, body: str, *, money: Money,
               start_timeout: float) -> dict:
    """Record a verified webhook by its event id, then apply it, in one commit. A replay finds the id and
    changes nothing (`new` False). A payment for no pay session, for one that no longer waits (expired), or
    in another currency is kept `unresolved`, for the owner (`credit_unresolved`). Returns {new, outcome,
    note, pay}: `pay` in `starting` means the hold is committed and the charger may now be told."""
    key = f"{provider}:{event.id}"
    if conn.execute("SELECT 1 FROM pay_events WHERE id = ?", (key,)).fetchone() is not None:
        return {"new": False, "outcome": "replayed", "note": "seen before", "pay": None}
    paying = by_provider_ref(conn, event.ref) if event.ref else None
    conn.execute("INSERT INTO pay_events (id, provider, type, pay_session_id, amount_minor, body, received, outcome)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?, 'received')", (key, provider, event.type,
                                                               paying and paying["id"], event.amount_minor, body,
                                                               now_iso()))
    outcome, note = "applied", None
    if event.kind == "paid":
        if paying is None:
            outcome, note = "unresolved", "no pay session has this payment"
        elif event.currency != money.currency or not event.amount_minor or event.amount_minor <= 0:
            outcome, note = "unresolved", f"paid {event.amount_minor} {event.currency}: not an amount in {money.currency}"
        elif paying["state"] != "paying":
            outcome, note = "unresolved", f"the pay session was {paying['state']} when the payment came"
        else:
            paying = paid(conn, paying, amount_minor=event.amount_minor,
                          payment_ref=event.payment_id or event.id, money=money, start_timeout=start_timeout)
    elif event.kind in ("expired", "failed") and paying is not None and paying["state"] == "paying":
        paying = expire(conn, paying["id"], "the payment failed" if event.kind == "failed"
                        else "the QR code ended without a payment")
    else:
        outcome, note = "ignored", "nothing waits for this event"
    conn.execute("UPDATE pay_events SET outcome = ?, note = ? WHERE id = ?", (outcome, note, key))
    _event_record(conn, key, outcome, note)
    return {"new": True, "outcome": outcome, "note": note, "pay": paying}


def _event_record(conn: sqlite3.Connection, key: str, outcome: str, note: str | None) -> None:
    """The provider's event, and what became of it, for the cloud (a `payment` record of its own)."""
    row = conn.execute("SELECT provider, type, pay_session_id, amount_minor, received FROM pay_events WHERE id = ?",
                       (key,)).fetchone()
    outbox.add(conn, "payment", f"payment-event:{key}:{outcome}", {
        "event_id": key, "provider": row[0], "type": row[1], "pay_id": row[2], "amount_minor": row[3],
        "received": row[4], "outcome": outcome, "note": note, "at": now_iso()})


def events(conn: sqlite3.Connection, *, unresolved: bool = False, limit: int = 200) -> list[dict]:
    """The providers' events, newest first (only those the owner must resolve, with `unresolved`)."""
    cur = conn.execute("SELECT e.id, e.provider, e.type, e.pay_session_id, e.amount_minor, e.received, e.outcome,"
                       " e.note, p.code, p.phone FROM pay_events e LEFT JOIN pay_sessions p ON p.id = e.pay_session_id"
                       + (" WHERE e.outcome = 'unresolved'" if unresolved else "") + " ORDER BY e.received DESC"
                       " LIMIT ?", (limit,))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def credit_unresolved(conn: sqlite3.Connection, event_id: str, *, currency: str, account_id: int | None = None) \
        -> dict:
    """The owner resolves a payment nothing was waiting for: its amount goes to `account_id`, or to the
    wallet of the pay session's phone number. Once: the event is then `resolved`."""
    row = conn.execute("SELECT outcome, amount_minor, pay_session_id, type, body FROM pay_events WHERE id = ?",
                       (event_id,)).fetchone()
    if row is None or row[0] != "unresolved":
        raise PayError("pay.err.no_event", f"no unresolved payment {event_id}")
    amount, pay_id = row[1], row[2]
    if not amount or amount <= 0:
        raise PayError("pay.err.no_event", f"payment {event_id} has no amount to credit")
    paying = get(conn, pay_id) if pay_id is not None else None
    if account_id is None:
        if paying is None or not paying["phone"]:
            raise PayError("pay.err.no_event", "this payment has no pay session: name the account to credit")
        account_id = paying["account_id"] or wallet_for_phone(conn, paying["phone"], paying["id"])
    payment_id = (json.loads(row[4]).get("data", {}).get("attributes", {}).get("data") or {}).get("id") or event_id
    ledger.post(conn, account_id, "topup", amount, key=f"pay:{payment_id}", currency=currency, pay_id=pay_id,
                note=f"payment {payment_id}, resolved by the owner")
    conn.execute("UPDATE pay_events SET outcome = 'resolved', note = ? WHERE id = ?",
                 (f"credited to account {account_id}", event_id))
    _event_record(conn, event_id, "resolved", f"credited to account {account_id}")
    return {"account_id": account_id, "amount_minor": amount}


def may_set_pin(conn: sqlite3.Connection, pay: dict) -> bool:
    """Whether the driver of `pay` may give its wallet a PIN here: only a wallet this very pay session made,
    and only while it has none (nobody else's account can be taken over by typing its phone number)."""
    if pay["account_id"] is None or pay["method"] != "qrph":
        return False
    row = conn.execute("SELECT made_by_pay, pin_hash FROM accounts WHERE id = ?", (pay["account_id"],)).fetchone()
    return row is not None and row[0] == pay["id"] and not row[1]
