"""Conformance, groups and the master pass (OCPP 2.0.1 C09 and C16; 1.6 parentIdTag): the cards of one user
share a group, so a tap with any of them stops the user's session, and a master pass (site attendants) stops
any session and starts none. A mock charger sends the test case's frames over a real socket to a standalone
edge; the sessions are billed to whoever started them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from conftest import wait_for
from ocpp.routing import on
from ocpp.v201 import ChargePoint as CP201
from ocpp.v201 import call_result as result201
from peers import Charger
from test_authorization import authorize_201, mock, site

from edge.billing import cards, ledger, owner
from edge.store.sqlite import Store

FIRST, SECOND, OTHER, MASTER = "04A1A1A1", "04A1A1A2", "04B2B2B2", "04FFFF01"


def write(edge, fn):
    store = Store.open(edge.db_path)
    try:
        return store.write_now(fn)
    finally:
        store.close()


def family(edge, topup: int = 0) -> str:
    """Two cards of one user (commercial, with `topup` minor units), one of another user, one master pass
    card; returns the first user's group id."""
    def fn(c):
        first = cards.add_card(c, FIRST, "commercial", name="Maria Santos")
        cards.add_card(c, SECOND, "commercial", account_id=first.account_id)
        other = cards.add_card(c, OTHER, "commercial", name="Jose Rizal")
        for account in (first.account_id, other.account_id):
            if topup:
                ledger.post(c, account, "topup", topup, key=f"t-{account}", currency="PHP")
        attendant = cards.add_card(c, MASTER, "personal", name="Attendant")
        owner.set_master_pass(c, attendant.account_id, True)
        return cards.group_of(first.account_id)
    return write(edge, fn)


