"""Billing of the site's own cards: who may start, the hold at start, the running cost, settlement at stop.

Functions on a `sqlite3.Connection`, each run in one store transaction (so a hold is committed before the
charger hears "Accepted", and a session's capture is in the same commit as its stop). The local controller
asks for them through its `Ask` action; the CLI and cloud_sync call the same functions.

Decisions for a card the edge knows (`decide`):
    blocked / lost card or blocked account     → Blocked
    past the card's validity end               → Expired (answers carry the end: expiryDate / cacheExpiryDateTime)
    personal card outside its chargers         → Invalid (1.6) / NotAtThisLocation (2.0.1)
    a master pass                              → Invalid at start; its Authorize: `groups.master_authorize`
    Authorize while the same user charges here → Accepted (a tap with any of the user's cards stops it)
    card already in an active session          → ConcurrentTx (1.6: a start only; its Authorize is Accepted)
    commercial, available < min_start_balance  → Blocked (1.6) / NoCredit (2.0.1)
    otherwise Accepted; commercial: hold min(available, max_hold) at start.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge.billing import cards, groups, ledger, pay
from edge.billing.tariff import Tariff, TariffError, build_tariff, session_cost, utc_key
from edge.clock import now_iso, parse_ts
from edge.config import Config, ConfigError
from edge.money import MoneyError, format_minor, to_minor
from edge.store import ops, outbox, reads


@dataclass
class BillingSettings:
    currency: str = "PHP"
    exponent: int = 2
    min_start_balance: int = 5000  # minor units
    max_hold: int = 100000
    overdraft_limit: int = 0
    authority: str = "edge"  # or "upstream"
    tariff: Tariff = field(default_factory=Tariff)


SETTINGS = BillingSettings()


def settings_from_config(cfg: Config) -> BillingSettings:
    """The checked billing settings and tariff in minor units (raises `ConfigError` naming the key)."""
    b = cfg.billing
    exp = b.currency_exponent

    def amount(key: str, value: str) -> int:
        try:
            return to_minor(value, exp)
        except MoneyError as e:
            raise ConfigError(f"{key}: {e}") from None

    try:
        ZoneInfo(cfg.site.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"site.timezone: unknown time zone {cfg.site.timezone!r}") from None
    try:
        tariff = build_tariff(dataclasses.asdict(cfg.tariff), exp, cfg.site.timezone, prefix="tariff")
    except TariffError as e:
        raise ConfigError(str(e)) from None
    return BillingSettings(currency=b.currency, exponent=exp,
                           min_start_balance=amount("billing.min_start_balance", b.min_start_balance),
                           max_hold=amount("billing.max_hold", b.max_hold),
                           overdraft_limit=amount("billing.overdraft_limit", b.overdraft_limit),
                           authority=b.authority, tariff=tariff)


def configure(settings: BillingSettings) -> None:
    """Set the site's billing settings (the daemon and the CLI do this once at start)."""
    global SETTINGS
    SETTINGS = settings


def _money(minor: int) -> str:
    """An amount as the owner and the driver read it: '20.00 PHP'."""
    return format_minor(minor, SETTINGS.exponent, SETTINGS.currency)


def _status(version: str, v16: str, v201: str) -> str:
    return v16 if version == "1.6" else v201


def _open_session_of(conn: sqlite3.Connection, uid: str, *, charger_id: str, tx_key: str | None) -> int | None:
    row = conn.execute("SELECT id FROM transactions WHERE id_tag = ? AND stopped_at IS NULL"
                       " AND coalesce(auth_status, 'Accepted') = 'Accepted'"
                       " AND NOT (charger_id = ? AND tx_key IS ?) LIMIT 1", (uid, charger_id, tx_key)).fetchone()
    return None if row is None else row[0]


MASTER_STARTS_NONE = "a master pass stops sessions; it does not start one"


