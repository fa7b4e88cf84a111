"""Conformance, the cost on the charger's display while it charges: OCPP 2.0.1 I01 (the tariff as the
AuthorizeResponse's personalMessage) and I02.FR.01 (CostUpdated while charging), and for 1.6 the OCA's
California pricing messages (DataTransfer, vendorId org.openchargealliance.costmsg: SetUserPrice, RunningCost,
FinalCost) for chargers set to hear them. A mock charger with a display sends a session's frames over a real
socket to a standalone edge and records what the edge tells it."""

from __future__ import annotations

import asyncio
import json

from conftest import wait_for
from ocpp.routing import on
from ocpp.v16 import ChargePoint as CP16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as CP201
from ocpp.v201 import call_result as result201
from peers import Charger
from test_billing_sessions import add_card, site, ts
from test_cost import event

CARD = "04C0A701"
PUBLIC = "https://pay.example.ph"


class Display16(CP16):
    """A 1.6 charger with a display that understands the California pricing messages."""

    heard: list

    @on("DataTransfer")
    def data_transfer(self, vendor_id, message_id=None, data=None, **kw):
        self.heard.append((vendor_id, message_id, json.loads(data)))
        return result16.DataTransfer(status="Accepted")


class Display201(CP201):
    heard: list

    @on("CostUpdated")
    def cost_updated(self, total_cost, transaction_id, **kw):
        self.heard.append((transaction_id, total_cost))
        return result201.CostUpdated()


async def answer(ch: Charger, text: str) -> dict:
    """Send a CALL; its CallResult's payload (whatever the edge sends meanwhile)."""
    msg_id = json.loads(text)[1]
    await ch.ws.send(text)
    found: list = []

    def answered() -> bool:
        found[:] = [m for m in map(json.loads, ch.received) if m[0] == 3 and m[1] == msg_id]
        return bool(found)
    await wait_for(answered, timeout=10)
    return found[0][2]


def meter16(msg_id: str, tx: int, wh: int, minutes: float) -> str:
    return json.dumps([2, msg_id, "MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [
        {"timestamp": ts(minutes), "sampledValue": [{"value": str(wh), "measurand": "Energy.Active.Import.Register",
                                                     "unit": "Wh"}]}]}])


def config(charger: str, *, cost_messages: bool = True) -> dict:
    return {**site(tariff={"session_fee": "10.00"}), "pay": {"public_url": PUBLIC},
            "ocpp": {"chargers": {charger: {"cost_messages": cost_messages}}}}


async def test_1_6_california_pricing_the_driver_sees_the_price_the_running_cost_and_the_final_cost(edge_factory):
    """SetUserPrice after the card is accepted (the tariff in English, with Filipino and Chinese as extras);
    RunningCost at each new meter value whose cost has moved (not again for the same cost); FinalCost once the
    session is billed: as billed, with the receipt's address as its QR code."""
    edge = edge_factory(config("DISP16"))
    add_card(edge, CARD, "commercial", topup=100_000)
    ch = await Charger(edge.url, "DISP16", "1.6", cp_class=Display16).connect()
    ch.cp.heard = []
    try:
        await answer(ch, json.dumps([2, "b", "BootNotification", {"chargePointVendor": "OCA", "chargePointModel": "CA"}]))
        assert (await answer(ch, json.dumps([2, "a", "Authorize", {"idTag": CARD}])))["idTagInfo"]["status"] == \
            "Accepted"
        await wait_for(lambda: len(ch.cp.heard) == 1)
        vendor, message, price = ch.cp.heard[0]
        assert (vendor, message) == ("org.openchargealliance.costmsg", "SetUserPrice")
        assert price["idToken"] == CARD
        assert price["priceText"] == "₱20.00 per kWh · ₱10.00 per session", price
        assert [(x["language"], x["format"]) for x in price["priceTextExtra"]] == [("fil", "UTF8"), ("zh", "UTF8")]
        assert "每度电 ₱20.00" in price["priceTextExtra"][1]["content"]
        start = await answer(ch, json.dumps([2, "s", "StartTransaction", {"connectorId": 1, "idTag": CARD,
                                                                          "meterStart": 0, "timestamp": ts(0)}]))
        tx = start["transactionId"]
        await answer(ch, meter16("m1", tx, 2500, 10))
        await wait_for(lambda: len(ch.cp.heard) == 2)
        assert ch.cp.heard[1][1] == "RunningCost"
        running = ch.cp.heard[1][2]
        assert (running["transactionId"], running["meterValue"], running["cost"], running["state"]) == \
            (tx, 2500, 60.0, "Charging"), "2.5 kWh at ₱20.00 and the ₱10.00 session fee"
        await answer(ch, meter16("m2", tx, 2500, 11))  # nothing more drawn: the same cost, not told again
        await answer(ch, meter16("m3", tx, 5000, 20))
        await wait_for(lambda: len(ch.cp.heard) == 3)
        assert ch.cp.heard[2][2]["cost"] == 110.0
        await answer(ch, json.dumps([2, "t", "StopTransaction", {"transactionId": tx, "idTag": CARD,
                                                                 "meterStop": 6000, "timestamp": ts(30)}]))
        await wait_for(lambda: len(ch.cp.heard) == 4)
        assert ch.cp.heard[3][1] == "FinalCost"
        final = ch.cp.heard[3][2]
        (billed, receipt), = edge.query("SELECT cost_minor, receipt_code FROM transactions WHERE id = ?", (tx,))
        assert billed == 13_000 and final["cost"] == 130.0 and final["transactionId"] == tx
        assert final["priceText"] == "Total ₱130.00: 6.00 kWh in 30 min. Thank you!", final
        assert final["priceTextExtra"][0]["content"].startswith("Kabuuan ₱130.00")
        assert final["qrCodeText"] == f"{PUBLIC}/receipt/{receipt}"
    finally:
        await ch.close()


