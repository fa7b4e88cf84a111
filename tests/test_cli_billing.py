"""The site owner's CLI (`sitekeeper cards|topup|users|sessions|report`) run as the real console script.

Cards and top-ups go through the CLI; sessions are made through the billing library (the same path the
controller takes: `billing.decide` at start, `observe.stop_ops_16` through `edge.ocpp.persist` at stop, which settles the bill).
Expected figures come from arithmetic on the test's own timestamps, meter readings and tariff.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import SITEKEEPER

from edge import config
from edge.billing import sessions as billing
from edge.controller import observe
from edge.ocpp import persist
from edge.store import ops
from edge.store.sqlite import Store

TZ = "Asia/Manila"  # UTC+8, no DST
PER_KWH = Decimal("12.00")  # PHP per kWh, the only tariff component
MAX_HOLD = 50_000  # minor units: "500.00"

ANA = "04A1B2C3"  # commercial, Ana Cruz
ANA_2 = "04A1B2C7"  # commercial, a second card on Ana's account
BEN = "04B1B2C3D4E5F6"  # personal (7-byte UID), limited to CP-1, CP-2
CARL = "04C1C2C3"  # commercial, in an open session
UNKNOWN = "DEADBEEF"  # never registered: charged at the site (standalone demo), not billed


class Site:
    def __init__(self, root: Path, timezone: str | None = TZ, init: bool = True):
        root.mkdir(parents=True, exist_ok=True)
        self.db = root / "data" / "site.db"
        self.config = root / "site.toml"
        zone = f'timezone = "{timezone}"' if timezone else ""
        self.config.write_text(f"""
[site]
{zone}

[store]
path = "data/site.db"

[billing]
currency = "PHP"
min_start_balance = "50.00"
max_hold = "500.00"

[tariff]
per_kwh = "{PER_KWH}"
per_minute = "0.00"
session_fee = "0.00"
idle_per_minute = "0.00"
""")
        if init:
            self.run("init")  # only run and init make a database

    def run(self, *args: str, rc: int = 0) -> subprocess.CompletedProcess:
        proc = subprocess.run([SITEKEEPER, *args, "--config", str(self.config)], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == rc, f"{args}: rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def json(self, *args: str) -> dict:
        return json.loads(self.run(*args, "--json").stdout)

    def csv(self, *args: str) -> list[dict]:
        return list(csv.DictReader(io.StringIO(self.run(*args, "--csv").stdout)))

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = sqlite3.connect(self.db)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def snapshot(self) -> dict:
        return {t: self.query(f"SELECT * FROM {t} ORDER BY 1")
                for t in ("accounts", "cards", "ledger", "meta", "transactions")}

    # sessions, through the billing library as the controller does it
    def library(self, fn) -> None:
        saved = billing.SETTINGS
        billing.configure(billing.settings_from_config(config.load(self.config)))
        store = Store.open(str(self.db))
        try:
            store.write_now(fn)
        finally:
            store.close()
            billing.configure(saved)

    def boot(self, charger: str) -> None:
        self.library(lambda conn: persist.apply(conn, observe.boot_ops(charger, "1.6", {})))

    def session(self, charger: str, tx_id: int, uid: str, start: datetime, wh_start: int,
                stop: datetime | None = None, wh_stop: int | None = None) -> None:
        def fn(conn: sqlite3.Connection) -> None:
            tx = vars(observe.start_op_16(charger, tx_id, {"connectorId": 1, "idTag": uid, "meterStart": wh_start,
                                                           "timestamp": z(start)}, offline=False))
            decided = billing.decide(conn, uid=uid, charger_id=charger, version="1.6", kind="start", tx=tx)
            if not decided["known"]:
                ops.tx_start(conn, tx)
            else:
                assert decided["status"] == "Accepted", decided
            if stop is not None:
                persist.apply(conn, observe.stop_ops_16(charger, {"transactionId": tx_id, "meterStop": wh_stop,
                                                                  "timestamp": z(stop)}))
        self.library(fn)


def z(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0, tz: str = TZ) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(tz))


def cost(wh: int) -> int:
    """The tariff's price of `wh` in centavos, computed here independently."""
    return int(PER_KWH * 100 * wh / 1000)