def check(conn: sqlite3.Connection, card: cards.Card, *, charger_id: str, version: str,
          tx_key: str | None = None, stopping: bool = False) -> tuple[str, str]:
    """(status, reason) for `card` at `charger_id`, without holding anything. `stopping`: an Authorize while
    a card of the same user charges there (the tap may stop it: neither balance nor limits refuse it)."""
    s = SETTINGS
    if card.status != "active" or card.account_blocked:
        return "Blocked", f"card is {card.status}" if card.status != "active" else "account is blocked"
    if card.expired():
        return "Expired", f"card expired at {card.expires}"
    if card.master:
        return "Invalid", MASTER_STARTS_NONE
    if stopping:
        return "Accepted", "a card of the same user is charging here (a tap stops it)"
    if card.kind == "personal" and not card.allowed_at(charger_id):
        return _status(version, "Invalid", "NotAtThisLocation"), f"card may not be used at {charger_id}"
    if _open_session_of(conn, card.uid, charger_id=charger_id, tx_key=tx_key) is not None:
        return "ConcurrentTx", "card is already in a session"
    if card.kind == "commercial":
        avail = ledger.available(conn, card.account_id)
        if avail < s.min_start_balance:
            return _status(version, "Blocked", "NoCredit"), \
                f"balance {_money(avail)} below the minimum {_money(s.min_start_balance)} to start"
    return "Accepted", ""


def decide(conn: sqlite3.Connection, *, uid: str, charger_id: str, version: str, kind: str,
           tx: dict | None = None, upstream_status: str | None = None) -> dict:
    """The edge's decision for a card it knows; for kind 'start', also the session row and its hold.

    `tx` is the session's start record (the fields of `edge.controller.records.TxStart`). With
    `upstream_status` (authority "upstream": upstream has decided), the edge records and holds but does not
    overrule. A start seen twice (a charger's retry) returns the first one's decision and id.
    """
    if pay.is_pay_tag(uid):
        return _decide_pay(conn, uid=uid, charger_id=charger_id, version=version, kind=kind, tx=tx)
    card = cards.get_card(conn, uid)
    if card is None:
        return {"known": False}
    if tx is not None:
        tx = {**tx, "id_tag": card.uid}  # the normalised UID, whatever case or separators the charger sent
    out: dict = {"known": True, "kind": card.kind, "account_id": card.account_id, "name": card.name,
                 "expires": card.expires, "group": card.group}
    if kind != "start":
        out["status"], out["reason"] = check(conn, card, charger_id=charger_id, version=version,
                                             stopping=groups.user_charging_at(conn, card.account_id, charger_id))
        if out["reason"] == MASTER_STARTS_NONE:
            out.update(groups.master_authorize(conn, card, charger_id, version))
        if out["status"] == "ConcurrentTx" and version == "1.6":  # 1.6 §7.2: only for a StartTransaction.req;
            # an Authorize gets the card's own status (the charger may then stop: how a driver stops by a tap)
            out["status"], out["reason"] = "Accepted", "card is in a session (a tap may stop it)"
        return out
    assert tx is not None
    same = _same_start(conn, charger_id, tx)
    if same is not None:
        return {**out, **same, "repeat": True}
    status, reason = check(conn, card, charger_id=charger_id, version=version, tx_key=tx.get("tx_key"))
    if upstream_status is not None:
        status, reason = upstream_status, "decided upstream"
    elif status == "Accepted":
        status, reason = _reserved(conn, card.uid, charger_id, version, tx, status, reason)
    out.update(status=status, reason=reason, hold_minor=0)
    session_id = _record_start(conn, tx, card if status == "Accepted" else None, status)
    out["tx_id"] = session_id
    if status == "Accepted":
        cards.touch(conn, uid)
        if card.kind == "commercial":
            hold = max(0, min(ledger.available(conn, card.account_id), SETTINGS.max_hold))
            ledger.post(conn, card.account_id, "hold", hold, key=f"session:{session_id}:hold",
                        currency=SETTINGS.currency, session_id=session_id)
            conn.execute("UPDATE transactions SET hold_minor = ? WHERE id = ?", (hold, session_id))
            out["hold_minor"] = hold
    return out


def _decide_pay(conn: sqlite3.Connection, *, uid: str, charger_id: str, version: str, kind: str,
                tx: dict | None) -> dict:
    """A start (or Authorize) with a pay session's id tag: accepted while that pay session waits for its
    charger to start; the start takes over the pay session's hold (`edge.billing.pay.started`)."""
    paying = pay.for_start(conn, uid, charger_id)
    account_id = paying and paying["account_id"]
    out: dict = {"known": True, "kind": "commercial", "account_id": account_id, "name": "QR pay", "hold_minor": 0,
                 "group": cards.group_of(account_id) if account_id else None}
    status, reason = ("Accepted", "") if paying is not None else \
        ("Invalid", "no pay session waits for this charger to start")
    if kind != "start":
        return {**out, "status": status, "reason": reason}
    assert tx is not None
    same = _same_start(conn, charger_id, tx)
    if same is not None:
        return {**out, **same, "repeat": True}
    if paying is not None and paying["state"] == "charging":
        status, reason = "ConcurrentTx", "this payment has started a session already"
    card = None if status != "Accepted" or paying is None else cards.Card(
        uid, paying["account_id"], "commercial", "active", None, "QR pay", False)
    session_id = _record_start(conn, tx, card, status)
    out.update(status=status, reason=reason, tx_id=session_id)
    if card is not None and paying is not None:
        out["hold_minor"] = pay.started(conn, paying, session_id, SETTINGS.currency)
        conn.execute("UPDATE transactions SET hold_minor = ? WHERE id = ?", (out["hold_minor"], session_id))
    return out


