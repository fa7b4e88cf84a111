"""The site's own cards through the controller, as a plain object (no sockets, no database): the decision is
asked and answered, the charger hears only after it, the running cost is watched and the session stopped at
its hold, and a repeated Stop is billed once (the shell's `close_session` is idempotent; here: the link asks
for it once per stop it records)."""

from __future__ import annotations

import itertools
import json

from edge.controller import Ask, ChargerLink, LinkSettings, Persist, SendCharger, SendUpstream
from edge.controller.actions import Decide, Decision, Running
from edge.controller.authorize import Authorizer
from edge.controller.records import CloseSession, TxStop

CARD = "04AABBCC"


def link(version: str = "1.6", standalone: bool = True) -> ChargerLink:
    ids = itertools.count(7)
    lk = ChargerLink("CP1", version, LinkSettings(standalone=standalone, call_timeout=5),
                     Authorizer(known={CARD}), lambda prefer=None: next(ids))
    if not standalone:
        lk.upstream_up()
    return lk


def call(msg_id: str, action: str, payload: dict) -> str:
    return json.dumps([2, msg_id, action, payload])


def frames(actions, kind) -> list:
    return [json.loads(a.text) for a in actions if isinstance(a, kind)]


def asks(actions) -> list[Ask]:
    return [a for a in actions if isinstance(a, Ask)]


START = {"connectorId": 1, "idTag": CARD, "meterStart": 1000, "timestamp": "2026-01-01T00:00:00Z"}


def meter(tx: int, wh: int) -> dict:
    return {"connectorId": 1, "transactionId": tx,
            "meterValue": [{"timestamp": "2026-01-01T00:10:00Z", "sampledValue": [{"value": str(wh)}]}]}


def test_a_known_card_waits_for_billing_and_the_charger_hears_its_decision():
    lk = link()
    actions = lk.from_charger(call("s1", "StartTransaction", START))
    assert frames(actions, SendCharger) == [], "nothing is answered before billing has decided"
    (ask,) = asks(actions)
    assert isinstance(ask.question, Decide) and ask.question.uid == CARD and ask.question.kind == "start"
    tx = ask.question.tx.id
    actions = lk.answered(ask.ask_id, Decision(True, "Accepted", tx, 50000))
    (answer,) = frames(actions, SendCharger)
    assert answer[2] == {"transactionId": tx, "idTagInfo": {"status": "Accepted"}}
    assert str(tx) in lk.tx.billed


def test_a_refused_card_is_told_so_and_nothing_is_watched():
    lk = link()
    (ask,) = asks(lk.from_charger(call("s1", "StartTransaction", START)))
    tx = ask.question.tx.id
    actions = lk.answered(ask.ask_id, Decision(True, "Blocked", tx, 0))
    assert frames(actions, SendCharger)[0][2]["idTagInfo"]["status"] == "Blocked"
    assert asks(lk.from_charger(call("m1", "MeterValues", meter(tx, 2000)))) == []


def test_the_session_is_stopped_once_when_its_cost_reaches_the_hold():
    lk = link()
    (ask,) = asks(lk.from_charger(call("s1", "StartTransaction", START)))
    tx = ask.question.tx.id
    lk.answered(ask.ask_id, Decision(True, "Accepted", tx, 10000))
    actions = lk.from_charger(call("m1", "MeterValues", meter(tx, 3000)))
    assert frames(actions, SendCharger) == [[3, "m1", {}]]
    (running,) = asks(actions)
    assert running.question.charger_id == "CP1" and running.question.tx_key == str(tx)
    assert [r["value"] for r in running.question.pending] == ["3000"], "the sample that asked, perhaps not yet written"
    # the meter rows go behind the answer, to share a commit (they are no money): written, not waited for
    assert [a.later for a in actions if isinstance(a, Persist)] == [True]
    assert frames(lk.answered(running.ask_id, Running(False)), SendCharger) == []  # still within the hold
    (running,) = asks(lk.from_charger(call("m2", "MeterValues", meter(tx, 9000))))
    stop = frames(lk.answered(running.ask_id, Running(True)), SendCharger)
    assert stop[0][2] == "RemoteStopTransaction" and stop[0][3] == {"transactionId": tx}
    # later meter values of the same session ask no more (the stop is on its way)
    assert asks(lk.from_charger(call("m3", "MeterValues", meter(tx, 9500)))) == []


def test_201_session_at_its_hold_is_stopped_with_request_stop():
    lk = link("2.0.1")
    started = {"eventType": "Started", "timestamp": "2026-01-01T00:00:00Z", "triggerReason": "Authorized",
               "seqNo": 0, "transactionInfo": {"transactionId": "T1"}, "idToken": {"idToken": CARD, "type": "ISO14443"},
               "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": 0}]}]}
    (ask,) = asks(lk.from_charger(call("e1", "TransactionEvent", started)))
    actions = lk.answered(ask.ask_id, Decision(True, "Accepted", 1, 100))
    assert frames(actions, SendCharger)[0][2] == {"idTokenInfo": {"status": "Accepted"}}
    updated = {**started, "eventType": "Updated", "seqNo": 1, "triggerReason": "MeterValuePeriodic"}
    del updated["idToken"]
    (running,) = asks(lk.from_charger(call("e2", "TransactionEvent", updated)))
    stop = frames(lk.answered(running.ask_id, Running(True)), SendCharger)
    assert stop[0][2:] == ["RequestStopTransaction", {"transactionId": "T1"}]


def test_a_stop_asks_for_the_session_to_be_closed_once_per_stop_recorded():
    lk = link()
    (ask,) = asks(lk.from_charger(call("s1", "StartTransaction", START)))
    tx = ask.question.tx.id
    lk.answered(ask.ask_id, Decision(True, "Accepted", tx, 10000))
    stop = {"transactionId": tx, "meterStop": 4000, "timestamp": "2026-01-01T01:00:00Z"}
    actions = lk.from_charger(call("x1", "StopTransaction", stop))
    ops = [type(op) for a in actions if isinstance(a, Persist) for op in a.ops]
    assert ops.index(TxStop) < ops.index(CloseSession), "the stop row first, then its bill and record"
    assert isinstance(actions[0], Persist) and actions[0].wait, "durable before the charger hears"
    assert frames(actions, SendCharger) == [[3, "x1", {}]]


def test_proxy_live_the_edge_decides_its_card_and_upstream_gives_the_id():
    lk = link(standalone=False)
    (ask,) = asks(lk.from_charger(call("s1", "StartTransaction", START)))
    tx = ask.question.tx.id
    actions = lk.answered(ask.ask_id, Decision(True, "Accepted", tx, 100))
    assert frames(actions, SendCharger) == [] and frames(actions, SendUpstream)[0][1] == "s1"
    actions = lk.from_upstream(json.dumps([3, "s1", {"transactionId": 555, "idTagInfo": {"status": "Invalid"}}]))
    answer = frames(actions, SendCharger)[0]
    assert answer[2] == {"transactionId": tx, "idTagInfo": {"status": "Accepted"}}, "the edge's word on its card"
    assert lk.tx.id_map[tx] == 555