async def test_1_6_a_charger_not_set_to_hear_cost_messages_gets_none(edge_factory):
    """The California pricing messages are an extension: a charger that does not know them is not sent them."""
    edge = edge_factory(config("PLAIN16", cost_messages=False))
    add_card(edge, CARD, "commercial", topup=100_000)
    ch = await Charger(edge.url, "PLAIN16", "1.6", cp_class=Display16).connect()
    ch.cp.heard = []
    try:
        await answer(ch, json.dumps([2, "b", "BootNotification", {"chargePointVendor": "OCA", "chargePointModel": "X"}]))
        await answer(ch, json.dumps([2, "a", "Authorize", {"idTag": CARD}]))
        start = await answer(ch, json.dumps([2, "s", "StartTransaction", {"connectorId": 1, "idTag": CARD,
                                                                          "meterStart": 0, "timestamp": ts(0)}]))
        await answer(ch, meter16("m1", start["transactionId"], 2500, 10))
        await answer(ch, json.dumps([2, "t", "StopTransaction", {"transactionId": start["transactionId"],
                                                                 "meterStop": 3000, "timestamp": ts(20)}]))
        await asyncio.sleep(1.0)
        assert ch.cp.heard == []
        assert not any('"DataTransfer"' in t for t in ch.received)
    finally:
        await ch.close()


async def test_I01_I02_FR_01_a_2_0_1_charger_is_told_the_tariff_and_the_running_cost(edge_factory):
    """I01: the tariff in the AuthorizeResponse's personalMessage; I02.FR.01: CostUpdated with the session's
    cost so far at each meter value that moves it; the Ended event's answer has the final totalCost (I03). A
    charger whose device model says it shows the cost (TariffCostCtrlr.Enabled[Cost]) hears it without
    being set to in the config, from its next connection."""
    edge = edge_factory(config("DISP201", cost_messages=False))
    add_card(edge, CARD, "commercial", topup=100_000)
    boot = json.dumps([2, "b", "BootNotification", {"chargingStation": {"vendorName": "OCA", "model": "D"},
                                                    "reason": "PowerUp"}])
    ch = await Charger(edge.url, "DISP201", "2.0.1", cp_class=Display201).connect()
    ch.cp.heard = []
    await answer(ch, boot)
    plain = await answer(ch, json.dumps([2, "a0", "Authorize", {"idToken": {"idToken": CARD, "type": "ISO14443"}}]))
    assert "personalMessage" not in plain["idTokenInfo"], "not yet known to show the cost"
    await answer(ch, json.dumps([2, "r", "NotifyReport", {
        "requestId": 1, "generatedAt": ts(0), "seqNo": 0, "tbc": False, "reportData": [{
            "component": {"name": "TariffCostCtrlr"}, "variable": {"name": "Enabled", "instance": "Cost"},
            "variableAttribute": [{"type": "Actual", "value": "true", "mutability": "ReadWrite"}]}]}]))
    await ch.close()
    await wait_for(lambda: edge.query("SELECT count(*) FROM device_model WHERE charger_id = 'DISP201'") == [(1,)])
    ch = await Charger(edge.url, "DISP201", "2.0.1", cp_class=Display201).connect()
    ch.cp.heard = []
    try:
        await answer(ch, boot)
        auth = await answer(ch, json.dumps([2, "a", "Authorize", {"idToken": {"idToken": CARD, "type": "ISO14443"}}]))
        assert auth["idTokenInfo"]["personalMessage"] == {
            "format": "UTF8", "language": "en", "content": "₱20.00 per kWh · ₱10.00 per session"}
        await answer(ch, event("e1", "Started", "TX-I02", 0, 0, 0, CARD))
        await answer(ch, event("e2", "Updated", "TX-I02", 1, 2500, 10, None))
        await wait_for(lambda: ch.cp.heard == [("TX-I02", 60.0)])
        await answer(ch, event("e3", "Updated", "TX-I02", 2, 4000, 20, None))
        await wait_for(lambda: ch.cp.heard == [("TX-I02", 60.0), ("TX-I02", 90.0)])
        ended = await answer(ch, event("e4", "Ended", "TX-I02", 3, 4000, 25, CARD))
        assert ended["totalCost"] == 90.0
    finally:
        await ch.close()