def _reserved(conn: sqlite3.Connection, uid: str, charger_id: str, version: str, tx: dict, status: str,
              reason: str) -> tuple[str, str]:
    """A connector reserved for another card refuses this one (1.6 has no status for it: Invalid; 2.0.1
    NotAtThisTime); the reserved card's start uses the reservation up."""
    connector = tx.get("evse_id") if version != "1.6" and tx.get("evse_id") else tx.get("connector_id")
    if not connector:
        return status, reason
    held = reads.reservation_at(conn, charger_id, int(connector), now_iso())
    if held is None:
        return status, reason
    if held["id_tag"] != uid:
        return ("Invalid" if version == "1.6" else "NotAtThisTime"), \
            f"connector {connector} is reserved for another card until {held['expires']}"
    conn.execute("UPDATE reservations SET status = 'used', updated = ? WHERE id = ?", (now_iso(), held["id"]))
    return status, reason


def _same_start(conn: sqlite3.Connection, charger_id: str, tx: dict) -> dict | None:
    if tx.get("version") == "1.6":
        row = conn.execute(
            "SELECT id, hold_minor, auth_status FROM transactions WHERE charger_id = ? AND ocpp_version = '1.6'"
            " AND connector_id IS ? AND id_tag IS ? AND meter_start IS ? AND started_at IS ? AND stopped_at IS NULL",
            (charger_id, tx.get("connector_id"), tx.get("id_tag"), tx.get("meter_start"),
             tx.get("started_at"))).fetchone()
    else:
        row = conn.execute("SELECT id, hold_minor, auth_status FROM transactions WHERE charger_id = ?"
                           " AND tx_key = ? AND auth_status IS NOT NULL", (charger_id, tx.get("tx_key"))).fetchone()
    if row is None or row[2] is None:
        return None
    return {"status": row[2], "reason": "the same start, seen again", "tx_id": row[0], "hold_minor": row[1] or 0}


def _record_start(conn: sqlite3.Connection, tx: dict, card: cards.Card | None, status: str) -> int:
    """Insert (1.6) or complete (2.0.1, the event may have come first) the session row; return its id."""
    existing = conn.execute("SELECT id FROM transactions WHERE charger_id = ? AND tx_key = ?",
                            (tx["charger_id"], tx["tx_key"])).fetchone()
    if existing is None:
        ops.tx_start(conn, tx)
        existing = conn.execute("SELECT id FROM transactions WHERE charger_id = ? AND tx_key = ?",
                                (tx["charger_id"], tx["tx_key"])).fetchone()
    session_id = int(existing[0])
    conn.execute("UPDATE transactions SET auth_status = ? WHERE id = ?", (status, session_id))
    if card is not None:
        conn.execute("UPDATE transactions SET account_id = ?, card_kind = ?, id_tag = ? WHERE id = ?",
                     (card.account_id, card.kind, card.uid, session_id))
    return session_id


_TARIFFS: dict[int, Tariff] = {}


def tariff_for(conn: sqlite3.Connection, started_at: str) -> Tariff:
    """The tariff in force when a session started: the cloud's latest replacement valid by then (`tariffs`),
    else the config file's."""
    when = parse_ts(started_at)
    if when is None:
        return SETTINGS.tariff
    row = conn.execute("SELECT id, body FROM tariffs WHERE valid_from <= ? ORDER BY valid_from DESC, id DESC"
                       " LIMIT 1", (utc_key(when),)).fetchone()
    if row is None:
        return SETTINGS.tariff
    if row[0] not in _TARIFFS:
        _TARIFFS[row[0]] = build_tariff(json.loads(row[1]), SETTINGS.exponent, SETTINGS.tariff.timezone)
    return _TARIFFS[row[0]]


