"""Conformance, authorization: what the OCA's CSMS test cases (OCPP-2.0.1 part 6, and the 1.6 specification
where 1.6 has no test case text here) expect of the edge as a CSMS. A mock charger sends the test case's
frames over a real socket to a standalone edge and checks the edge's answers field by field."""

from __future__ import annotations

import json

import pytest
from peers import Charger
from test_taps import add_card

from edge.billing import cards
from edge.store.sqlite import Store


def site() -> dict:
    return {"site": {"accept_unknown_cards": False}}  # a site that sells charging: a card must be registered

CARD, BLOCKED = "04C0FFEE", "04C0FFEF"


def block(edge, uid: str) -> None:
    store = Store.open(edge.db_path)
    try:
        store.write_now(lambda c: cards.update_card(c, uid, status="blocked"))
    finally:
        store.close()


async def mock(edge, version: str, name: str) -> Charger:
    ch = await Charger(edge.url, name, version).connect()
    boot = ({"chargePointVendor": "OCTT", "chargePointModel": "mock"} if version == "1.6" else
            {"chargingStation": {"vendorName": "OCTT", "model": "mock"}, "reason": "PowerUp"})
    assert (await ch.raw(json.dumps([2, "b", "BootNotification", boot])))[2]["status"] == "Accepted"
    return ch


def authorize_201(uid: str) -> str:
    return json.dumps([2, "a", "Authorize", {"idToken": {"idToken": uid, "type": "ISO14443"}}])


async def test_TC_C_02_CSMS_an_unknown_id_token_is_not_valid(edge_factory):
    edge = edge_factory(site())
    ch = await mock(edge, "2.0.1", "OCTT-C02")
    answer = await ch.raw(authorize_201("04DEADBEEF"))
    assert answer[:2] == [3, "a"] and answer[2]["idTokenInfo"]["status"] in ("Invalid", "Unknown")
    await ch.close()


async def test_TC_C_06_CSMS_a_blocked_id_token_is_blocked(edge_factory):
    edge = edge_factory(site())
    add_card(edge, BLOCKED, "personal")
    block(edge, BLOCKED)
    ch = await mock(edge, "2.0.1", "OCTT-C06")
    assert (await ch.raw(authorize_201(BLOCKED)))[2]["idTokenInfo"]["status"] in ("Blocked", "Invalid")
    await ch.close()


@pytest.mark.parametrize("kind", ["personal", "commercial"])
async def test_1_6_section_7_2_authorize_of_a_card_in_a_session_answers_its_status_not_concurrent_tx(
        edge_factory, kind):
    """1.6 §7.2 AuthorizationStatus: ConcurrentTx is "only relevant for a StartTransaction.req". A driver who taps
    the card that charges is Authorized (the charger may then stop: how a driver stops by a tap); a second
    start with it is still refused with ConcurrentTx."""
    edge = edge_factory(site())
    add_card(edge, CARD, kind, topup=100_000)
    ch = await mock(edge, "1.6", f"OCTT-16-{kind}")
    start = await ch.raw(json.dumps([2, "s", "StartTransaction", {"connectorId": 1, "idTag": CARD, "meterStart": 0,
                                                                  "timestamp": "2026-12-07T10:00:00Z"}]))
    assert start[2]["idTagInfo"]["status"] == "Accepted"
    tap = await ch.raw(json.dumps([2, "a", "Authorize", {"idTag": CARD}]))
    assert tap == [3, "a", {"idTagInfo": {"status": "Accepted", "parentIdTag": cards.group_of(1)}}]  # its user's
    again = await ch.raw(json.dumps([2, "s2", "StartTransaction", {"connectorId": 2, "idTag": CARD, "meterStart": 0,
                                                                   "timestamp": "2026-12-07T10:01:00Z"}]))
    assert again[2]["idTagInfo"]["status"] == "ConcurrentTx"
    stop = await ch.raw(json.dumps([2, "t", "StopTransaction", {"transactionId": start[2]["transactionId"],
                                                                "idTag": CARD, "meterStop": 1000,
                                                                "timestamp": "2026-12-07T10:30:00Z"}]))
    assert stop[2]["idTagInfo"]["status"] == "Accepted"
    block(edge, CARD)
    assert (await ch.raw(json.dumps([2, "a2", "Authorize", {"idTag": CARD}])))[2]["idTagInfo"]["status"] == "Blocked"
    await ch.close()


def add_expiring(edge, uid: str, expires: str) -> None:
    store = Store.open(edge.db_path)
    try:
        store.write_now(lambda c: cards.add_card(c, uid, "personal", name="Attendant", expires=expires))
    finally:
        store.close()


async def test_TC_C_07_CSMS_an_expired_id_token_is_expired(edge_factory):
    edge = edge_factory(site())
    add_expiring(edge, CARD, "2020-01-01T00:00:00Z")
    ch = await mock(edge, "2.0.1", "OCTT-C07")
    info = (await ch.raw(authorize_201(CARD)))[2]["idTokenInfo"]
    assert info == {"status": "Expired", "cacheExpiryDateTime": "2020-01-01T00:00:00Z"}
    await ch.close()


async def test_1_6_an_expired_card_is_expired_and_a_valid_one_says_until_when(edge_factory):
    """1.6 §7.2 Expired; §7.28 IdTagInfo.expiryDate: "Date and time after which the identifier must be treated as
    Expired" (also what the charger's authorization cache keeps)."""
    edge = edge_factory(site())
    add_expiring(edge, CARD, "2099-06-30T15:59:59Z")
    add_expiring(edge, BLOCKED, "2020-01-01T00:00:00Z")
    ch = await mock(edge, "1.6", "OCTT-16-EXP")
    valid = await ch.raw(json.dumps([2, "a", "Authorize", {"idTag": CARD}]))
    assert valid[2] == {"idTagInfo": {"status": "Accepted", "expiryDate": "2099-06-30T15:59:59Z",
                                      "parentIdTag": cards.group_of(1)}}
    expired = await ch.raw(json.dumps([2, "b", "Authorize", {"idTag": BLOCKED}]))
    assert expired[2] == {"idTagInfo": {"status": "Expired", "expiryDate": "2020-01-01T00:00:00Z"}}
    start = await ch.raw(json.dumps([2, "s", "StartTransaction", {"connectorId": 1, "idTag": BLOCKED, "meterStart": 0,
                                                                  "timestamp": "2026-12-07T10:00:00Z"}]))
    assert start[2]["idTagInfo"]["status"] == "Expired"
    await ch.close()
