"""The site owner's `sitekeeper` commands: cards, top-ups, users, sessions and reports.

A thin face over `edge.billing.owner` (changes) and `edge.billing.reports` (reads); the web backend calls the same functions.

    sitekeeper cards add UID --kind personal|commercial (--name NAME [--phone P] [--email E] | --account ID)
                         [--chargers A,B]
                         [--expires DATE]
    sitekeeper cards update UID [--expires DATE|never] [--chargers A,B|all]
    sitekeeper cards list | show UID | block UID | unblock UID | lost UID
    sitekeeper cards pin UID            (the PIN of the card's account, for paying at /pay; read from stdin
                                         when it is not a terminal)
    sitekeeper topup UID AMOUNT [--note N] [--key K]
    sitekeeper users list | show ID
    sitekeeper sessions list [--charger C] [--card UID] [--since DATE] [--limit N] [--upstream-refused]
    sitekeeper report daily [--date D]
    sitekeeper report user ID [--history]

Every command takes `--config PATH` and `--json` (amounts in integer minor units, `*_minor`, with the
`currency`); lists and reports also take `--csv` (amounts in major units, times in the site's zone, for
spreadsheets). Card UIDs are shown in full (this is the owner's tool) and accepted in any case, with spaces,
colons or dashes. Bad input prints one line on stderr, writes nothing and exits 2.
"""

from __future__ import annotations

import argparse
import getpass
import sqlite3
import sys
from collections.abc import Callable
from typing import Any

from edge.billing import cards, ledger, owner, pay, reports
from edge.cli.common import Site, count, fmt_duration, fmt_kwh, print_csv, print_json, print_table
from edge.money import MoneyError, UidError, normalise_uid
from edge.security import hash_secret

BAD_INPUT = (cards.CardError, ledger.LedgerError, MoneyError, UidError, owner.OwnerError, reports.ReportError,
             pay.PayError)

Handler = Callable[[argparse.Namespace], int]


# -- cards -----------------------------------------------------------------------------------------------

def _print_card(site: Site, d: dict) -> None:
    acc = d["account"]
    contact = ", ".join(x for x in (acc.get("phone"), acc.get("email")) if x) or "no contact"
    cur = d["currency"]
    print(f"Card       {d['uid']} ({d['kind']}, {d['status']})")
    print(f"User       {acc['name']} (user {acc['id']}{', blocked' if acc['blocked'] else ''}): {contact}")
    print(f"Balance    {site.amount(d['balance_minor'])} {cur} (available {site.amount(d['available_minor'])} {cur},"
          f" held {site.amount(d['held_minor'])} {cur})")
    print(f"Chargers   {', '.join(d['chargers']) if d['chargers'] else 'all'}")
    print(f"Valid      {'until ' + site.when(d['expires']) if d.get('expires') else 'no end'}"
          f"{' (EXPIRED)' if d.get('expired') else ''}")
    print(f"Last used  {site.when(d['last_used'])}")
    _print_sessions(site, d["recent_sessions"], title="Recent sessions")


def cmd_cards_add(args: argparse.Namespace) -> int:
    site = Site(args)
    if args.last_tap == (args.uid is not None):
        raise owner.OwnerError("give a UID or --last-tap (the newest unknown card tapped), not both or neither")
    if args.last_tap:
        newest = site.read(cards.last_unknown)
        if newest is None:
            raise owner.OwnerError("no unknown card has been tapped lately: tap it, then try again")
        uid = newest["uid"]
    else:
        uid = normalise_uid(args.uid)
    chargers = owner.parse_chargers(args.chargers)
    if args.account is None and not (args.name and args.name.strip()):
        raise owner.OwnerError("a new card needs --name (or --account ID to add it to an existing user)")
    expires = owner.parse_expiry(args.expires, site.tz)
    site.write(lambda conn: owner.register_card(conn, uid, args.kind, name=args.name, phone=args.phone,
                                                email=args.email, chargers=chargers, account_id=args.account,
                                                expires=expires))
    d = site.read(lambda conn: reports.card_detail(conn, uid))
    if args.json:
        print_json(d)
    else:
        print(f"added {d['kind']} card {uid} for {d['name']} (user {d['account_id']})")
    return 0