def _readings(conn: sqlite3.Connection, charger_id: str, tx_key: str) -> list:
    return _as_readings(conn.execute(
        "SELECT timestamp, value, unit FROM meter_values WHERE charger_id = ? AND tx_key = ?"
        " AND measurand = 'Energy.Active.Import.Register' AND phase IS NULL", (charger_id, tx_key)))


def _rows_readings(rows: Sequence[dict]) -> list:
    return _as_readings((r["timestamp"], r["value"], r["unit"]) for r in rows
                        if r.get("measurand") == "Energy.Active.Import.Register" and r.get("phase") is None)


def _as_readings(rows: Iterable[tuple]) -> list:
    """(timestamp, value, unit) rows → [(datetime, Wh)], the unreadable left out."""
    out = []
    for ts, value, unit in rows:
        when = parse_ts(ts)
        try:
            wh = float(value) * (1000 if unit == "kWh" else 1)
        except (TypeError, ValueError):
            continue
        if when is not None:
            out.append((when, round(wh)))
    return out


def _cost(conn: sqlite3.Connection, row: sqlite3.Row | tuple, *, stop_ts: str | None, stop_wh: int | None,
          readings: list | None = None):
    _, charger_id, tx_key, meter_start, started_at = row[:5]
    start = parse_ts(started_at)
    stop = parse_ts(stop_ts)
    if start is None or stop is None or meter_start is None:
        return None
    if readings is None:
        readings = _readings(conn, charger_id, tx_key)
    if stop_wh is None:
        stop_wh = max([wh for _, wh in readings], default=meter_start)
    return session_cost(tariff_for(conn, started_at), start_ts=start, start_wh=meter_start, readings=readings, stop_ts=stop,
                        stop_wh=stop_wh)


def running(conn: sqlite3.Connection, *, charger_id: str, tx_key: str, pending: Sequence[dict] = (),
            mark: bool = True) -> dict:
    """The running cost of an open billed session and whether its hold is used up (→ the edge stops it, and
    with `mark` the session says why). `pending`: meter rows perhaps not committed yet (`observe.meter_rows`)."""
    row = conn.execute("SELECT id, charger_id, tx_key, meter_start, started_at, hold_minor, card_kind, billing_stop"
                       " FROM transactions WHERE charger_id = ? AND tx_key = ? AND stopped_at IS NULL",
                       (charger_id, tx_key)).fetchone()
    if row is None or row[6] != "commercial":
        return {"stop": False}
    readings = sorted(set(_readings(conn, charger_id, tx_key)) | set(_rows_readings(pending)))
    if not readings:
        return {"stop": False}
    latest_ts, latest_wh = max(readings)
    cost = _cost(conn, row, stop_ts=latest_ts.isoformat(), stop_wh=None, readings=readings)
    if cost is None:
        return {"stop": False}
    running_minor = cost.total_minor
    hold = row[5] or 0
    exhausted = running_minor >= hold and row[7] is None
    if exhausted and mark:
        conn.execute("UPDATE transactions SET billing_stop = ? WHERE id = ?",
                     (f"hold exhausted: cost {_money(running_minor)} reached the hold {_money(hold)}", row[0]))
    return {"stop": exhausted, "running_minor": running_minor, "hold_minor": hold, "tx_id": row[0],
            "meter_wh": latest_wh}


def open_sessions(conn: sqlite3.Connection) -> list[dict]:
    """Every session still running, with what it has drawn and cost so far (read only: the owner's live view;
    `running` is the edge's own check, which also marks a used-up hold)."""
    out = []
    for row in conn.execute("SELECT t.id, t.charger_id, t.tx_key, t.meter_start, t.started_at, t.connector_id,"
                            " t.id_tag, t.card_kind, a.name FROM transactions t LEFT JOIN accounts a"
                            " ON a.id = t.account_id WHERE t.stopped_at IS NULL ORDER BY t.id").fetchall():
        readings = _readings(conn, row[1], row[2])
        latest_ts, latest_wh = max(readings) if readings else (None, row[3])
        cost = _cost(conn, row[:5], stop_ts=latest_ts.isoformat(), stop_wh=None) \
            if latest_ts is not None and row[7] == "commercial" else None
        out.append({"id": row[0], "charger_id": row[1], "connector_id": row[5], "id_tag": row[6], "name": row[8],
                    "started_at": row[4], "energy_wh": max(0, (latest_wh or 0) - (row[3] or 0)),
                    "cost_minor": cost.total_minor if cost is not None else 0})
    return out


