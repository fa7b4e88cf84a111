"""Property-based tests of the prepaid ledger and session billing on a real SQLite file.

A Hypothesis state machine drives the billing library the way the edge does (cards added, top-ups posted,
1.6 sessions started through `billing.decide`, meter values, `StopTransaction` through `store_ops`, replays,
`reconcile`, and closing and reopening the database) and after every step checks the ledger against a model
kept in the test and against plain arithmetic over the raw rows:

- balance = Σ posted entries (topup/refund/adjustment +, capture −); held = Σ holds of sessions without a
  capture; available = balance − held ≥ −overdraft_limit;
- at most one hold, one capture and one release per session; every ledger key unique;
- captured ≤ hold + overdraft_limit; uncollected = cost − captured ≥ 0;
- replays (a top-up command seen twice, a StartTransaction retried, a stop or settlement repeated) change
  nothing, and a reopened database holds exactly what the closed one did.

Two variants: without overdraft, and with an overdraft limit. Small holds make them run out often. Every run
starts with a fleet account (two cards, one balance) whose top-up covers one full hold and a second start, so
that two sessions share one account's money; the search is steered (`target`) towards deep debt. The model
captures a session's cost up to its hold plus the overdraft limit and never so far that the account's
available drops below -overdraft_limit. Sequences Hypothesis found are replayed by hand, one test each, in
`test_ledger_replays.py`, so that every bug shows on its own.

The files are real SQLite (WAL, synchronous=FULL) files, in /dev/shm when there is one (cheap fsync).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, currently_in_test_context, settings, target
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from edge.billing import cards, ledger
from edge.billing import sessions as billing
from edge.billing.tariff import Tariff
from edge.controller import observe
from edge.ocpp import persist
from edge.store.sqlite import Store

CURRENCY = "PHP"
PER_KWH = Decimal(1500)  # minor units per kWh: 15.00 a kWh, 1.5 minor units a Wh
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
CHARGERS = ("CP1", "CP2")
CONNECTORS = (1, 2)
UIDS = ("04A23BC4", "0A0B0C0D", "DEADBEEF", "04112233445566")
FLEET = ("F1EE7001", "F1EE700200AA01")
SLOTS = [(c, n) for c in CHARGERS for n in CONNECTORS]
MIN_START = 300  # minor units: small, so that holds run out often
MAX_HOLD = 1500  # 1000 Wh at 1.5 minor units a Wh
SIGN = {"topup": 1, "refund": 1, "adjustment": 1, "capture": -1}
TABLES = ("accounts", "cards", "ledger", "transactions", "meter_values", "meta", "outbox")

# A real SQLite file (WAL, synchronous=FULL), in memory-backed /dev/shm when there is one: fsync is then cheap
# and a run with shrinking stays short. What is committed and what survives a reopen is the same either way.
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None

RUN_SETTINGS = settings(max_examples=40, stateful_step_count=60, deadline=None,
                        suppress_health_check=[HealthCheck.too_slow])


def iso(when: datetime) -> str:
    """An OCPP timestamp as a charger sends it."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def expected_cost(wh: int) -> int:
    """The cost of `wh` Wh at the flat per-kWh tariff, rounded half-up once (computed here, not by the tariff)."""
    return int((PER_KWH * wh / 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass
class Account:
    """What the test expects of one account."""

    id: int
    topups: dict[str, int] = field(default_factory=dict)  # idempotency key → amount (the first one wins)
    captured: int = 0

    @property
    def balance(self) -> int:
        """Top-ups less captures."""
        return sum(self.topups.values()) - self.captured


@dataclass
class Session:
    """What the test expects of one 1.6 session (the edge's transaction id is `tx_id`)."""

    tx_id: int
    charger: str
    connector: int
    uid: str
    account: int
    status: str
    hold: int
    payload: dict[str, Any]
    meter_start: int
    meter: int
    last_ts: datetime
    stop_payload: dict[str, Any] | None = None
    settled: bool = False
    cost: int = 0
    captured: int = 0
    hold_stop: bool = False  # `running` has reported the hold used up

    @property
    def accepted(self) -> bool:
        """The start was accepted (and, a commercial card, held)."""
        return self.status == "Accepted"

    @property
    def open(self) -> bool:
        """The charger has not stopped it yet."""
        return self.stop_payload is None


START_ARGS = {"slot": st.integers(0, len(SLOTS) - 1), "meter_start": st.integers(0, 10**6),
              "lower": st.booleans(), "retry": st.sampled_from(["no", "same", "new id"])}


class LedgerMachine(RuleBasedStateMachine):
    """The billing library on a real SQLite file against a model of what it should hold."""

    billing_settings = billing.BillingSettings(currency=CURRENCY, min_start_balance=MIN_START, max_hold=MAX_HOLD,
                                               overdraft_limit=0, tariff=Tariff(per_kwh=PER_KWH))

    cards_bundle = Bundle("cards")
    topup_keys = Bundle("topup_keys")

    def __init__(self) -> None:
        super().__init__()
        self._saved_settings = billing.SETTINGS
        billing.configure(self.billing_settings)
        self.dir = tempfile.mkdtemp(prefix="ledger-prop-", dir=SCRATCH)
        self.path = str(Path(self.dir) / "site.db")
        self.store = Store.open(self.path)
        self.accounts: dict[int, Account] = {}
        self.card_account: dict[str, int] = {}
        self.sessions: dict[int, Session] = {}
        self.next_tx = 1
        self.clock = T0
        self.topup_count = 0
        self.deepest = 0  # the lowest available of any account so far

    def teardown(self) -> None:
        if currently_in_test_context():  # not when a test below replays a sequence by hand
            target(float(-self.deepest), label="deepest debt")  # steer the search towards the limit
        self.store.close()
        billing.configure(self._saved_settings)
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------------------------
    @property
    def overdraft(self) -> int:
        """The variant's overdraft limit (minor units)."""
        return self.billing_settings.overdraft_limit

    def tick(self, minutes: int) -> datetime:
        """Advance the chargers' clock."""
        self.clock += timedelta(minutes=minutes)
        return self.clock

    def new_tx_id(self) -> int:
        """The edge's next 1.6 transaction id (as the daemon draws them)."""
        tx_id, self.next_tx = self.next_tx, self.next_tx + 1
        return tx_id

    def model_held(self, account_id: int) -> int:
        """What the model expects on hold: the holds of sessions not yet billed."""
        return sum(s.hold for s in self.sessions.values() if s.account == account_id and not s.settled)

    def model_available(self, account_id: int) -> int:
        """What the model expects to be available: balance − held."""
        return self.accounts[account_id].balance - self.model_held(account_id)

    def rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Rows of a query on the store's read connection (what is committed)."""
        return self.store.db.execute(sql, args).fetchall()

    def dump(self) -> dict[str, list[tuple]]:
        """Every row of the billing tables, in a fixed order."""
        return {t: sorted(map(tuple, self.rows(f"SELECT * FROM {t}")), key=repr) for t in TABLES}

    def settle_in_model(self, s: Session) -> None:
        """The bill of a stopped session: its cost, captured up to its hold plus the overdraft limit, and never
        so far that the account's available drops below -overdraft_limit (other sessions may hold too)."""
        assert s.stop_payload is not None
        s.cost = expected_cost(s.stop_payload["meterStop"] - s.meter_start)
        room = self.model_available(s.account) + s.hold + self.overdraft  # this session's hold still counts
        s.captured = min(s.cost, s.hold + self.overdraft, room)
        s.settled = True
        self.accounts[s.account].captured += s.captured

    # -- rules --------------------------------------------------------------------------------------------
    @initialize(target=cards_bundle, amount=st.integers(MAX_HOLD + MIN_START, 2 * MAX_HOLD))
    def fleet_account(self, amount: int) -> Any:
        """A fleet account with two cards and a first top-up: enough for one full hold and a second start."""

        def fn(c: sqlite3.Connection) -> int:
            first = cards.add_card(c, FLEET[0], "commercial", name="fleet")
            cards.add_card(c, FLEET[1], "commercial", account_id=first.account_id)
            ledger.post(c, first.account_id, "topup", amount, key="cmd:topup:fleet", currency=CURRENCY)
            return first.account_id

        account_id = self.store.write_now(fn)
        self.accounts[account_id] = Account(account_id, {"cmd:topup:fleet": amount})
        self.card_account.update({FLEET[0]: account_id, FLEET[1]: account_id})
        return multiple(*FLEET)

    @rule(target=cards_bundle, uid=st.sampled_from(UIDS), share=st.booleans(), data=st.data())
    def add_card(self, uid: str, share: bool, data: st.DataObject) -> Any:
        """A commercial card on a new account, or (share) a further card on an existing account."""
        account_id = data.draw(st.sampled_from(sorted(self.accounts))) if share and self.accounts else None
        if uid in self.card_account:
            try:
                self.store.write_now(lambda c: cards.add_card(c, uid, "commercial", name="again"))
            except cards.CardError:
                return multiple()
            raise AssertionError(f"card {uid} was registered twice")
        card = self.store.write_now(lambda c: cards.add_card(c, uid.lower(), "commercial", account_id=account_id,
                                                             name=f"driver {uid}"))
        assert card.uid == uid and card.kind == "commercial" and card.status == "active"
        if account_id is None:
            assert card.account_id not in self.accounts
            self.accounts[card.account_id] = Account(card.account_id)
        else:
            assert card.account_id == account_id
        self.card_account[uid] = card.account_id
        return uid

    @rule(target=topup_keys, uid=cards_bundle, amount=st.integers(1, 3000))
    def top_up(self, uid: str, amount: int) -> str:
        """A top-up command for the account of card `uid`, with a new idempotency key."""
        self.topup_count += 1
        key = f"cmd:topup:{self.topup_count}"
        account_id = self.card_account[uid]
        _, added = self.store.write_now(
            lambda c: ledger.post(c, account_id, "topup", amount, key=key, currency=CURRENCY))
        assert added
        self.accounts[account_id].topups[key] = amount
        return key

    @rule(key=topup_keys, amount=st.integers(1, 3000))
    def replay_top_up(self, key: str, amount: int) -> None:
        """The same top-up command again (same key; the amount may even differ): nothing changes."""
        account_id = next(a.id for a in self.accounts.values() if key in a.topups)
        before = self.dump()
        entry_id, added = self.store.write_now(
            lambda c: ledger.post(c, account_id, "topup", amount, key=key, currency=CURRENCY))
        assert not added
        assert self.rows("SELECT key FROM ledger WHERE id = ?", (entry_id,)) == [(key,)]
        assert self.dump() == before

    @rule(uid=cards_bundle, **START_ARGS)
    def start(self, uid: str, slot: int, meter_start: int, lower: bool, retry: str) -> None:
        """A card taps and a charger sends StartTransaction (see `_start`)."""
        self._start(uid, slot, meter_start, lower, retry)

    @rule(uid=st.sampled_from(FLEET), **START_ARGS)
    def start_fleet(self, uid: str, slot: int, meter_start: int, lower: bool, retry: str) -> None:
        """A fleet card taps: two fleet sessions at once share one account's balance."""
        self._start(uid, slot, meter_start, lower, retry)

    def _start(self, uid: str, slot: int, meter_start: int, lower: bool, retry: str) -> None:
        """A StartTransaction on the first free connector from `slot` on (idTag maybe in lower-case hex).

        A refused start is stopped at once (StopTransactionOnInvalidId). `retry`: the charger sends the same
        StartTransaction again (its answer was lost) with the same record, or as the controller does, with a
        newly drawn id; either way the first decision, id and hold come back and nothing is held twice.
        """
        busy_slots = {(s.charger, s.connector) for s in self.sessions.values() if s.open}
        free = [x for x in SLOTS[slot:] + SLOTS[:slot] if x not in busy_slots]
        if not free:
            return
        charger, connector = free[0]
        account_id = self.card_account[uid]
        payload = {"connectorId": connector, "idTag": uid.lower() if lower else uid, "meterStart": meter_start,
                   "timestamp": iso(self.tick(1))}
        busy = any(s.open and s.uid == uid for s in self.sessions.values())
        available = self.model_available(account_id)
        if busy:
            status = "ConcurrentTx"
        elif available < self.billing_settings.min_start_balance:
            status = "Blocked"
        else:
            status = "Accepted"
        hold = max(0, min(available, self.billing_settings.max_hold)) if status == "Accepted" else 0

        tx_id = self.new_tx_id()
        tx = vars(observe.start_op_16(charger, tx_id, payload, offline=False))
        out = self.store.write_now(lambda c: billing.decide(c, uid=uid, charger_id=charger, version="1.6",
                                                            kind="start", tx=tx))
        assert out["known"] and out["account_id"] == account_id
        assert (out["status"], out["tx_id"], out["hold_minor"]) == (status, tx_id, hold), out
        self.sessions[tx_id] = Session(tx_id, charger, connector, uid, account_id, status, hold, payload,
                                       meter_start, meter_start, self.clock)
        if retry != "no":
            again = tx if retry == "same" else vars(observe.start_op_16(charger, self.new_tx_id(), payload,
                                                                        offline=False))
            before = self.dump()
            rep = self.store.write_now(lambda c: billing.decide(c, uid=uid, charger_id=charger, version="1.6",
                                                                kind="start", tx=again))
            assert rep["tx_id"] == tx_id, f"a retried start got a new transaction: {rep}, first {out}"
            assert rep["hold_minor"] == hold, f"a retried start got another hold: {rep}, first {out}"
            assert self.dump() == before, "a retried start changed the database"
            assert rep["status"] == status, f"a retried start got another decision: {rep}, first {out}"
        if status != "Accepted":
            self._stop(self.sessions[tx_id], 0, 0, "DeAuthorized", settle=True)

    def _open(self, data: st.DataObject, accepted_only: bool = True) -> Session | None:
        """One of the open sessions, drawn by Hypothesis, or None."""
        open_ = sorted(t for t, s in self.sessions.items() if s.open and (s.accepted or not accepted_only))
        return self.sessions[data.draw(st.sampled_from(open_))] if open_ else None

    @precondition(lambda self: any(s.open and s.accepted for s in self.sessions.values()))
    @rule(data=st.data(), wh=st.integers(0, 1500), minutes=st.integers(1, 15))
    def meter_values(self, data: st.DataObject, wh: int, minutes: int) -> None:
        """A periodic MeterValues of an open session, then the running cost (as the controller asks)."""
        s = self._open(data)
        if s is None:
            return
        s.meter += wh
        s.last_ts = self.tick(minutes)
        payload = {"connectorId": s.connector, "transactionId": s.tx_id, "meterValue": [{
            "timestamp": iso(s.last_ts), "sampledValue": [
                {"value": str(s.meter), "measurand": observe.ENERGY, "unit": "Wh", "context": "Sample.Periodic"},
                {"value": "16.0", "measurand": "Current.Import", "unit": "A"}]}]}

        def fn(c: sqlite3.Connection) -> dict:
            persist.apply(c, observe.meter_ops_16(s.charger, payload))
            return billing.running(c, charger_id=s.charger, tx_key=str(s.tx_id))

        out = self.store.write_now(fn)
        cost = expected_cost(s.meter - s.meter_start)
        assert out["running_minor"] == cost and out["hold_minor"] == s.hold and out["tx_id"] == s.tx_id, out
        assert out["stop"] == (cost >= s.hold and not s.hold_stop), out
        s.hold_stop = s.hold_stop or out["stop"]

    def _stop(self, s: Session, wh: int, minutes: int, reason: str, *, settle: bool) -> None:
        s.meter += wh
        s.last_ts = self.tick(minutes)
        s.stop_payload = {"transactionId": s.tx_id, "meterStop": s.meter, "timestamp": iso(s.last_ts),
                          "reason": reason}
        if settle:
            self.store.write_now(lambda c: persist.apply(c, observe.stop_ops_16(s.charger, s.stop_payload or {})))
            if s.accepted:
                self.settle_in_model(s)
        else:  # the stop recorded without its bill (what `reconcile` is for: a crash in between)
            self.store.write_now(lambda c: c.execute(
                "UPDATE transactions SET meter_stop = ?, stopped_at = ?, stop_reason = ?,"
                " energy_wh = ? - meter_start WHERE id = ?",
                (s.meter, iso(s.last_ts), reason, s.meter, s.tx_id)))

    @precondition(lambda self: any(s.open and s.accepted for s in self.sessions.values()))
    @rule(data=st.data(), wh=st.integers(0, 10000), minutes=st.integers(0, 15), billed=st.booleans())
    def stop(self, data: st.DataObject, wh: int, minutes: int, billed: bool) -> None:
        """StopTransaction (billed in the same transaction), or a stop whose bill is missing (billed=False)."""
        s = self._open(data)
        if s is not None:
            self._stop(s, wh, minutes, "Local", settle=billed)

    @precondition(lambda self: any(not s.open for s in self.sessions.values()))
    @rule(data=st.data(), how=st.sampled_from(["stop frame", "settle_session"]))
    def settle_again(self, data: st.DataObject, how: str) -> None:
        """A replayed StopTransaction, or `settle_session` once more: a billed session does not change.

        A stop whose bill is missing (see `stop`) is billed by its replayed StopTransaction, once.
        """
        s = self.sessions[data.draw(st.sampled_from(sorted(t for t, s in self.sessions.items() if not s.open)))]
        if s.accepted and not s.settled:
            self.store.write_now(lambda c: persist.apply(c, observe.stop_ops_16(s.charger, s.stop_payload or {})))
            self.settle_in_model(s)
            return
        before = self.dump()
        if how == "stop frame":
            self.store.write_now(lambda c: persist.apply(c, observe.stop_ops_16(s.charger, s.stop_payload or {})))
        else:
            out = self.store.write_now(lambda c: billing.settle_session(c, s.charger, str(s.tx_id)))
            if s.accepted:
                assert out is not None and out["captured_minor"] == s.captured and not out["settled_now"], out
            else:
                assert out is None, out
        assert self.dump() == before, "a replayed stop or settlement changed the database"

    @rule()
    def reconcile(self) -> None:
        """Bill every stopped session whose bill is missing; nothing else changes."""
        unbilled = [s for s in self.sessions.values() if s.accepted and not s.open and not s.settled]
        n = self.store.write_now(billing.reconcile)
        assert n == len(unbilled)
        for s in unbilled:
            self.settle_in_model(s)
        before = self.dump()
        assert self.store.write_now(billing.reconcile) == 0
        assert self.dump() == before

    @rule()
    def reopen(self) -> None:
        """Close the store and open it again on the same file: the same rows, and billing carries on."""
        before = self.dump()
        self.store.close()
        self.store = Store.open(self.path)
        assert self.dump() == before
        assert self.rows("PRAGMA integrity_check") == [("ok",)]

    def check(self) -> None:
        """All invariants (for the replays below, which run without Hypothesis's runner)."""
        self.available_within_overdraft()
        self.billed_sessions_reach_the_outbox()
        self.ledger_is_consistent()
        self.sessions_agree()

    # -- invariants ---------------------------------------------------------------------------------------
    @invariant()
    def available_within_overdraft(self) -> None:
        lowest = 0
        for account_id in self.accounts:
            available = ledger.available(self.store.db.conn, account_id)
            lowest = min(lowest, available)
            assert available >= -self.overdraft, \
                f"account {account_id}: available {available} below -overdraft_limit {-self.overdraft}"
        self.deepest = min(self.deepest, lowest)

    @invariant()
    def ledger_is_consistent(self) -> None:
        entries = self.rows("SELECT id, account_id, kind, amount_minor, currency, session_id, key FROM ledger")
        keys = [e[6] for e in entries]
        assert len(keys) == len(set(keys)), "a ledger key is used twice"
        assert all(e[4] == CURRENCY for e in entries)
        assert all(e[3] >= 0 for e in entries if e[2] != "adjustment")

        per_session: dict[int, dict[str, list[int]]] = {}
        for _, _, kind, amount, _, session_id, _ in entries:
            if session_id is not None:
                per_session.setdefault(session_id, {}).setdefault(kind, []).append(amount)
        for session_id, kinds in per_session.items():
            for kind in ("hold", "capture", "release"):
                assert len(kinds.get(kind, [])) <= 1, f"session {session_id} has {len(kinds[kind])} {kind}s"
            hold = sum(kinds.get("hold", [0]))
            if "capture" in kinds:
                capture = kinds["capture"][0]
                assert capture <= hold + self.overdraft, f"session {session_id}: capture {capture}, hold {hold}"
                assert sum(kinds.get("release", [0])) == max(0, hold - capture)
            else:
                assert "release" not in kinds, f"session {session_id} released before its capture"

        # the cloud's copy: every posted entry queued once, its running balance adding up per account
        records = [json.loads(b) for (b,) in self.rows("SELECT body FROM outbox WHERE kind = 'ledger' ORDER BY seq")]
        assert sorted(r["entry_key"] for r in records) == sorted(e[6] for e in entries if e[2] in SIGN)
        running: dict[int, int] = {}
        for r in records:
            running[r["account_id"]] = running.get(r["account_id"], 0) + r["signed_minor"]
            assert r["balance_minor"] == running[r["account_id"]], f"outbox record {r} after {running}"

        for account_id, model in self.accounts.items():
            mine = [e for e in entries if e[1] == account_id]
            posted = sum(SIGN[e[2]] * e[3] for e in mine if e[2] in SIGN)
            held = sum(e[3] for e in mine if e[2] == "hold" and "capture" not in per_session.get(e[5], {}))
            conn = self.store.db.conn
            assert ledger.balance(conn, account_id) == posted == model.balance, \
                f"account {account_id}: balance {ledger.balance(conn, account_id)}, entries {posted}," \
                f" model {model.balance}"
            assert ledger.held(conn, account_id) == held == self.model_held(account_id), \
                f"account {account_id}: held {ledger.held(conn, account_id)}, entries {held}," \
                f" model {self.model_held(account_id)}"
            available = ledger.available(conn, account_id)
            assert available == posted - held
        assert ledger.audit(self.store.db.conn) == [], "the kept balances are the sums of the entries"

    @invariant()
    def billed_sessions_reach_the_outbox(self) -> None:
        """Every stopped session that is billed (or not billable: refused) is queued for the cloud, once."""
        records = {}
        for key, body in self.rows("SELECT key, body FROM outbox WHERE kind = 'session'"):
            assert key not in records
            records[key] = json.loads(body)
        for s in self.sessions.values():
            key = f"session:{s.charger}:{s.tx_id}"
            if s.open or (s.accepted and not s.settled):
                assert key not in records, f"session {s.tx_id} queued before its stop and bill: {records[key]}"
                continue
            assert key in records, f"session {s.tx_id} is billed but its record is not queued for the cloud"
            r = records[key]
            assert (r["session_id"], r["captured_minor"] or 0, r["hold_minor"] or 0) == (s.tx_id, s.captured, s.hold)

    @invariant()
    def sessions_agree(self) -> None:
        rows = {r[0]: r for r in self.rows(
            "SELECT id, account_id, id_tag, hold_minor, cost_minor, captured_minor, uncollected_minor,"
            " stopped_at, meter_stop FROM transactions")}
        assert set(rows) == set(self.sessions)
        holds = dict(self.rows("SELECT session_id, amount_minor FROM ledger WHERE kind = 'hold'"))
        captures = dict(self.rows("SELECT session_id, amount_minor FROM ledger WHERE kind = 'capture'"))
        for tx_id, s in self.sessions.items():
            _, account_id, id_tag, hold, cost, captured, uncollected, stopped_at, meter_stop = rows[tx_id]
            assert (stopped_at is None) == s.open
            if not s.accepted:
                assert account_id is None and tx_id not in holds and tx_id not in captures
                continue
            assert (account_id, id_tag) == (s.account, s.uid)
            assert hold == holds.get(tx_id) == s.hold, f"session {tx_id}: hold column {hold}, ledger" \
                f" {holds.get(tx_id)}, model {s.hold}"
            if not s.settled:
                assert captured is None and tx_id not in captures
                continue
            assert meter_stop == s.meter
            assert (cost, captured) == (s.cost, s.captured), f"session {tx_id}: cost/captured {cost}/{captured}," \
                f" model {s.cost}/{s.captured}"
            assert captures[tx_id] == captured
            assert captured <= hold + self.overdraft
            assert uncollected == cost - captured >= 0


class LedgerOverdraftMachine(LedgerMachine):
    """The same with an overdraft limit: a late overrun beyond the hold becomes debt, within the limit."""

    billing_settings = billing.BillingSettings(currency=CURRENCY, min_start_balance=MIN_START, max_hold=MAX_HOLD,
                                               overdraft_limit=600, tariff=Tariff(per_kwh=PER_KWH))


TestLedger = LedgerMachine.TestCase
TestLedger.settings = RUN_SETTINGS
TestLedgerOverdraft = LedgerOverdraftMachine.TestCase
TestLedgerOverdraft.settings = RUN_SETTINGS