def cmd_cards_unknown(args: argparse.Namespace) -> int:
    site = Site(args)
    rows = site.read(cards.unknown)
    if args.json:
        print_json({"unknown": rows})
    elif not rows:
        print("no unknown cards tapped lately")
    else:
        print(f"{'UID':<22}{'READER':<12}{'TAPS':>5}  LAST TAP")
        for r in rows:
            print(f"{r['uid']:<22}{r['reader']:<12}{r['taps']:>5}  {site.when(r['at'], seconds=True)}")
        print("enrol the newest with: sitekeeper cards add --last-tap --kind KIND --name NAME")
    return 0


def cmd_cards_list(args: argparse.Namespace) -> int:
    site = Site(args)
    d = site.read(reports.card_list)
    cur = d["currency"]
    if args.json:
        print_json(d)
    elif args.csv:
        print_csv(["uid", "kind", "status", "name", "account_id", "chargers", "balance", "available", "currency",
              "last_used"],
             [{**r, "chargers": ",".join(r["chargers"] or []), "balance": site.amount(r["balance_minor"]),
               "available": site.amount(r["available_minor"]), "currency": cur,
               "last_used": site.when(r["last_used"], seconds=True) if r["last_used"] else ""}
              for r in d["cards"]])
    elif not d["cards"]:
        print("no cards registered")
    else:
        print_table(["UID", "KIND", "STATUS", "USER", "CHARGERS", f"BALANCE {cur}", f"AVAILABLE {cur}", "LAST USED"],
               [[r["uid"], r["kind"], r["status"], f"{r['name']} ({r['account_id']})",
                 ",".join(r["chargers"]) if r["chargers"] else "all", site.amount(r["balance_minor"]),
                 site.amount(r["available_minor"]), site.when(r["last_used"])] for r in d["cards"]], right=(5, 6))
    return 0


def cmd_cards_update(args: argparse.Namespace) -> int:
    site = Site(args)
    uid = normalise_uid(args.uid)
    if args.expires is None and args.chargers is None:
        raise owner.OwnerError("nothing to change: give --expires DATE|never and/or --chargers A,B|all")
    chargers = False if args.chargers is None else None if args.chargers.strip().lower() == "all" \
        else owner.parse_chargers(args.chargers)
    expires = False if args.expires is None else owner.parse_expiry(args.expires, site.tz)
    site.write(lambda conn: cards.update_card(conn, uid, chargers=chargers, expires=expires))
    d = site.read(lambda conn: reports.card_detail(conn, uid))
    if args.json:
        print_json(d)
    else:
        _print_card(site, d)
    return 0


def cmd_cards_show(args: argparse.Namespace) -> int:
    site = Site(args)
    uid = normalise_uid(args.uid)
    d = site.read(lambda conn: reports.card_detail(conn, uid, recent=args.recent))
    if args.json:
        print_json(d)
    else:
        _print_card(site, d)
    return 0


def _status_command(status: str) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        site = Site(args)
        uid = normalise_uid(args.uid)

        def change(conn: sqlite3.Connection) -> str:
            before = cards.get_card(conn, uid)
            owner.set_card_status(conn, uid, status)  # an unknown card raises here; the same status writes nothing
            assert before is not None
            return before.status

        was = site.write(change)
        d = site.read(lambda conn: reports.card_detail(conn, uid))
        if args.json:
            print_json(d)
        elif was == status:
            print(f"card {uid} was already {status}")
        else:
            print(f"card {uid} ({d['name']}): {was} → {status}")
        return 0
    return handler


# -- top-up ----------------------------------------------------------------------------------------------

def cmd_topup(args: argparse.Namespace) -> int:
    site = Site(args)
    uid = normalise_uid(args.uid)
    amount = owner.parse_amount(args.amount, site.settings.exponent)
    cur = site.settings.currency
    r = site.write(lambda conn: owner.topup(conn, uid, amount, currency=cur, key=args.key, note=args.note))
    if r["card_status"] != "active":
        print(f"sitekeeper: note: card {uid} is {r['card_status']}; the money is on user {r['account_id']}'s"
              " account, for its active cards", file=sys.stderr)
    if args.json:
        print_json(r)
        return 0
    head = (f"topped up {site.amount(amount)} {cur}" if r["applied"]
            else f"already applied (key {args.key!r}): nothing changed")
    print(f"{head}; {r['name']} (user {r['account_id']}, card {uid}): balance {site.amount(r['balance_minor'])}"
          f" {cur}, available {site.amount(r['available_minor'])} {cur}")
    return 0