def event_201(msg_id: str, event: str, tx: str, seq: int, wh: int, uid: str | None = None, evse: int = 1,
              trigger: str = "Authorized", **info) -> str:
    p: dict = {"eventType": event, "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "triggerReason": trigger, "seqNo": seq, "transactionInfo": {"transactionId": tx, **info},
               "evse": {"id": evse, "connectorId": 1},
               "meterValue": [{"timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                               "sampledValue": [{"value": wh, "measurand": "Energy.Active.Import.Register"}]}]}
    if uid:
        p["idToken"] = {"idToken": uid, "type": "ISO14443"}
    return json.dumps([2, msg_id, "TransactionEvent", p])


def billed(edge, tx_key: str) -> tuple:
    (row,) = edge.query("SELECT t.id_tag, a.name, t.stopped_at IS NOT NULL FROM transactions t"
                        " JOIN accounts a ON a.id = t.account_id WHERE t.tx_key = ?", (tx_key,))
    return row


async def test_TC_C_39_CSMS_a_card_of_the_same_user_stops_the_session(edge_factory):
    """C09.FR.02/03: both cards are answered with the user's groupIdToken, before and during the session; the
    second stops the first one's session. The user's balance is all held by the session (below the minimum
    to start), yet the second card's tap is Accepted: it stops, it does not start."""
    edge = edge_factory(site())
    group = family(edge, topup=6000)
    ch = await mock(edge, "2.0.1", "OCTT-C39")
    ours = {"idToken": group, "type": "Central"}
    step2 = await ch.raw(authorize_201(SECOND))
    assert step2[2]["idTokenInfo"] == {"status": "Accepted", "groupIdToken": ours}
    step4 = await ch.raw(event_201("e1", "Started", "TX-C39", 0, 1000, FIRST))
    assert step4[2]["idTokenInfo"] == {"status": "Accepted", "groupIdToken": ours}
    await ch.raw(event_201("e2", "Updated", "TX-C39", 1, 2500, trigger="ChargingStateChanged",
                           chargingState="Charging"))
    step7 = await ch.raw(authorize_201(SECOND))
    assert step7[2]["idTokenInfo"] == {"status": "Accepted", "groupIdToken": ours}
    other = await ch.raw(authorize_201(OTHER))  # another user's card: its own group, not this one
    assert other[2]["idTokenInfo"]["groupIdToken"]["idToken"] not in (group, cards.MASTER_GROUP)
    step9 = await ch.raw(event_201("e3", "Updated", "TX-C39", 2, 3000, SECOND, trigger="StopAuthorized"))
    assert step9[2]["idTokenInfo"] == {"status": "Accepted", "groupIdToken": ours}
    ended = await ch.raw(event_201("e4", "Ended", "TX-C39", 3, 3000, SECOND, trigger="StopAuthorized",
                                   stoppedReason="Local"))
    assert ended[2]["idTokenInfo"] == {"status": "Accepted", "groupIdToken": ours}
    assert billed(edge, "TX-C39") == (FIRST, "Maria Santos", 1)  # the session is the first card's
    await ch.close()


class MasterCharger(CP201):
    """A 2.0.1 charger that takes the settings the edge sets (it records them)."""

    set_to: dict

    @on("SetVariables")
    def set_variables(self, set_variable_data, **kw):
        for d in set_variable_data:
            self.set_to[f"{d['component']['name']}.{d['variable']['name']}"] = d["attribute_value"]
        return result201.SetVariables(set_variable_result=[
            {"attribute_status": "Accepted", "component": d["component"], "variable": d["variable"]}
            for d in set_variable_data])


async def two_sessions(edge, name: str) -> Charger:
    ch = Charger(edge.url, name, "2.0.1", cp_class=MasterCharger)
    await ch.connect()
    ch.cp.set_to = {}
    boot = [2, "b", "BootNotification", {"chargingStation": {"vendorName": "OCTT", "model": "mock"},
                                         "reason": "PowerUp"}]
    assert (await ch.raw(json.dumps(boot)))[2]["status"] == "Accepted"
    for evse, (uid, tx) in enumerate(((FIRST, "TX-1"), (OTHER, "TX-2")), start=1):
        started = await ch.raw(event_201(f"s{evse}", "Started", tx, 0, 1000, uid, evse=evse))
        assert started[2]["idTokenInfo"]["status"] == "Accepted"
    return ch


async def test_TC_C_47_CSMS_a_master_pass_stops_every_session(edge_factory):
    """C16.FR.01: the master pass is Accepted with the master pass group, which the edge has told the charger
    (AuthCtrlr.MasterPassGroupId); both sessions end with stoppedReason MasterPass and its idToken, and each is
    billed to its own driver, not to the attendant."""
    edge = edge_factory(site())
    family(edge, topup=100_000)
    ch = await two_sessions(edge, "OCTT-C47")
    await wait_for(lambda: ch.cp.set_to.get("AuthCtrlr.MasterPassGroupId") == cards.MASTER_GROUP)
    master = {"status": "Accepted", "groupIdToken": {"idToken": cards.MASTER_GROUP, "type": "Central"}}
    assert (await ch.raw(authorize_201(MASTER)))[2]["idTokenInfo"] == master
    for evse, tx in ((1, "TX-1"), (2, "TX-2")):
        ended = await ch.raw(event_201(f"m{evse}", "Ended", tx, 1, 4000, MASTER, evse=evse, trigger="StopAuthorized",
                                       stoppedReason="MasterPass"))
        assert ended[2]["idTokenInfo"] == master
    assert billed(edge, "TX-1") == (FIRST, "Maria Santos", 1)
    assert billed(edge, "TX-2") == (OTHER, "Jose Rizal", 1)
    assert edge.query("SELECT count(*) FROM ledger l JOIN accounts a ON a.id = l.account_id"
                      " WHERE a.name = 'Attendant'") == [(0,)]
    await ch.close()


async def test_TC_C_48_CSMS_a_master_pass_stops_the_session_chosen_and_starts_none(edge_factory):
    """C16.FR.01 with a UI: the attendant stops one session; the other charges on. A master pass that tries to
    start a session is refused: it stops sessions and nothing else."""
    edge = edge_factory(site())
    family(edge, topup=100_000)
    ch = await two_sessions(edge, "OCTT-C48")
    assert (await ch.raw(authorize_201(FIRST)))[2]["idTokenInfo"]["status"] == "Accepted"
    ended = await ch.raw(event_201("m", "Ended", "TX-2", 1, 4000, MASTER, evse=2, trigger="StopAuthorized",
                                   stoppedReason="MasterPass"))
    assert ended[2]["idTokenInfo"] == {"status": "Accepted",
                                       "groupIdToken": {"idToken": cards.MASTER_GROUP, "type": "Central"}}
    assert billed(edge, "TX-2")[2] == 1 and billed(edge, "TX-1")[2] == 0
    start = await ch.raw(event_201("x", "Started", "TX-3", 0, 0, MASTER, evse=3))
    assert start[2]["idTokenInfo"]["status"] == "Invalid"
    assert edge.query("SELECT auth_status, account_id FROM transactions WHERE tx_key = 'TX-3'") == [("Invalid", None)]
    await ch.close()


async def test_TC_C_49_CSMS_a_master_pass_without_ui_ends_each_session_under_its_own_card(edge_factory):
    """C16.FR.02: without a UI the charger ends every session, each TransactionEvent carrying the session's own
    idToken; the edge answers each Accepted with that card's group."""
    edge = edge_factory(site())
    group = family(edge, topup=100_000)
    ch = await two_sessions(edge, "OCTT-C49")
    assert (await ch.raw(authorize_201(MASTER)))[2]["idTokenInfo"]["status"] == "Accepted"
    ended = await ch.raw(event_201("m1", "Ended", "TX-1", 1, 4000, FIRST, trigger="StopAuthorized",
                                   stoppedReason="MasterPass"))
    assert ended[2]["idTokenInfo"] == {"status": "Accepted", "groupIdToken": {"idToken": group, "type": "Central"}}
    ended = await ch.raw(event_201("m2", "Ended", "TX-2", 1, 4000, OTHER, evse=2, trigger="StopAuthorized",
                                   stoppedReason="MasterPass"))
    assert ended[2]["idTokenInfo"]["status"] == "Accepted"
    assert billed(edge, "TX-1")[2] == billed(edge, "TX-2")[2] == 1
    await ch.close()


def start_16(msg_id: str, uid: str, connector: int = 1) -> str:
    return json.dumps([2, msg_id, "StartTransaction", {"connectorId": connector, "idTag": uid, "meterStart": 0,
                                                       "timestamp": "2026-12-07T10:00:00Z"}])


async def test_1_6_parent_id_tag_a_card_of_the_same_user_stops_and_a_master_pass_borrows_the_group(edge_factory):
    """1.6 §3.10 (Parent idTag): a charger stops a session for an idTag with the same parentIdTag as the one that started
    it. The user's second card gets the user's group even with all the balance held; 1.6 has no master pass,
    so the edge gives a master card the group of the session at that charger, valid for a minute only (the
    charger's cache must not keep it), and Invalid where nothing charges. A master card starts nothing."""
    edge = edge_factory(site())
    group = family(edge, topup=6000)
    ch = await mock(edge, "1.6", "OCTT-16-GRP")
    idle = await ch.raw(json.dumps([2, "a0", "Authorize", {"idTag": MASTER}]))
    assert idle[2]["idTagInfo"]["status"] == "Invalid"
    start = await ch.raw(start_16("s", FIRST))
    assert start[2]["idTagInfo"] == {"status": "Accepted", "parentIdTag": group}
    second = await ch.raw(json.dumps([2, "a1", "Authorize", {"idTag": SECOND}]))
    assert second[2] == {"idTagInfo": {"status": "Accepted", "parentIdTag": group}}
    other = await ch.raw(json.dumps([2, "a2", "Authorize", {"idTag": OTHER}]))
    assert other[2]["idTagInfo"]["parentIdTag"] != group
    master = (await ch.raw(json.dumps([2, "a3", "Authorize", {"idTag": MASTER}])))[2]["idTagInfo"]
    assert master["status"] == "Accepted" and master["parentIdTag"] == group
    left = datetime.fromisoformat(master["expiryDate"].replace("Z", "+00:00")) - datetime.now(UTC)
    assert 0 < left.total_seconds() <= 61
    refused = await ch.raw(start_16("s2", MASTER, connector=2))
    assert refused[2]["idTagInfo"]["status"] == "Invalid"
    stop = await ch.raw(json.dumps([2, "t", "StopTransaction", {
        "transactionId": start[2]["transactionId"], "idTag": SECOND, "meterStop": 2000,
        "timestamp": "2026-12-07T10:30:00Z"}]))
    assert stop[2] == {"idTagInfo": {"status": "Accepted", "parentIdTag": group}}
    assert billed(edge, str(start[2]["transactionId"])) == (FIRST, "Maria Santos", 1)
    await ch.close()