def breakdown(conn: sqlite3.Connection, session_id: int) -> dict | None:
    """A session's cost as the tariff made it up (energy, time, idle, fee), and its meter readings (for the
    owner's session page); None for a session with no start reading or no times. Read only."""
    row = conn.execute("SELECT id, charger_id, tx_key, meter_start, started_at, meter_stop, stopped_at"
                       " FROM transactions WHERE id = ?", (session_id,)).fetchone()
    if row is None:
        return None
    readings = _readings(conn, row[1], row[2])
    stop_ts = row[6] or (max(readings)[0].isoformat() if readings else None)
    cost = _cost(conn, row[:5], stop_ts=stop_ts, stop_wh=row[5])
    return {"readings": sorted(readings), "cost": None if cost is None else {**cost.as_dict(),
                                                                            "total_minor": cost.total_minor}}


def settle_session(conn: sqlite3.Connection, charger_id: str, tx_key: str) -> dict | None:
    """Bill a stopped session of a known card once: cost, capture, release; None if it is not billed here."""
    row = conn.execute(
        "SELECT id, charger_id, tx_key, meter_start, started_at, account_id, meter_stop, stopped_at, card_kind,"
        " captured_minor FROM transactions WHERE charger_id = ? AND tx_key = ?", (charger_id, tx_key)).fetchone()
    if row is None or row[5] is None or row[7] is None:
        return None
    session_id, account_id, meter_stop, stopped_at, card_kind, captured = row[0], row[5], row[6], row[7], \
        row[8], row[9]
    if captured is not None:
        return {"captured_minor": captured, "settled_now": False}
    cost = _cost(conn, row, stop_ts=stopped_at, stop_wh=meter_stop)
    detail = cost.as_dict() if cost is not None else {"cost_minor": 0, "note": "no usable meter readings"}
    cost_minor = detail["cost_minor"] if card_kind == "commercial" else 0
    if card_kind == "commercial":
        result = ledger.settle(conn, account_id=account_id, session_id=session_id, cost_minor=cost_minor,
                               overdraft_limit=SETTINGS.overdraft_limit, currency=SETTINGS.currency)
    else:
        result = {"captured_minor": 0, "released_minor": 0, "uncollected_minor": 0, "settled_now": True}
    conn.execute("UPDATE transactions SET cost_minor = ?, captured_minor = ?, uncollected_minor = ?,"
                 " cost_detail = ? WHERE id = ?", (cost_minor, result["captured_minor"],
                                                   result["uncollected_minor"], json.dumps(detail), session_id))
    return {**result, "cost_minor": cost_minor}


def running_session_of(conn: sqlite3.Connection, uid: str) -> dict | None:
    """The card's newest session still running anywhere: {id, tx_key, charger_id, connector_id (2.0.1: the
    EVSE)}, or None."""
    row = conn.execute("SELECT id, tx_key, charger_id, coalesce(evse_id, connector_id) FROM transactions"
                       " WHERE id_tag = ? AND stopped_at IS NULL ORDER BY id DESC LIMIT 1", (uid,)).fetchone()
    return None if row is None else {"id": row[0], "tx_key": row[1], "charger_id": row[2], "connector_id": row[3]}


def close_session(conn: sqlite3.Connection, charger_id: str, tx_key: str) -> None:
    """A session has stopped: bill it (once) and queue its record for the cloud, in the caller's transaction."""
    settle_session(conn, charger_id, tx_key)
    outbox.session_record(conn, charger_id, tx_key, SETTINGS.currency)
    row = conn.execute("SELECT id, account_id, receipt_code FROM transactions WHERE charger_id = ? AND tx_key = ?",
                       (charger_id, tx_key)).fetchone()
    if row is not None:
        finished = pay.finished(conn, row[0])
        if row[1] is not None and row[2] is None:  # the receipt's code: the pay session's, or one of its own
            conn.execute("UPDATE transactions SET receipt_code = ? WHERE id = ?",
                         (finished["code"] if finished else pay.new_code(), row[0]))


def reconcile(conn: sqlite3.Connection) -> int:
    """Close every stopped session of a known card that has not been billed (e.g. a crash in between)."""
    rows = conn.execute("SELECT charger_id, tx_key FROM transactions WHERE account_id IS NOT NULL"
                        " AND stopped_at IS NOT NULL AND captured_minor IS NULL").fetchall()
    for charger_id, tx_key in rows:
        close_session(conn, charger_id, tx_key)
    return len(rows)