# -- users -----------------------------------------------------------------------------------------------

def cmd_users_list(args: argparse.Namespace) -> int:
    site = Site(args)
    d = site.read(reports.user_list)
    cur = d["currency"]
    if args.json:
        print_json(d)
    elif args.csv:
        print_csv(["id", "name", "phone", "email", "cards", "balance", "available", "currency", "blocked"],
             [{**r, "balance": site.amount(r["balance_minor"]), "available": site.amount(r["available_minor"]),
               "currency": cur} for r in d["users"]])
    elif not d["users"]:
        print("no users registered")
    else:
        print_table(["ID", "NAME", "PHONE", "EMAIL", "CARDS", f"BALANCE {cur}", f"AVAILABLE {cur}"],
               [[r["id"], r["name"] + (" (blocked)" if r["blocked"] else ""), r["phone"], r["email"], r["cards"],
                 site.amount(r["balance_minor"]), site.amount(r["available_minor"])] for r in d["users"]],
               right=(0, 4, 5, 6))
    return 0


def _print_user_head(site: Site, acc: dict, d: dict) -> None:
    cur = d["currency"]
    print(f"User       {acc['name']} (user {acc['id']}{', blocked' if acc['blocked'] else ''})")
    print(f"Contact    {', '.join(x for x in (acc.get('phone'), acc.get('email')) if x) or '-'}")
    print(f"Balance    {site.amount(d['balance_minor'])} {cur} (available {site.amount(d['available_minor'])} {cur},"
          f" held {site.amount(d['held_minor'])} {cur})")
    print("Cards      " + ("; ".join(f"{c['uid']} ({c['kind']}, {c['status']})" for c in d["cards"]) or "none"))


def cmd_users_show(args: argparse.Namespace) -> int:
    site = Site(args)
    d = site.read(lambda conn: reports.user_detail(conn, args.id, recent=args.recent))
    if args.json:
        print_json(d)
    else:
        _print_user_head(site, d, d)
        _print_sessions(site, d["recent_sessions"], title="Recent sessions")
    return 0


def cmd_users_update(args: argparse.Namespace) -> int:
    site = Site(args)
    if args.name is None and args.phone is None and args.email is None and args.master_pass is None:
        raise owner.OwnerError("nothing to change: give --name, --phone, --email or --master-pass")

    def change(conn: Any) -> tuple[dict, dict]:
        old, new = owner.update_contact(conn, args.id, name=args.name, phone=args.phone, email=args.email)
        if args.master_pass is not None:
            old["master_pass"] = owner.set_master_pass(conn, args.id, args.master_pass == "yes")
            new["master_pass"] = args.master_pass == "yes"
        return old, new
    old, new = site.write(change)
    if args.json:
        print_json({"id": args.id, "before": old, "after": new})
    elif old == new:
        print(f"user {args.id}: nothing changed")
    else:
        for key in new:
            if old[key] != new[key]:
                shown = [("yes" if v else "no") if isinstance(v, bool) else v or "-" for v in (old[key], new[key])]
                print(f"user {args.id} {key.replace('_', ' ')}: {shown[0]} → {shown[1]}")
    return 0


def _pin() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().strip()
    first = getpass.getpass("PIN (4-8 digits): ")
    if getpass.getpass("again: ") != first:
        raise owner.OwnerError("the two PINs differ")
    return first


def cmd_cards_pin(args: argparse.Namespace) -> int:
    """Set the PIN of a card's account: with it (and the card or phone number) the driver pays at /pay."""
    site = Site(args)
    uid = normalise_uid(args.uid)
    card = site.read(lambda conn: cards.get_card(conn, uid))
    if card is None:
        raise owner.OwnerError(f"no card {uid}")
    pin_hash = hash_secret(pay.check_pin_format(_pin()))
    site.write(lambda conn: pay.set_pin_hash(conn, card.account_id, pin_hash))
    if args.json:
        print_json({"uid": uid, "account_id": card.account_id, "pin_set": True})
    else:
        print(f"PIN set for {card.name} (user {card.account_id}); pay with card {uid} or the user's phone number")
    return 0


