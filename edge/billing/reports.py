"""The site owner's reads and reports: cards, users (accounts), sessions, the daily charger report and the
per-user report. Read-only functions on a `sqlite3.Connection` returning plain dicts (JSON-ready: amounts in
integer minor units named `*_minor`, energy in integer Wh); the CLI and the web backend format them.

Daily report (`daily`), for one local day of the site's time zone (23 or 25 hours on DST days):
- `charging_seconds`: the part of each session's duration (charger timestamps) inside the day; a session still
  open counts up to now.
- `sessions`, `energy_wh`, `fees_minor` (the captured amounts), `uncollected_minor`: sessions that *ended*
  that day, so every session is counted on exactly one day, the day its money was captured.
- `open_sessions`: sessions not yet stopped that overlap the day.
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_right
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from edge.billing import cards, ledger
from edge.billing import sessions as billing
from edge.clock import parse_ts
from edge.money import normalise_uid


class ReportError(ValueError):
    """Bad input to a query (unknown user, bad date); the message says what is wrong."""


# -- dates -----------------------------------------------------------------------------------------------

def parse_day(text: str | None, tz: str, *, now: datetime | None = None) -> date:
    """'2024-03-10', 'today' or 'yesterday' (in the site's zone; None is today) → a date."""
    today = (now or datetime.now(UTC)).astimezone(ZoneInfo(tz)).date()
    if text is None or text.strip().lower() == "today":
        return today
    if text.strip().lower() == "yesterday":
        return today - timedelta(days=1)
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(f"not a date (YYYY-MM-DD): {text!r}") from None


def parse_since(text: str, tz: str) -> datetime:
    """A date (local midnight) or an ISO date-time (local if it has no offset) → an aware UTC datetime."""
    text = text.strip()
    try:
        if len(text) <= 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time(0), ZoneInfo(tz)).astimezone(UTC)
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(f"not a date (YYYY-MM-DD) or date-time (YYYY-MM-DDTHH:MM): {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(tz))
    return when.astimezone(UTC)


def day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """Local midnight to the next local midnight, in UTC."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    return start, end


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- rows ------------------------------------------------------------------------------------------------

def _rows(cur: sqlite3.Cursor) -> Iterator[dict]:
    names = [d[0] for d in cur.description]
    for row in cur:
        yield dict(zip(names, row, strict=True))


def _money(conn: sqlite3.Connection, account_id: int) -> dict:
    bal, hold = ledger.balance(conn, account_id), ledger.held(conn, account_id)
    return {"balance_minor": bal, "held_minor": hold, "available_minor": bal - hold}


_SESSION_COLS = ("t.id, t.charger_id, t.tx_key, t.ocpp_version, t.evse_id, t.connector_id, t.id_tag, t.account_id,"
                 " a.name, t.card_kind, t.started_at, t.stopped_at, t.stop_reason, t.meter_start, t.meter_stop,"
                 " t.energy_wh, t.hold_minor, t.cost_minor, t.captured_minor, t.uncollected_minor, t.billing_stop,"
                 " t.started_offline, t.upstream_tx_id, t.upstream_status")
_SESSIONS = f"SELECT {_SESSION_COLS} FROM transactions t LEFT JOIN accounts a ON a.id = t.account_id"
_ORDER = " ORDER BY t.started_at DESC, t.id DESC"  # no start time last (NULL sorts lowest), by the index
_UID_SQL = "upper(replace(replace(replace(t.id_tag, ':', ''), ' ', ''), '-', ''))"
# Sessions the cloud CSMS refused (proxy mode): a 1.6 start answered with transactionId 0, or any status but
# Accepted. They ran on the site; the cloud has their frames under upstream's id and must reconcile them.
_REFUSED_SQL = ("(t.upstream_status IS NOT NULL AND t.upstream_status != 'Accepted'"
                " OR t.ocpp_version = '1.6' AND t.upstream_tx_id = 0)")


def _session(row: dict) -> dict:
    start, stop = parse_ts(row["started_at"]), parse_ts(row["stopped_at"])
    row["open"] = row["stopped_at"] is None
    row["duration_seconds"] = (max(0, round((stop - start).total_seconds()))
                               if start is not None and stop is not None else None)
    row["started_offline"] = bool(row["started_offline"])
    row["upstream_refused"] = bool(row["upstream_status"] not in (None, "Accepted")
                                   or (row["ocpp_version"] == "1.6" and row["upstream_tx_id"] == 0))
    return row


def sessions(conn: sqlite3.Connection, *, charger_id: str | None = None, uid: str | None = None,
             account_id: int | None = None, since: datetime | None = None, limit: int | None = 100,
             upstream_refused: bool = False) -> list[dict]:
    """Sessions, newest first, filtered by charger, card (any spelling of the UID), account, start time and
    (`upstream_refused`) whether the cloud CSMS refused them; at most `limit` (None: all)."""
    if limit is not None and limit <= 0:
        return []
    where, args = [], []
    if charger_id is not None:
        where.append("t.charger_id = ?")
        args.append(charger_id)
    if uid is not None:
        uid = normalise_uid(uid)
        where.append(f"(t.id_tag = ? OR {_UID_SQL} = ?)")
        args += [uid, uid]
    if account_id is not None:
        where.append("t.account_id = ?")
        args.append(account_id)
    if upstream_refused:
        where.append(_REFUSED_SQL)
    if since is not None:  # a coarse text filter first; the exact comparison below parses the timestamps
        where.append("t.started_at >= ?")
        args.append((since - timedelta(days=1)).date().isoformat())
    sql = _SESSIONS + (" WHERE " + " AND ".join(where) if where else "") + _ORDER
    out: list[dict] = []
    for row in _rows(conn.execute(sql, args)):
        if since is not None:
            start = parse_ts(row["started_at"])
            if start is None or start < since:
                continue
        out.append(_session(row))
        if limit is not None and len(out) >= limit:
            break
    return out


def session(conn: sqlite3.Connection, session_id: int) -> dict | None:
    """One session, as `sessions` gives each, or None."""
    row = next(_rows(conn.execute(_SESSIONS + " WHERE t.id = ?", (session_id,))), None)
    return None if row is None else _session(row)


# -- cards and users -------------------------------------------------------------------------------------

def _card_dict(card: cards.Card) -> dict:
    return {"uid": card.uid, "kind": card.kind, "status": card.status, "chargers": card.chargers,
            "account_id": card.account_id, "name": card.name, "account_blocked": card.account_blocked,
            "last_used": card.last_used, "expires": card.expires, "expired": card.expired()}


def card_list(conn: sqlite3.Connection) -> dict:
    """Every card with its holder and its account's money."""
    money: dict[int, dict] = {}
    rows = []
    for card in cards.list_cards(conn):
        if card.account_id not in money:
            money[card.account_id] = _money(conn, card.account_id)
        rows.append({**_card_dict(card), **money[card.account_id]})
    return {"currency": billing.SETTINGS.currency, "cards": rows}


def card_detail(conn: sqlite3.Connection, uid: str, *, recent: int = 10) -> dict:
    """One card: its fields, its account (name, phone, email), the account's money and recent sessions."""
    uid = normalise_uid(uid)
    card = cards.get_card(conn, uid)
    if card is None:
        raise cards.CardError(f"unknown card {uid}")
    created, updated = conn.execute("SELECT created, updated FROM cards WHERE uid = ?", (uid,)).fetchone()
    account = cards.get_account(conn, card.account_id)
    assert account is not None
    account["blocked"] = bool(account["blocked"])
    return {**_card_dict(card), "created": created, "updated": updated, "account": account,
            **_money(conn, card.account_id), "currency": billing.SETTINGS.currency,
            "recent_sessions": sessions(conn, uid=uid, limit=recent)}


def _account_or_fail(conn: sqlite3.Connection, account_id: int) -> dict:
    account = cards.get_account(conn, account_id)
    if account is None:
        raise ReportError(f"unknown user {account_id}")
    account["blocked"] = bool(account["blocked"])
    return account


def _account_cards(conn: sqlite3.Connection, account_id: int) -> list[dict]:
    return [_card_dict(c) for c in cards.list_cards(conn) if c.account_id == account_id]


def user_list(conn: sqlite3.Connection) -> dict:
    """Every account with its number of cards and its money."""
    cur = conn.execute("SELECT a.id, a.name, a.phone, a.email, a.created, a.blocked,"
                       " (SELECT count(*) FROM cards c WHERE c.account_id = a.id) AS cards"
                       " FROM accounts a ORDER BY a.name, a.id")
    rows = []
    for row in _rows(cur):
        row["blocked"] = bool(row["blocked"])
        rows.append({**row, **_money(conn, row["id"])})
    return {"currency": billing.SETTINGS.currency, "users": rows}


def user_detail(conn: sqlite3.Connection, account_id: int, *, recent: int = 10) -> dict:
    """One account: contact, all its cards, its money and recent sessions."""
    account = _account_or_fail(conn, account_id)
    return {**account, "cards": _account_cards(conn, account_id), **_money(conn, account_id),
            "currency": billing.SETTINGS.currency,
            "recent_sessions": sessions(conn, account_id=account_id, limit=recent)}


def balance_history(conn: sqlite3.Connection, account_id: int) -> list[dict]:
    """Every ledger entry of the account, oldest first, with its effect on the balance and the balance after.

    Holds and releases are listed (they change what is available, not the balance): `delta_minor` 0.
    """
    running = 0
    out = []
    for entry in ledger.entries(conn, account_id, limit=-1):  # SQLite: LIMIT -1 is no limit
        delta = ledger.POSTED_SIGN.get(entry["kind"], 0) * entry["amount_minor"]
        running += delta
        out.append({**entry, "delta_minor": delta, "balance_minor": running})
    return out


def user_report(conn: sqlite3.Connection, account_id: int) -> dict:
    """An account's consumption and money: all its sessions, totals, balance and balance history."""
    account = _account_or_fail(conn, account_id)
    rows = sessions(conn, account_id=account_id, limit=None)
    totals = {"sessions": len(rows), "energy_wh": sum(r["energy_wh"] or 0 for r in rows if not r["open"]),
              "spend_minor": sum(r["captured_minor"] or 0 for r in rows),
              "uncollected_minor": sum(r["uncollected_minor"] or 0 for r in rows)}
    return {"account": account, "cards": _account_cards(conn, account_id), **_money(conn, account_id),
            "currency": billing.SETTINGS.currency, "totals": totals, "sessions": rows,
            "history": balance_history(conn, account_id)}


# -- the daily charger report ----------------------------------------------------------------------------

def _zero(charger_id: str | None = None) -> dict:
    row = {"sessions": 0, "open_sessions": 0, "charging_seconds": 0, "energy_wh": 0, "fees_minor": 0,
           "uncollected_minor": 0}
    return row if charger_id is None else {"charger_id": charger_id, **row}


def _span(started_at: str | None, stopped_at: str | None) -> tuple[datetime | None, datetime | None] | None:
    """A session's start and stop, parsed; None for an unreadable stop time (nothing can be said of it)."""
    start, stop = parse_ts(started_at), parse_ts(stopped_at)
    return None if stopped_at is not None and stop is None else (start, stop)


def _add(row: dict, start: datetime | None, stop: datetime | None, energy: int | None, captured: int | None,
         uncollected: int | None, lo: datetime, hi: datetime, now: datetime) -> bool:
    """Count one session (its `_span`) into a day's `row` (the day from `lo` to `hi`): its charging time within
    the day, and, if it ended that day, it, its energy and its fees. False if it has no part in that day."""
    end = stop if stop is not None else now
    seconds = (min(end, hi) - max(start, lo)).total_seconds() if start is not None else 0.0
    ended_today = stop is not None and lo <= stop < hi
    if seconds <= 0 and not ended_today:
        return False
    row["charging_seconds"] += max(0.0, seconds)
    if stop is None:
        row["open_sessions"] += 1
    elif ended_today:
        row["sessions"] += 1
        row["energy_wh"] += energy or 0
        row["fees_minor"] += captured or 0
        row["uncollected_minor"] += uncollected or 0
    return True


# the sessions that may touch a span: stopped after its start (or still open) and started before its end; by the
# stop time's index (`+` keeps the planner off the start time's, which would walk every older session)
_DAY_SQL = ("SELECT charger_id, started_at, stopped_at, energy_wh, captured_minor, uncollected_minor FROM transactions"
            " WHERE (+started_at IS NULL OR +started_at < ?) AND (stopped_at IS NULL OR stopped_at >= ?)")


def _touching(conn: sqlite3.Connection, lo: datetime, hi: datetime, charger_id: str | None = None) -> sqlite3.Cursor:
    """The sessions (of one charger) that may touch `lo`..`hi`: the text comparison is coarse, a day wider
    either side; `_add` counts exactly."""
    sql, args = _DAY_SQL, [(hi + timedelta(days=1)).date().isoformat(), (lo - timedelta(days=1)).date().isoformat()]
    if charger_id is not None:
        sql, args = sql + " AND charger_id = ?", [*args, charger_id]
    return conn.execute(sql, args)


def charger_days(conn: sqlite3.Connection, charger_id: str, first: date, last: date, tz: str, *,
                 now: datetime | None = None) -> list[dict]:
    """One charger's days from `first` to `last` (local days in `tz`), oldest first: each day's charging
    hours, sessions, energy and fees, counted as `daily` counts them."""
    if last < first:
        raise ReportError(f"the range ends ({last}) before it starts ({first})")
    if (last - first).days > 366:
        raise ReportError("a range is at most a year")
    now = now or datetime.now(UTC)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    bounds = [day_bounds(d, tz) for d in days]
    rows = [{"date": d.isoformat(), **_zero()} for d in days]
    lo, hi = bounds[0][0], bounds[-1][1]
    lows = [b[0] for b in bounds]
    for _, started_at, stopped_at, energy, captured, uncollected in _touching(conn, lo, hi, charger_id):
        span = _span(started_at, stopped_at)
        if span is None:
            continue
        start, stop = span
        end = stop if stop is not None else now
        # only the days it can touch: from the day of its start (or end) to the day of its end
        a, b = bisect_right(lows, start or end) - 1, bisect_right(lows, end) - 1
        for i in range(max(0, min(a, b)), min(len(days) - 1, max(a, b)) + 1):
            _add(rows[i], start, stop, energy, captured, uncollected, *bounds[i], now)
    for row in rows:
        row["charging_seconds"] = round(row["charging_seconds"])
        row["charging_hours"] = round(row["charging_seconds"] / 3600, 3)
    return rows


def user_totals(conn: sqlite3.Connection, lo: datetime, hi: datetime) -> list[dict]:
    """Per user, the sessions that ended from `lo` to `hi` (as the daily report counts them): how many, their
    energy and what was paid; the biggest spender first."""
    rows = conn.execute(
        "SELECT t.account_id, a.name, count(*), coalesce(sum(t.energy_wh), 0), coalesce(sum(t.captured_minor), 0)"
        " FROM transactions t LEFT JOIN accounts a ON a.id = t.account_id"
        " WHERE t.stopped_at >= ? AND t.stopped_at < ? AND t.account_id IS NOT NULL GROUP BY t.account_id",
        (iso(lo), iso(hi))).fetchall()
    out = [{"id": account, "name": name or "—", "sessions": n, "energy_wh": wh, "spend_minor": spend}
           for account, name, n, wh, spend in rows]
    return sorted(out, key=lambda u: (-u["spend_minor"], u["name"]))


def daily(conn: sqlite3.Connection, day: date, tz: str, *, now: datetime | None = None) -> dict:
    """Per charger, for the local day `day` in zone `tz`: charging time, energy and fees (see the module doc)."""
    lo, hi = day_bounds(day, tz)
    now = now or datetime.now(UTC)
    per: dict[str, dict] = {cid: _zero(cid) for (cid,) in conn.execute("SELECT id FROM chargers")}
    for charger_id, started_at, stopped_at, energy, captured, uncollected in _touching(conn, lo, hi):
        row = per.get(charger_id) or _zero(charger_id)
        span = _span(started_at, stopped_at)
        if span is not None and _add(row, *span, energy, captured, uncollected, lo, hi, now):
            per[charger_id] = row
    rows = [per[cid] for cid in sorted(per)]
    totals = _zero()
    for row in rows:
        row["charging_seconds"] = round(row["charging_seconds"])
        for key in totals:
            totals[key] += row[key]
    for row in [*rows, totals]:
        row["charging_hours"] = round(row["charging_seconds"] / 3600, 3)
    return {"date": day.isoformat(), "timezone": tz, "from": iso(lo), "to": iso(hi),
            "currency": billing.SETTINGS.currency, "chargers": rows, "totals": {"chargers": len(rows), **totals}}
