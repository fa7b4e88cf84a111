"""Conformance, tariff and cost (OCPP 2.0.1 I03.FR.02; part 6 has no test case text for I yet): the edge prices
every session of the site's cards and tells the charger the final cost, `totalCost` in the TransactionEventResponse
to the Ended event (0 for a free session; left out when the site did not price it). A mock charger sends the
session's frames over a real socket to a standalone edge."""

from __future__ import annotations

import json

from peers import Charger
from test_billing_sessions import add_card, site, ts


def event(msg_id: str, kind: str, tx: str, seq: int, wh: int, minutes: float, uid: str | None) -> str:
    payload = {"eventType": kind, "timestamp": ts(minutes), "seqNo": seq,
               "triggerReason": {"Started": "Authorized", "Ended": "StopAuthorized"}.get(kind, "MeterValuePeriodic"),
               "transactionInfo": {"transactionId": tx}, "evse": {"id": 1, "connectorId": 1},
               "meterValue": [{"timestamp": ts(minutes), "sampledValue": [
                   {"value": wh, "measurand": "Energy.Active.Import.Register"}]}]}
    if uid:
        payload["idToken"] = {"idToken": uid, "type": "ISO14443"}
    return json.dumps([2, msg_id, "TransactionEvent", payload])


async def session(ch: Charger, tx: str, uid: str | None, wh: int) -> dict:
    """A whole session; the answer to its Ended event."""
    started = await ch.raw(event(f"{tx}-1", "Started", tx, 0, 0, 0, uid))
    assert started[0] == 3, started
    await ch.raw(event(f"{tx}-2", "Updated", tx, 1, wh // 2, 15, None))
    ended = await ch.raw(event(f"{tx}-3", "Ended", tx, 2, wh, 30, uid))
    assert ended[:2] == [3, f"{tx}-3"], ended
    return ended[2]


async def test_I03_FR_02_the_charger_is_told_the_sessions_final_cost(edge_factory):
    edge = edge_factory({**site(), "site": {"accept_unknown_cards": True}})
    add_card(edge, "04C05701", "commercial", topup=100_000)  # 1,000.00 PHP
    add_card(edge, "04C05702", "personal")
    ch = await Charger(edge.url, "OCTT-I03", "2.0.1").connect()
    try:
        assert (await ch.raw(json.dumps([2, "b", "BootNotification", {
            "chargingStation": {"vendorName": "OCTT", "model": "mock"}, "reason": "PowerUp"}])))[2]["status"] == \
            "Accepted"
        paid = await session(ch, "T-PAID", "04C05701", 5000)
        assert paid["totalCost"] == 100.0, "5 kWh at 20.00 PHP a kWh, as billed"
        billed = edge.query("SELECT cost_minor FROM transactions WHERE tx_key = 'T-PAID'")[0][0]
        assert billed == 10_000 and paid["idTokenInfo"]["status"] == "Accepted"
        free = await session(ch, "T-FREE", "04C05702", 3000)
        assert free["totalCost"] == 0, "a personal card's session is free: 0 says so"
        unknown = await session(ch, "T-UNKNOWN", "04C05799", 2000)
        assert "totalCost" not in unknown, "a card the site does not price: no cost to tell"
        updated = json.loads(next(t for t in ch.received if '"T-PAID-2"' in t))
        assert "totalCost" not in updated[2], "only the Ended event's answer carries it"
    finally:
        await ch.close()