def cmd_cards_assign(args: argparse.Namespace) -> int:
    site = Site(args)
    was, card = site.write(lambda conn: owner.assign_card(conn, args.uid, args.account))
    if args.json:
        print_json({"uid": card.uid, "from_account": was, "account_id": card.account_id, "name": card.name})
    elif was == card.account_id:
        print(f"card {card.uid} is already {card.name}'s (user {card.account_id})")
    else:
        print(f"card {card.uid}: user {was} → {card.name} (user {card.account_id})")
    return 0


# -- sessions --------------------------------------------------------------------------------------------

_SESSION_CSV = ["id", "charger_id", "id_tag", "name", "account_id", "card_kind", "started", "stopped",
                "duration_seconds", "energy_kwh", "cost", "captured", "uncollected", "currency", "stop_reason"]


def _session_csv_rows(site: Site, rows: list[dict]) -> list[dict]:
    return [{**r, "started": site.when(r["started_at"], seconds=True) if r["started_at"] else "",
             "stopped": site.when(r["stopped_at"], seconds=True) if r["stopped_at"] else "",
             "energy_kwh": "" if r["energy_wh"] is None else fmt_kwh(r["energy_wh"], 3),
             "cost": "" if r["cost_minor"] is None else site.amount(r["cost_minor"]),
             "captured": "" if r["captured_minor"] is None else site.amount(r["captured_minor"]),
             "uncollected": "" if r["uncollected_minor"] is None else site.amount(r["uncollected_minor"]),
             "currency": site.settings.currency} for r in rows]


def _print_sessions(site: Site, rows: list[dict], title: str | None = None, upstream: bool = False) -> None:
    """A table of sessions; `upstream`: with what the cloud CSMS answered (its id and status)."""
    if title:
        print(f"\n{title}:" if rows else f"\n{title}: none")
    if not rows:
        return
    cur = site.settings.currency
    head = ["ID", "CHARGER", "CARD", "USER", "STARTED", "STOPPED", "H:MM", "kWh", f"PAID {cur}"]
    body = [[r["id"], r["charger_id"], r["id_tag"], r["name"], site.when(r["started_at"]),
             "charging" if r["open"] else site.when(r["stopped_at"]), fmt_duration(r["duration_seconds"]),
             fmt_kwh(r["energy_wh"]), site.amount(r["captured_minor"])] for r in rows]
    if upstream:
        head.append("UPSTREAM")
        for line, r in zip(body, rows, strict=True):
            said = f"id {r['upstream_tx_id']}, {r['upstream_status'] or 'no status'}"
            line.append(f"refused by upstream ({said})" if r["upstream_refused"] else said)
    print_table(head, body, right=(0, 6, 7, 8))


def cmd_sessions_list(args: argparse.Namespace) -> int:
    site = Site(args)
    uid = normalise_uid(args.card) if args.card is not None else None
    since = reports.parse_since(args.since, site.tz) if args.since is not None else None
    rows = site.read(lambda conn: reports.sessions(conn, charger_id=args.charger, uid=uid, since=since,
                                                   limit=args.limit or None,
                                                   upstream_refused=args.upstream_refused))
    if args.json:
        print_json({"currency": site.settings.currency, "sessions": rows})
    elif args.csv:
        print_csv(_SESSION_CSV, _session_csv_rows(site, rows))
    elif not rows:
        print("no sessions refused by upstream" if args.upstream_refused else "no sessions")
    else:
        if args.upstream_refused:
            print("Sessions the cloud CSMS refused: they ran here, and their frames went up with upstream's id;"
                  " reconcile them in the cloud.")
        _print_sessions(site, rows, upstream=args.upstream_refused)
    return 0


# -- reports ---------------------------------------------------------------------------------------------