def one_line_error(proc: subprocess.CompletedProcess, text: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sitekeeper") and text in lines[0], proc.stderr
    assert proc.stdout == ""


# The sessions of the populated site (local times, Asia/Manila). The report day is 2024-03-10.
S_CROSS = dict(charger="CP-1", tx_id=1, uid=ANA, start=local(2024, 3, 9, 23), wh_start=5_000,
               stop=local(2024, 3, 10, 1), wh_stop=12_000)  # 23:00 → 01:00, 7 kWh, ends on the 10th
S_MORNING = dict(charger="CP-1", tx_id=2, uid=ANA, start=local(2024, 3, 10, 9), wh_start=1_000,
                 stop=local(2024, 3, 10, 10, 30), wh_stop=13_500)  # 1 h 30, 12.5 kWh
S_PERSONAL = dict(charger="CP-2", tx_id=3, uid=BEN, start=local(2024, 3, 10, 23, 30), wh_start=0,
                  stop=local(2024, 3, 11, 0, 30), wh_stop=4_000)  # over midnight: ends on the 11th
S_UNKNOWN = dict(charger="CP-2", tx_id=4, uid=UNKNOWN, start=local(2024, 3, 10, 12), wh_start=100,
                 stop=local(2024, 3, 10, 12, 45), wh_stop=2_600)  # 45 min, 2.5 kWh, not billed here
S_OTHER_DAY = dict(charger="CP-1", tx_id=5, uid=ANA, start=local(2024, 3, 8, 9), wh_start=0,
                   stop=local(2024, 3, 8, 10), wh_stop=10_000)
S_OPEN = dict(charger="CP-3", tx_id=6, uid=CARL, start=local(2024, 3, 10, 18), wh_start=0)  # never stopped
ANA_TOPUP = 100_000  # "1000.00"
CARL_TOPUP = 30_000  # "300"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    s = Site(tmp_path_factory.mktemp("cli") / "site")
    s.run("cards", "add", "04:a1:b2:c3", "--kind", "commercial", "--name", "Ana Cruz", "--phone", "+63 917 555 0101",
          "--email", "ana@example.com")
    s.run("cards", "add", ANA_2.lower(), "--kind", "commercial", "--account", "1")
    s.run("cards", "add", "04 b1 b2 c3 d4 e5 f6", "--kind", "personal", "--name", "Ben Reyes", "--chargers",
          "CP-1,CP-2")
    s.run("cards", "add", CARL, "--kind", "commercial", "--name", "Carl Tan")
    s.run("topup", ANA, "1000.00", "--note", "cash at the desk")
    s.run("topup", CARL, "300", "--key", "k-used")
    for charger in ("CP-1", "CP-2", "CP-3", "CP-4"):  # CP-4 does nothing
        s.boot(charger)
    for session in (S_OTHER_DAY, S_CROSS, S_MORNING, S_PERSONAL, S_UNKNOWN, S_OPEN):
        s.session(**session)
    return s


# -- cards and top-ups -----------------------------------------------------------------------------------

def test_cards_add_list_show(site: Site):
    listed = site.json("cards", "list")
    assert listed["currency"] == "PHP"
    assert {c["uid"]: (c["kind"], c["status"], c["name"], c["chargers"]) for c in listed["cards"]} == {
        ANA: ("commercial", "active", "Ana Cruz", None), ANA_2: ("commercial", "active", "Ana Cruz", None),
        BEN: ("personal", "active", "Ben Reyes", ["CP-1", "CP-2"]), CARL: ("commercial", "active", "Carl Tan", None)}
    assert site.query("SELECT uid FROM cards ORDER BY uid") == [(ANA,), (ANA_2,), (BEN,), (CARL,)]

    ana_spent = cost(S_CROSS["wh_stop"] - S_CROSS["wh_start"]) + cost(S_MORNING["wh_stop"] - S_MORNING["wh_start"]) \
        + cost(S_OTHER_DAY["wh_stop"] - S_OTHER_DAY["wh_start"])
    shown = site.json("cards", "show", "04:a1:B2:c3")  # any spelling of the UID
    assert shown["uid"] == ANA and shown["kind"] == "commercial" and shown["status"] == "active"
    assert shown["account"]["name"] == "Ana Cruz"
    assert shown["account"]["phone"] == "+63 917 555 0101" and shown["account"]["email"] == "ana@example.com"
    assert shown["currency"] == "PHP"
    assert shown["balance_minor"] == ANA_TOPUP - ana_spent
    assert shown["available_minor"] == ANA_TOPUP - ana_spent  # no open session
    assert shown["last_used"] is not None
    assert [r["id"] for r in shown["recent_sessions"]] == [2, 1, 5]  # newest first

    carl = site.json("cards", "show", CARL.lower())
    assert carl["balance_minor"] == CARL_TOPUP
    assert carl["available_minor"] == CARL_TOPUP - min(CARL_TOPUP, MAX_HOLD)  # the open session's hold
    assert carl["recent_sessions"][0]["open"] is True

    text = site.run("cards", "show", ANA).stdout
    assert ANA in text and "Ana Cruz" in text and f"{(ANA_TOPUP - ana_spent) / 100:.2f} PHP" in text
    table = site.run("cards", "list").stdout
    assert all(uid in table for uid in (ANA, ANA_2, BEN, CARL))  # full UIDs: the owner's own tool
    rows = site.csv("cards", "list")
    assert {r["uid"]: r["balance"] for r in rows}[CARL] == "300.00"
    assert {r["uid"]: r["chargers"] for r in rows}[BEN] == "CP-1,CP-2"


def test_topup_amounts_keys_and_blocked_cards(tmp_path: Path):
    s = Site(tmp_path / "t")
    s.run("cards", "add", ANA, "--kind", "commercial", "--name", "Ana")
    s.run("cards", "add", ANA_2, "--kind", "commercial", "--account", "1")
    r = s.json("topup", "04a1b2c3", "250.50")
    assert (r["amount_minor"], r["balance_minor"], r["available_minor"], r["currency"], r["applied"]) == \
        (25050, 25050, 25050, "PHP", True)
    # no key: every invocation is a top-up of its own
    assert s.json("topup", ANA, "250.50")["balance_minor"] == 2 * 25050
    # a key: applied once however often it is retried
    first = s.json("topup", ANA, "100", "--key", "receipt-17", "--note", "GCash")
    again = s.json("topup", ANA, "100", "--key", "receipt-17", "--note", "GCash")
    assert first["applied"] is True and again["applied"] is False
    assert first["balance_minor"] == again["balance_minor"] == 2 * 25050 + 10000
    assert s.query("SELECT count(*), max(note) FROM ledger WHERE key LIKE '%receipt-17%'") == [(1, "GCash")]
    assert "already applied" in s.run("topup", ANA, "100", "--key", "receipt-17").stdout
    # a blocked card can be topped up: the money is on the account (warned on stderr)
    assert "blocked" in s.run("cards", "block", ANA_2).stdout
    blocked = s.run("topup", ANA_2, "0.05", "--json")
    assert json.loads(blocked.stdout)["balance_minor"] == 2 * 25050 + 10000 + 5
    assert "blocked" in blocked.stderr
    assert s.query("SELECT sum(amount_minor), count(*) FROM ledger WHERE kind = 'topup'") == \
        [(2 * 25050 + 10000 + 5, 4)]
    assert "PHP" in s.run("topup", ANA, "1").stdout


def test_block_unblock_lost(tmp_path: Path):
    s = Site(tmp_path / "b")
    s.run("cards", "add", ANA, "--kind", "commercial", "--name", "Ana")
    version = s.query("SELECT value FROM meta WHERE key = 'local_list_version'")[0][0]
    assert s.json("cards", "block", "04:A1:B2:C3")["status"] == "blocked"
    assert s.query("SELECT status FROM cards") == [("blocked",)]
    assert "already blocked" in s.run("cards", "block", ANA).stdout
    assert s.json("cards", "unblock", ANA)["status"] == "active"
    assert "active → lost" in s.run("cards", "lost", ANA).stdout
    assert s.query("SELECT status FROM cards") == [("lost",)]
    # every change moves the chargers' local list version on
    assert int(s.query("SELECT value FROM meta WHERE key = 'local_list_version'")[0][0]) > int(version)


def test_a_card_valid_through_a_day_in_the_site_zone_then_expired_then_without_end(tmp_path: Path):
    s = Site(tmp_path / "e")
    s.run("cards", "add", ANA, "--kind", "personal", "--name", "Guard", "--expires", "2099-06-30")
    shown = s.json("cards", "show", ANA)
    assert shown["expires"] == "2099-06-30T15:59:59Z", "the day's end in Manila (UTC+8)"
    assert shown["expired"] is False and "Valid      until 2099-06-30 23:59" in s.run("cards", "show", ANA).stdout
    version = s.query("SELECT value FROM meta WHERE key = 'local_list_version'")[0][0]
    assert s.json("cards", "update", ANA, "--expires", "2020-01-01T08:00:00+08:00")["expired"] is True
    assert "(EXPIRED)" in s.run("cards", "show", ANA).stdout
    assert int(s.query("SELECT value FROM meta WHERE key = 'local_list_version'")[0][0]) > int(version), \
        "the chargers' lists hear of it"
    assert s.json("cards", "update", ANA, "--expires", "never")["expires"] is None
    assert s.query("SELECT body FROM outbox WHERE kind = 'card' ORDER BY seq DESC LIMIT 1")[0][0].count(
        '"expires":null') == 1, "the cloud hears of it"


def test_users_update_and_cards_assign(tmp_path: Path):
    s = Site(tmp_path / "u")
    s.run("cards", "add", ANA, "--kind", "commercial", "--name", "Ana", "--phone", "0917 555 0101")
    s.run("cards", "add", CARL, "--kind", "commercial", "--name", "Carl Tan")
    assert "phone: 0917 555 0101 → +63 917 555 0101" in s.run("users", "update", "1", "--phone", "+63 917 555 0101").stdout
    assert s.json("users", "update", "1", "--name", "Ana Cruz", "--email", "")["after"] == {
        "name": "Ana Cruz", "phone": "+63 917 555 0101", "email": None}
    one_line_error(s.run("users", "update", "1", "--phone", "call me", rc=2), "not a phone number")
    one_line_error(s.run("users", "update", "9", "--name", "X", rc=2), "no user 9")
    assert s.query("SELECT name, phone FROM accounts WHERE id = 1") == [("Ana Cruz", "+63 917 555 0101")]
    # the new name reaches the cloud with the card's record
    assert "Ana Cruz" in s.query("SELECT body FROM outbox WHERE kind = 'card' ORDER BY seq DESC LIMIT 1")[0][0]
    assert "user 2 → Ana Cruz (user 1)" in s.run("cards", "assign", CARL, "1").stdout
    assert s.query("SELECT account_id FROM cards WHERE uid = ?", (CARL,)) == [(1,)]
    assert "already Ana Cruz's" in s.run("cards", "assign", CARL, "1").stdout
    one_line_error(s.run("cards", "assign", CARL, "7", rc=2), "no user 7")


def test_config_before_or_after_the_subcommand(tmp_path: Path):
    s = Site(tmp_path / "c")
    s.run("cards", "add", ANA, "--kind", "commercial", "--name", "Ana")
    for argv in (["--config", str(s.config), "cards", "list", "--json"],
                 ["cards", "--config", str(s.config), "list", "--json"]):
        out = subprocess.run([SITEKEEPER, *argv], capture_output=True, text=True, timeout=60, check=True).stdout
        assert [c["uid"] for c in json.loads(out)["cards"]] == [ANA]


# -- users -----------------------------------------------------------------------------------------------

def test_users_list_and_show(site: Site):
    users = site.json("users", "list")
    assert [(u["id"], u["name"], u["cards"]) for u in users["users"]] == [
        (1, "Ana Cruz", 2), (2, "Ben Reyes", 1), (3, "Carl Tan", 1)]
    carl = next(u for u in users["users"] if u["name"] == "Carl Tan")
    assert (carl["balance_minor"], carl["available_minor"]) == (CARL_TOPUP, 0)
    ana = site.json("users", "show", "1")
    assert ana["name"] == "Ana Cruz" and ana["email"] == "ana@example.com" and ana["currency"] == "PHP"
    assert sorted(c["uid"] for c in ana["cards"]) == [ANA, ANA_2]
    assert {r["id"] for r in ana["recent_sessions"]} == {1, 2, 5}
    assert "Ana Cruz" in site.run("users", "list").stdout
    assert [r["name"] for r in site.csv("users", "list")] == ["Ana Cruz", "Ben Reyes", "Carl Tan"]
    text = site.run("users", "show", "1").stdout
    assert ANA in text and ANA_2 in text


# -- sessions --------------------------------------------------------------------------------------------

def test_sessions_list_filters(site: Site):
    every = site.json("sessions", "list")["sessions"]
    assert sorted(r["id"] for r in every) == [1, 2, 3, 4, 5, 6]
    morning = next(r for r in every if r["id"] == 2)
    assert morning["energy_wh"] == S_MORNING["wh_stop"] - S_MORNING["wh_start"]
    assert morning["captured_minor"] == morning["cost_minor"] == cost(morning["energy_wh"])
    assert morning["duration_seconds"] == (S_MORNING["stop"] - S_MORNING["start"]).total_seconds()
    assert morning["name"] == "Ana Cruz"

    def ids(*args: str) -> list[int]:
        return sorted(r["id"] for r in site.json("sessions", "list", *args)["sessions"])

    assert ids("--charger", "CP-2") == [3, 4]
    assert ids("--card", "04:a1:b2:c3") == [1, 2, 5]
    assert ids("--card", "dead beef") == [4]
    # a date is local midnight; a date-time without an offset is local time
    assert ids("--since", "2024-03-10") == [2, 3, 4, 6]
    assert ids("--since", "2024-03-09T22:59") == [1, 2, 3, 4, 6]
    assert ids("--since", "2024-03-09T23:01") == [2, 3, 4, 6]
    assert ids("--charger", "CP-1", "--since", "2024-03-10") == [2]
    assert len(site.json("sessions", "list", "--limit", "2")["sessions"]) == 2
    rows = site.csv("sessions", "list", "--card", ANA)
    assert [r["energy_kwh"] for r in rows] == ["12.500", "7.000", "10.000"]
    assert rows[0]["started"] == "2024-03-10 09:00:00" and rows[0]["captured"] == "150.00"
    assert "CP-1" in site.run("sessions", "list").stdout


# -- reports ---------------------------------------------------------------------------------------------

def test_report_daily(site: Site):
    day_start, day_end = local(2024, 3, 10), local(2024, 3, 11)
    cross, morning, personal, unknown = S_CROSS, S_MORNING, S_PERSONAL, S_UNKNOWN
    want = {
        "CP-1": {"sessions": 2, "open_sessions": 0,
                 "charging_seconds": (cross["stop"] - day_start).total_seconds()
                 + (morning["stop"] - morning["start"]).total_seconds(),
                 "energy_wh": (cross["wh_stop"] - cross["wh_start"]) + (morning["wh_stop"] - morning["wh_start"]),
                 "fees_minor": cost(cross["wh_stop"] - cross["wh_start"]) + cost(morning["wh_stop"]
                                                                                 - morning["wh_start"])},
        "CP-2": {"sessions": 1, "open_sessions": 0,  # the personal session ends tomorrow: only its time counts
                 "charging_seconds": (day_end - personal["start"]).total_seconds()
                 + (unknown["stop"] - unknown["start"]).total_seconds(),
                 "energy_wh": unknown["wh_stop"] - unknown["wh_start"], "fees_minor": 0},
        "CP-3": {"sessions": 0, "open_sessions": 1, "charging_seconds": (day_end - S_OPEN["start"]).total_seconds(),
                 "energy_wh": 0, "fees_minor": 0},
        "CP-4": {"sessions": 0, "open_sessions": 0, "charging_seconds": 0, "energy_wh": 0, "fees_minor": 0},
    }
    assert want["CP-1"]["charging_seconds"] == 2.5 * 3600 and want["CP-1"]["fees_minor"] == 23_400
    report = site.json("report", "daily", "--date", "2024-03-10")
    assert (report["date"], report["timezone"], report["currency"]) == ("2024-03-10", TZ, "PHP")
    assert (report["from"], report["to"]) == ("2024-03-09T16:00:00Z", "2024-03-10T16:00:00Z")
    got = {r["charger_id"]: {k: r[k] for k in want["CP-1"]} for r in report["chargers"]}
    assert got == want
    hours = {r["charger_id"]: r["charging_hours"] for r in report["chargers"]}
    assert hours == {"CP-1": 2.5, "CP-2": 1.25, "CP-3": 6.0, "CP-4": 0.0}
    totals = report["totals"]
    for key in ("sessions", "open_sessions", "charging_seconds", "energy_wh", "fees_minor"):
        assert totals[key] == sum(w[key] for w in want.values()), key
    assert totals["chargers"] == 4

    # the personal session is counted (energy, no fee) on the day it ended
    next_day = {r["charger_id"]: r for r in site.json("report", "daily", "--date", "2024-03-11")["chargers"]}
    assert (next_day["CP-2"]["sessions"], next_day["CP-2"]["energy_wh"], next_day["CP-2"]["fees_minor"]) == \
        (1, personal["wh_stop"] - personal["wh_start"], 0)
    assert next_day["CP-2"]["charging_seconds"] == (personal["stop"] - day_end).total_seconds()
    assert next_day["CP-1"]["sessions"] == 0

    rows = site.csv("report", "daily", "--date", "2024-03-10")
    assert [r["charger_id"] for r in rows] == ["CP-1", "CP-2", "CP-3", "CP-4"]
    cp1 = rows[0]
    assert (cp1["date"], cp1["sessions"], cp1["charging_hours"], cp1["energy_kwh"], cp1["fees"], cp1["currency"]) \
        == ("2024-03-10", "2", "2.500", "19.500", "234.00", "PHP")
    text = site.run("report", "daily", "--date", "2024-03-10").stdout
    assert "TOTAL" in text and "234.00" in text and "2:30" in text


def test_report_daily_follows_the_local_day_across_dst(tmp_path: Path):
    """Europe/Berlin's 2024-03-31 has 23 hours: a session over the whole day charges 23 of them."""
    s = Site(tmp_path / "dst", timezone="Europe/Berlin")
    s.run("cards", "add", BEN, "--kind", "personal", "--name", "Ben")
    start, stop = local(2024, 3, 30, 12, tz="Europe/Berlin"), local(2024, 4, 1, 12, tz="Europe/Berlin")
    s.session(charger="CP-1", tx_id=1, uid=BEN, start=start, wh_start=0, stop=stop, wh_stop=50_000)
    day = s.json("report", "daily", "--date", "2024-03-31")
    assert day["totals"]["charging_seconds"] == 23 * 3600 and day["totals"]["sessions"] == 0
    assert (day["from"], day["to"]) == ("2024-03-30T23:00:00Z", "2024-03-31T22:00:00Z")
    end_day = s.json("report", "daily", "--date", "2024-04-01")["totals"]
    assert (end_day["sessions"], end_day["energy_wh"], end_day["charging_seconds"]) == (1, 50_000, 12 * 3600)


def test_report_user(site: Site):
    report = site.json("report", "user", "1")
    assert report["account"]["name"] == "Ana Cruz" and report["currency"] == "PHP"
    energies = [s["wh_stop"] - s["wh_start"] for s in (S_OTHER_DAY, S_CROSS, S_MORNING)]
    spent = sum(cost(wh) for wh in energies)
    assert report["totals"] == {"sessions": 3, "energy_wh": sum(energies), "spend_minor": spent,
                                "uncollected_minor": 0}
    assert report["balance_minor"] == report["available_minor"] == ANA_TOPUP - spent
    # the statement: top-up, then per session hold, capture, release (in the order the sessions were made)
    expected, balance = [("topup", ANA_TOPUP, ANA_TOPUP)], ANA_TOPUP
    for wh in energies:
        hold = min(balance, MAX_HOLD)
        balance -= cost(wh)
        expected += [("hold", hold, balance + cost(wh)), ("capture", cost(wh), balance),
                     ("release", hold - cost(wh), balance)]
    assert [(e["kind"], e["amount_minor"], e["balance_minor"]) for e in report["history"]] == expected
    assert report["history"][0]["note"] == "cash at the desk"

    sessions = site.csv("report", "user", "1")
    assert sorted(r["captured"] for r in sessions) == sorted(f"{cost(wh) / 100:.2f}" for wh in energies)
    history = site.csv("report", "user", "1", "--history")
    assert [(r["kind"], r["balance"]) for r in history] == [(k, f"{b / 100:.2f}") for k, _, b in expected]
    text = site.run("report", "user", "1").stdout
    assert "Balance history" in text and "Ana Cruz" in text and f"{spent / 100:.2f}" in text


# -- bad input -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (["topup", "04A1B2C9", "10"], "unknown card 04A1B2C9"),
    (["topup", ANA, "-5"], "negative"),
    (["topup", ANA, "12,50"], "not an amount"),
    (["topup", ANA, "abc"], "not an amount"),
    (["topup", ANA, "1.234"], "decimal places"),
    (["topup", ANA, "0"], "above zero"),
    (["topup", ANA, "NaN"], "not an amount"),
    (["topup", ANA, "100000000000000000000"], "too large"),
    (["topup", ANA, "1e3"], "not an amount"),  # once credited 1000.00
    (["topup", ANA, "2E1"], "not an amount"),
    (["topup", ANA, "١٠"], "not an amount"),  # Arabic-Indic digits
    (["topup", ANA, "10.000"], "decimal places"),
    (["topup", BEN, "10"], "personal"),
    (["topup", "xyz", "10"], "not a card id"),
    (["topup", ANA, "999", "--key", "k-used"], "already used"),  # Carl's top-up has this key
    (["cards", "add", "04:A1:b2:c3", "--kind", "commercial", "--name", "Eve"], "already registered"),
    (["cards", "add", "04E1E2E3", "--kind", "commercial"], "--name"),
    (["cards", "add", "04E1E2E3", "--kind", "commercial", "--name", "Eve", "--email", "eve-at-home"], "email"),
    (["cards", "add", "04E1E2E3", "--kind", "commercial", "--name", "Eve", "--chargers", "CP-1"], "personal"),
    (["cards", "add", "04E1E2E3", "--kind", "commercial", "--account", "99"], "no account 99"),
    (["cards", "add", "04E1E2E3", "--kind", "personal", "--account", "1", "--name", "Eve"], "not both"),
    (["cards", "add", "123", "--kind", "personal", "--name", "Eve"], "not a card id"),
    (["cards", "show", "04E1E2E3"], "unknown card"),
    (["cards", "add", "04E1E2E3", "--kind", "personal", "--name", "Eve", "--expires", "next year"], "not a date"),
    (["cards", "update", "04E1E2E3", "--expires", "never"], "unknown card"),
    (["cards", "update", "04:A1:b2:c3"], "nothing to change"),
    (["cards", "block", "04E1E2E3"], "unknown card"),
    (["cards", "lost", "04E1E2E3"], "unknown card"),
    (["users", "show", "99"], "unknown user 99"),
    (["report", "user", "99"], "unknown user 99"),
    (["report", "daily", "--date", "2024-02-30"], "not a date"),
    (["sessions", "list", "--since", "last week"], "not a date"),
    (["sessions", "list", "--card", "zz"], "not a card id"),
])
def test_bad_input_exits_2_and_writes_nothing(site: Site, args: list[str], message: str):
    before = site.snapshot()
    one_line_error(site.run(*args, rc=2), message)
    assert site.snapshot() == before


