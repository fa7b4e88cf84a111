"""The cloud's commands (`sitekeeper/<site>/cmd/<kind>`), applied once through the owner's functions.

    topup   {"id", "uid", "amount_minor", "note"}
    card    {"id", "action": "add" | "update" | "block", "uid", "kind", "name", "phone", "email",
             "chargers", "status", "expires" (ISO 8601 time or date in the site's zone; null: no end)}
    tariff  {"id", "valid_from", "tariff": {"per_kwh": "12.50", ..., "bands": [...]}}

`apply(conn, kind, raw)` runs in the caller's transaction: the change and the `applied_commands` row commit
together, so a command delivered twice (the broker's at-least-once, a restart in between) is applied once and
answered the same way both times; the same id with other content (another amount, another card) is refused
with `ok: false` and changes nothing. A malformed or invalid command changes nothing and is answered
`ok: false` with the reason (also remembered, so its answer does not change either).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3

from edge.billing import cards, owner
from edge.billing import sessions as billing
from edge.billing.tariff import TariffError
from edge.clock import parse_ts
from edge.money import MoneyError, UidError
from edge.store import applied

KINDS = ("topup", "card", "tariff")


class CommandError(ValueError):
    """A command that cannot be applied; the message is sent back as `error`."""


def parse(raw: bytes) -> tuple[str | None, dict]:
    """(id, command) from a payload; raises CommandError (with the id when it could be read)."""
    try:
        cmd = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise CommandError("payload is not JSON") from None
    if not isinstance(cmd, dict):
        raise CommandError("payload is not a JSON object")
    cmd_id = cmd.get("id")
    if not isinstance(cmd_id, str) or not cmd_id or len(cmd_id) > 100 or any(c in cmd_id for c in "/+#"):
        raise CommandError("id must be a string of 1 to 100 characters without '/', '+' or '#'")
    return cmd_id, cmd


def _str(cmd: dict, key: str, required: bool = True) -> str | None:
    value = cmd.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise CommandError(f"{key} must be a non-empty string")
    return value


def _topup(conn: sqlite3.Connection, cmd_id: str, cmd: dict) -> dict:
    amount = cmd.get("amount_minor")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise CommandError("amount_minor must be a positive integer")
    note = cmd.get("note")
    if note is not None and not isinstance(note, str):
        raise CommandError("note must be a string")
    result = owner.topup(conn, _str(cmd, "uid") or "", amount, currency=billing.SETTINGS.currency,
                         key=f"cmd:{cmd_id}", note=note)
    return {"balance_minor": result["balance_minor"], "available_minor": result["available_minor"]}


def _card(conn: sqlite3.Connection, cmd: dict) -> dict:
    action = cmd.get("action")
    uid = _str(cmd, "uid") or ""
    chargers = cmd.get("chargers")
    if chargers is not None and (not isinstance(chargers, list) or not all(isinstance(c, str) for c in chargers)):
        raise CommandError("chargers must be a list of charger ids")
    expires = cmd.get("expires")
    if expires is not None and not isinstance(expires, str):
        raise CommandError("expires must be an ISO 8601 time, a date, or null")
    expires = owner.parse_expiry(expires, billing.SETTINGS.tariff.timezone)
    if action == "add":
        card = owner.register_card(conn, uid, _str(cmd, "kind") or "", name=_str(cmd, "name"),
                                   phone=_str(cmd, "phone", False), email=_str(cmd, "email", False),
                                   chargers=chargers or None, expires=expires)
    elif action == "update":
        changes: dict = {}
        if "status" in cmd:
            changes["status"] = _str(cmd, "status")
        if "kind" in cmd:
            changes["kind"] = _str(cmd, "kind")
        if "chargers" in cmd:
            changes["chargers"] = chargers or None
        if "expires" in cmd:
            changes["expires"] = expires
        if not changes:
            raise CommandError("update needs status, kind, chargers or expires")
        card = cards.update_card(conn, uid, **changes)
    elif action == "block":
        card = owner.set_card_status(conn, uid, "blocked")
    else:
        raise CommandError("action must be add, update or block")
    return {"uid": card.uid, "status": card.status, "kind": card.kind, "expires": card.expires}


def _tariff(conn: sqlite3.Connection, cmd_id: str, cmd: dict) -> dict:
    when = parse_ts(_str(cmd, "valid_from"))
    if when is None:
        raise CommandError("valid_from must be an ISO-8601 time")
    spec = cmd.get("tariff")
    if not isinstance(spec, dict):
        raise CommandError("tariff must be an object")
    try:
        stored = owner.add_tariff(conn, when, spec, source=cmd_id, exponent=billing.SETTINGS.exponent,
                                  timezone=billing.SETTINGS.tariff.timezone)
    except TariffError as e:
        raise CommandError(str(e)) from None
    return {"valid_from": stored}


def apply(conn: sqlite3.Connection, kind: str, raw: bytes) -> dict:
    """Apply one command once; return the answer for `cmd_ack/<id>` ({"id", "ok", "error", ...})."""
    try:
        cmd_id, cmd = parse(raw)
    except CommandError as e:
        return {"id": None, "ok": False, "error": str(e)}
    digest = _digest(kind, cmd)
    done = applied.answer_of(conn, cmd_id)
    if done is not None:
        if done["digest"] not in (None, digest):
            return {"id": cmd_id, "ok": False, "repeat": True, "error": (
                f"command id {cmd_id} was used at {done['applied_at']} for a different command; this one was not"
                " applied (send a new command with a new id)")}
        return {"id": cmd_id, "ok": done["ok"], "error": done["error"], "repeat": True}
    try:
        with applied.savepoint(conn):
            if kind == "topup":
                result = _topup(conn, cmd_id, cmd)
            elif kind == "card":
                result = _card(conn, cmd)
            elif kind == "tariff":
                result = _tariff(conn, cmd_id, cmd)
            else:
                raise CommandError(f"unknown command kind {kind!r} (known: {', '.join(KINDS)})")
        answer = {"id": cmd_id, "ok": True, "error": None, **result}
    except (CommandError, owner.OwnerError, cards.CardError, MoneyError, UidError, ValueError) as e:
        answer = {"id": cmd_id, "ok": False, "error": str(e)}
    applied.remember(conn, cmd_id, kind, answer["ok"], answer["error"], digest)
    return answer


def _digest(kind: str, cmd: dict) -> str:
    """What a command says, whatever the order of its keys: the same id must always say the same."""
    return hashlib.sha256(json.dumps([kind, cmd], sort_keys=True, separators=(",", ":")).encode()).hexdigest()