def cmd_report_daily(args: argparse.Namespace) -> int:
    site = Site(args)
    day = reports.parse_day(args.date, site.tz)
    d = site.read(lambda conn: reports.daily(conn, day, site.tz))
    cur = d["currency"]
    if args.json:
        print_json(d)
        return 0
    if args.csv:
        print_csv(["date", "charger_id", "sessions", "open_sessions", "charging_seconds", "charging_hours",
              "energy_kwh", "fees", "uncollected", "currency"],
             [{**r, "date": d["date"], "charging_hours": f"{r['charging_seconds'] / 3600:.3f}",
               "energy_kwh": fmt_kwh(r["energy_wh"], 3), "fees": site.amount(r["fees_minor"]),
               "uncollected": site.amount(r["uncollected_minor"]), "currency": cur} for r in d["chargers"]])
        return 0
    print(f"Daily report {d['date']} ({d['timezone']}); energy and fees of the sessions that ended that day")
    t = d["totals"]
    rows = [[r["charger_id"], r["sessions"], r["open_sessions"] or "", fmt_duration(r["charging_seconds"]),
             fmt_kwh(r["energy_wh"]), site.amount(r["fees_minor"])] for r in d["chargers"]]
    rows.append(["TOTAL", t["sessions"], t["open_sessions"] or "", fmt_duration(t["charging_seconds"]),
                 fmt_kwh(t["energy_wh"]), site.amount(t["fees_minor"])])
    print_table(["CHARGER", "SESSIONS", "OPEN", "CHARGING H:MM", "kWh", f"FEES {cur}"], rows, right=(1, 2, 3, 4, 5))
    if t["uncollected_minor"]:
        print(f"uncollected (over the holds): {site.amount(t['uncollected_minor'])} {cur}")
    return 0


def cmd_report_user(args: argparse.Namespace) -> int:
    site = Site(args)
    d = site.read(lambda conn: reports.user_report(conn, args.id))
    cur = d["currency"]
    if args.json:
        print_json(d)
        return 0
    if args.csv and args.history:
        print_csv(["id", "created", "kind", "amount", "change", "balance", "currency", "session_id", "note", "key"],
             [{**e, "created": site.when(e["created"], seconds=True), "amount": site.amount(e["amount_minor"]),
               "change": site.amount(e["delta_minor"]), "balance": site.amount(e["balance_minor"]),
               "currency": cur} for e in d["history"]])
        return 0
    if args.csv:
        print_csv(_SESSION_CSV, _session_csv_rows(site, d["sessions"]))
        return 0
    _print_user_head(site, d["account"], d)
    t = d["totals"]
    print(f"Totals     {t['sessions']} session(s), {fmt_kwh(t['energy_wh'])} kWh, spent {site.amount(t['spend_minor'])}"
          f" {cur}" + (f", uncollected {site.amount(t['uncollected_minor'])} {cur}" if t["uncollected_minor"] else ""))
    _print_sessions(site, d["sessions"], title="Sessions")
    print("\nBalance history:" if d["history"] else "\nBalance history: none")
    if d["history"]:
        print_table(["WHEN", "ENTRY", "AMOUNT", "CHANGE", f"BALANCE {cur}", "SESSION", "NOTE"],
               [[site.when(e["created"]), e["kind"], site.amount(e["amount_minor"]),
                 site.amount(e["delta_minor"]) if e["delta_minor"] else "", site.amount(e["balance_minor"]),
                 e["session_id"], e["note"]] for e in d["history"]], right=(2, 3, 4, 5))
    return 0


# -- registration ----------------------------------------------------------------------------------------