@pytest.mark.parametrize("args", [["cards", "add", "04E1E2E3", "--kind", "prepaid", "--name", "Eve"],
                                  ["users", "show", "one"], ["topup", ANA], ["report", "user", "x"]])
def test_malformed_arguments_exit_2(site: Site, args: list[str]):
    before = site.snapshot()
    assert "error:" in site.run(*args, rc=2).stderr
    assert site.snapshot() == before


def test_bad_input_on_a_fresh_site_creates_no_database(tmp_path: Path):
    s = Site(tmp_path / "fresh", init=False)
    one_line_error(s.run("topup", ANA, "-1", rc=2), "negative")
    one_line_error(s.run("report", "daily", "--date", "10/03/2024", rc=2), "not a date")
    assert not s.db.exists()
    bad = tmp_path / "bad.toml"
    bad.write_text('[billing]\ncurrency = "pesos"\n')
    proc = subprocess.run([SITEKEEPER, "cards", "list", "--config", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and "billing.currency" in proc.stderr


def test_open_session_hours_count_up_to_now(tmp_path: Path):
    s = Site(tmp_path / "now")
    s.run("cards", "add", BEN, "--kind", "personal", "--name", "Ben")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    s.session(charger="CP-9", tx_id=1, uid=BEN, start=start, wh_start=0)
    day = start.astimezone(ZoneInfo(TZ)).date().isoformat()
    row = s.json("report", "daily", "--date", day)["chargers"][0]
    assert row["open_sessions"] == 1 and row["sessions"] == 0
    assert 30 * 60 <= row["charging_seconds"] <= 30 * 60 + 120 or day != datetime.now(ZoneInfo(TZ)).date().isoformat()
