"""Sequences Hypothesis found in the ledger's state machine (`test_ledger_properties.py`), replayed by hand,
one test each (each is a library bug while it fails), and the ledger's audit of the balances it keeps."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from test_ledger_properties import (
    CURRENCY,
    FLEET,
    MAX_HOLD,
    MIN_START,
    LedgerMachine,
    LedgerOverdraftMachine,
    Session,
)

from edge.billing import cards, ledger
from edge.store.sqlite import Store


def replay(machine: LedgerMachine, *steps: Any) -> None:
    """Run `steps` (callables on `machine`) with every invariant checked after each, then tear down."""
    try:
        machine.check()
        for step in steps:
            step(machine)
            machine.check()
    finally:
        machine.teardown()


def _session(m: LedgerMachine, uid: str) -> Session:
    """The open session of card `uid`."""
    return next(s for s in m.sessions.values() if s.uid == uid and s.open)


def test_overdraft_limit_holds_per_account_with_two_sessions() -> None:
    """Two fleet cards charge at once on one account and both overrun their holds: the debt must stay within
    overdraft_limit (600), but each capture is limited per session, so the account ends at -1200."""
    replay(LedgerOverdraftMachine(),
           lambda m: m.fleet_account(amount=MAX_HOLD + MIN_START),  # 1800
           lambda m: m._start(FLEET[0], 0, 0, False, "no"),  # hold 1500
           lambda m: m._start(FLEET[1], 1, 0, False, "no"),  # hold 300
           lambda m: m._stop(_session(m, FLEET[0]), 2000, 30, "Local", settle=True),  # cost 3000, capture 2100
           lambda m: m._stop(_session(m, FLEET[1]), 1000, 30, "Local", settle=True))  # cost 1500, capture 900


def test_retried_start_with_lower_case_id_tag_is_the_same_session() -> None:
    """A 1.6 charger sends its idTag in lower-case hex and retries StartTransaction (new edge id, as the
    controller draws one): the retry must get the first session's id and decision, not ConcurrentTx."""
    replay(LedgerMachine(),
           lambda m: m.fleet_account(amount=MAX_HOLD + MIN_START),
           lambda m: m._start(FLEET[1], 0, 0, True, "new id"))


def test_retried_identical_start_with_lower_case_id_tag_changes_nothing() -> None:
    """The same, retried with the identical record: it is decided afresh (hold_minor rewritten to 300 while
    the ledger's hold stays 1500, cards.last_used touched)."""
    replay(LedgerMachine(),
           lambda m: m.fleet_account(amount=MAX_HOLD + MIN_START),
           lambda m: m._start(FLEET[1], 0, 0, True, "same"))


def test_retried_refused_start_keeps_its_decision() -> None:
    """A refused start (here ConcurrentTx: the card already charges elsewhere) retried: the retry must get the
    first decision, but `_same_start` reports every refused start as Invalid."""
    replay(LedgerMachine(),
           lambda m: m.fleet_account(amount=MAX_HOLD + MIN_START),
           lambda m: m._start(FLEET[0], 0, 0, False, "no"),
           lambda m: m._start(FLEET[0], 1, 0, False, "same"))


def test_reconciled_session_is_queued_for_the_cloud() -> None:
    """A session whose stop was recorded without its bill (what `reconcile` exists for) is billed by
    `reconcile`, but only the stop's store op queues the session record: the cloud never hears of it."""
    replay(LedgerMachine(),
           lambda m: m.fleet_account(amount=MAX_HOLD + MIN_START),
           lambda m: m._start(FLEET[1], 0, 0, False, "no"),
           lambda m: m._stop(_session(m, FLEET[1]), 0, 0, "Local", settle=False),
           lambda m: m.reconcile())


def test_audit_names_an_account_whose_kept_balance_drifted(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "audit.db"))
    try:
        def setup(conn: sqlite3.Connection) -> int:
            card = cards.add_card(conn, "04A0A0A0", "commercial", name="Ana")
            ledger.post(conn, card.account_id, "topup", 10_000, key="t1", currency=CURRENCY)
            return card.account_id

        account = store.write_now(setup)
        assert ledger.audit(store.db.conn) == []
        store.write_now(lambda c: c.execute("UPDATE accounts SET balance_minor = balance_minor + 1 WHERE id = ?",
                                            (account,)))
        assert ledger.audit(store.db.conn) == [{"account_id": account, "balance_minor": 10_001,
                                                "entries_balance_minor": 10_000, "held_minor": 0,
                                                "entries_held_minor": 0}]
    finally:
        store.close()