def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the owner's commands to the `sitekeeper` subparsers; each leaf sets `handler`."""
    js = argparse.ArgumentParser(add_help=False)
    js.add_argument("--json", action="store_true", help="JSON for machines (amounts in minor units)")
    table = argparse.ArgumentParser(add_help=False)
    group = table.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="JSON for machines (amounts in minor units)")
    group.add_argument("--csv", action="store_true", help="CSV for spreadsheets (amounts in major units)")

    def leaf(parent: Any, name: str, handler: Handler, help: str, out: argparse.ArgumentParser = js,
             **kw: Any) -> argparse.ArgumentParser:
        p = parent.add_parser(name, parents=[common, out], help=help, **kw)
        p.set_defaults(handler=handler)
        return p

    c = sub.add_parser("cards", parents=[common], help="register, list, show and block cards")
    cs = c.add_subparsers(dest="action", required=True)
    p = leaf(cs, "add", cmd_cards_add, "register a card (on a new user, or an existing one with --account)")
    p.add_argument("uid", nargs="?", help="card UID in hex (any case; spaces, colons, dashes ignored)")
    p.add_argument("--last-tap", action="store_true", help="the newest unknown card tapped on a reader")
    p.add_argument("--kind", required=True, choices=cards.KINDS)
    p.add_argument("--name", help="the new user's name")
    p.add_argument("--phone")
    p.add_argument("--email")
    p.add_argument("--account", type=int, metavar="ID", help="add the card to this existing user")
    p.add_argument("--chargers", metavar="A,B", help="personal cards: the only chargers it may use")
    p.add_argument("--expires", metavar="DATE", help="valid through this day (site time zone) or time; default never")
    p = leaf(cs, "update", cmd_cards_update, "change a card's validity end or the chargers it may use")
    p.add_argument("uid")
    p.add_argument("--expires", metavar="DATE", help="valid through this day (site time zone) or time; never: no end")
    p.add_argument("--chargers", metavar="A,B", help="personal cards: the only chargers it may use; all: any")
    p = leaf(cs, "assign", cmd_cards_assign, "move a card to another user (the money stays with each user)")
    p.add_argument("uid")
    p.add_argument("account", type=int, metavar="USER_ID")
    leaf(cs, "list", cmd_cards_list, "list all cards", out=table)
    p = leaf(cs, "pin", cmd_cards_pin, "set the PIN a driver pays with at /pay (the card's user's)")
    p.add_argument("uid")
    leaf(cs, "unknown", cmd_cards_unknown, "unknown cards tapped lately (to enrol with add --last-tap)")
    p = leaf(cs, "show", cmd_cards_show, "a card, its user, balance and recent sessions")
    p.add_argument("uid")
    p.add_argument("--recent", type=count, default=10, metavar="N", help="recent sessions to show")
    for name, status, text in (("block", "blocked", "block a card"), ("unblock", "active", "make a card active"),
                               ("lost", "lost", "mark a card lost (refused like a blocked one)")):
        leaf(cs, name, _status_command(status), text).add_argument("uid")

    p = leaf(sub, "topup", cmd_topup, "add money to the account of a commercial card")
    p.add_argument("uid")
    p.add_argument("amount", help="in major units: 250 or 250.50")
    p.add_argument("--note")
    p.add_argument("--key", help="idempotency key: a top-up repeated with the same key is applied once")

    u = sub.add_parser("users", parents=[common], help="the site's users (accounts)")
    us = u.add_subparsers(dest="action", required=True)
    leaf(us, "list", cmd_users_list, "list all users", out=table)
    p = leaf(us, "show", cmd_users_show, "a user, their cards, balance and recent sessions")
    p.add_argument("id", type=int)
    p.add_argument("--recent", type=count, default=10, metavar="N", help="recent sessions to show")
    p = leaf(us, "update", cmd_users_update, "change a user's name, phone, email (\"\" clears them) or master pass")
    p.add_argument("id", type=int)
    p.add_argument("--name")
    p.add_argument("--phone")
    p.add_argument("--email")
    p.add_argument("--master-pass", choices=("yes", "no"),
                   help="yes: the user's cards stop any session and start none (site attendants)")

    s = sub.add_parser("sessions", parents=[common], help="charging sessions")
    ss = s.add_subparsers(dest="action", required=True)
    p = leaf(ss, "list", cmd_sessions_list, "list sessions, newest first", out=table)
    p.add_argument("--charger", metavar="ID")
    p.add_argument("--card", metavar="UID")
    p.add_argument("--since", metavar="DATE", help="started on or after (YYYY-MM-DD or YYYY-MM-DDTHH:MM, local)")
    p.add_argument("--limit", type=count, default=100, help="at most N sessions (0: all)")
    p.add_argument("--upstream-refused", action="store_true",
                   help="only sessions the cloud CSMS refused (proxy mode), with what it answered")

    r = sub.add_parser("report", parents=[common], help="daily charger report, per-user report")
    rs = r.add_subparsers(dest="action", required=True)
    p = leaf(rs, "daily", cmd_report_daily, "per charger for one local day: charging hours, kWh, fees",
             out=table)
    p.add_argument("--date", metavar="D", help="YYYY-MM-DD, today or yesterday (default: today, site time)")
    p = leaf(rs, "user", cmd_report_user, "a user's sessions, kWh, spend, balance and balance history",
             out=table)
    p.add_argument("id", type=int)
    p.add_argument("--history", action="store_true", help="with --csv: the balance history instead of sessions")


def run(handler: Handler, args: argparse.Namespace, also: tuple[type[Exception], ...] = ()) -> int:
    """Call `handler`; bad input (`BAD_INPUT`, and `also`) becomes one line on stderr and exit code 2."""
    try:
        return handler(args)
    except (*BAD_INPUT, *also) as e:
        command = " ".join(x for x in (args.command, getattr(args, "action", None)) if x)
        print(f"sitekeeper {command}: {e}", file=sys.stderr)
        return 2
