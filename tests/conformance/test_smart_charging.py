"""Conformance, smart charging basics (OCPP 2.0.1 K15/K16 and part 6's reusable state ISO15118SmartCharging;
1.6 TxProfile, §3.13): the site's and each charger's current limits (`max_current_a`) shared among the
sessions running, each session's charging profile set as it starts and again when the shares move, and an EV's
charging needs (ISO 15118) Accepted with a profile within what it can take. Mock chargers that keep the
profiles they are sent, over real sockets, against a standalone edge."""

from __future__ import annotations

import json

from conftest import wait_for
from ocpp.routing import on
from ocpp.v16 import ChargePoint as CP16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as CP201
from ocpp.v201 import call_result as result201
from peers import Charger
from test_billing_sessions import ts
from test_cost import event
from test_cost_messages import answer

CARD, OTHER = "04C0FF01", "04C0FF02"


class Limited16(CP16):
    """A 1.6 charger that keeps each transaction's TxProfile limit."""

    limits: dict

    @on("SetChargingProfile")
    def set_profile(self, connector_id, cs_charging_profiles, **kw):
        p = cs_charging_profiles
        assert p["charging_profile_purpose"] == "TxProfile" and p["charging_schedule"]["charging_rate_unit"] == "A"
        self.limits[p["transaction_id"]] = float(p["charging_schedule"]["charging_schedule_period"][0]["limit"])
        return result16.SetChargingProfile(status="Accepted")


class Limited201(CP201):
    limits: dict
    profiles: list

    @on("SetChargingProfile")
    def set_profile(self, evse_id, charging_profile, **kw):
        self.profiles.append((evse_id, charging_profile))
        schedule = charging_profile["charging_schedule"][0]
        self.limits[charging_profile["transaction_id"]] = float(schedule["charging_schedule_period"][0]["limit"])
        return result201.SetChargingProfile(status="Accepted")


def site(**ocpp_chargers) -> dict:
    return {"site": {"accept_unknown_cards": True, "max_current_a": 32}, "ocpp": {"chargers": ocpp_chargers}}


async def boot16(edge, name: str) -> Charger:
    ch = await Charger(edge.url, name, "1.6", cp_class=Limited16).connect()
    ch.cp.limits = {}
    await answer(ch, json.dumps([2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]))
    return ch


async def start16(ch: Charger, uid: str, connector: int = 1) -> int:
    started = await answer(ch, json.dumps([2, f"s{uid}", "StartTransaction", {
        "connectorId": connector, "idTag": uid, "meterStart": 0, "timestamp": ts(0)}]))
    return started["transactionId"]


async def test_1_6_the_sites_current_is_shared_among_the_sessions_as_they_start_and_end(edge_factory):
    """site.max_current_a = 32: one session gets it all; a second on another charger halves both at once
    (a charging profile on the first too); one ending gives the other all again. A charger's own limit caps
    its sessions below the site's share."""
    edge = edge_factory(site(**{"SMALL": {"max_current_a": 10}}))
    a, b = await boot16(edge, "BIG-A"), await boot16(edge, "BIG-B")
    small = await boot16(edge, "SMALL")
    try:
        first = await start16(a, CARD)
        await wait_for(lambda: a.cp.limits == {first: 32.0}, what="the first session gets the site's 32 A")
        second = await start16(b, OTHER)
        await wait_for(lambda: a.cp.limits == {first: 16.0} and b.cp.limits == {second: 16.0},
                       what="two sessions: 16 A each")
        third = await start16(small, "04C0FF03")
        await wait_for(lambda: small.cp.limits == {third: 10.0} and a.cp.limits == {first: 10.6},
                       what="three: the site's 32 A in thirds, SMALL capped at its own 10 A")
        for ch, tx in ((b, second), (small, third)):
            await answer(ch, json.dumps([2, "t", "StopTransaction", {"transactionId": tx, "meterStop": 100,
                                                                     "timestamp": ts(5)}]))
        await wait_for(lambda: a.cp.limits == {first: 32.0}, what="alone again: all 32 A")
    finally:
        for ch in (a, b, small):
            await ch.close()


async def test_1_6_below_6_a_a_share_waits_rather_than_starve_every_session(edge_factory):
    """An EV does not charge on less than 6 A: with 14 A for three sessions the first two get 7 A each and the
    third 0 A until one ends, when it gets its share."""
    edge = edge_factory({"site": {"accept_unknown_cards": True, "max_current_a": 14}})
    ch = await boot16(edge, "TIGHT")
    try:
        ids = [await start16(ch, f"04C0FF1{n}", connector=n) for n in (1, 2, 3)]
        await wait_for(lambda: ch.cp.limits == {ids[0]: 7.0, ids[1]: 7.0, ids[2]: 0.0})
        await answer(ch, json.dumps([2, "t", "StopTransaction", {"transactionId": ids[0], "meterStop": 100,
                                                                 "timestamp": ts(5)}]))
        await wait_for(lambda: ch.cp.limits[ids[2]] == 7.0)
    finally:
        await ch.close()


async def test_ISO15118SmartCharging_an_evs_needs_are_accepted_and_its_profile_follows(edge_factory):
    """Part 6's reusable state ISO15118SmartCharging (K15): NotifyEVChargingNeeds is answered Accepted; the
    CSMS sends SetChargingProfile, TxProfile for that transaction, within the charger's limit and what the EV
    said it takes (evMaxCurrent); NotifyEVChargingSchedule is Accepted; the ChargingStateChanged event is
    answered. A new session on that EVSE is not held to the last EV's needs."""
    edge = edge_factory(site(**{"HLC": {"max_current_a": 24}}))
    ch = await Charger(edge.url, "HLC", "2.0.1", cp_class=Limited201).connect()
    ch.cp.limits, ch.cp.profiles = {}, []
    try:
        await answer(ch, json.dumps([2, "b", "BootNotification", {
            "chargingStation": {"vendorName": "V", "model": "M"}, "reason": "PowerUp"}]))
        await answer(ch, event("e1", "Started", "TX-HLC", 0, 0, 0, CARD))
        await wait_for(lambda: ch.cp.limits == {"TX-HLC": 24.0}, what="the charger's own 24 A at the start")
        needs = await answer(ch, json.dumps([2, "n", "NotifyEVChargingNeeds", {
            "evseId": 1, "maxScheduleTuples": 3, "chargingNeeds": {
                "requestedEnergyTransfer": "AC_three_phase", "departureTime": ts(120),
                "acChargingParameters": {"energyAmount": 30000, "evMinCurrent": 6, "evMaxCurrent": 16,
                                         "evMaxVoltage": 400}}}]))
        assert needs == {"status": "Accepted"}
        await wait_for(lambda: ch.cp.limits == {"TX-HLC": 16.0}, what="a profile within the EV's 16 A")
        evse, profile = ch.cp.profiles[-1]
        assert evse == 1 and profile["charging_profile_purpose"] == "TxProfile"
        assert profile["transaction_id"] == "TX-HLC" and len(profile["charging_schedule"][0][
            "charging_schedule_period"]) <= 3, "no more periods than the EV's maxScheduleTuples"
        schedule = await answer(ch, json.dumps([2, "s", "NotifyEVChargingSchedule", {
            "timeBase": ts(0), "evseId": 1, "chargingSchedule": {
                "id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}]}}]))
        assert schedule == {"status": "Accepted"}
        charging = await answer(ch, json.dumps([2, "c", "TransactionEvent", {
            "eventType": "Updated", "timestamp": ts(1), "triggerReason": "ChargingStateChanged", "seqNo": 1,
            "transactionInfo": {"transactionId": "TX-HLC", "chargingState": "Charging"},
            "evse": {"id": 1, "connectorId": 1}}]))
        assert charging == {}
        await answer(ch, event("e2", "Ended", "TX-HLC", 2, 5000, 30, CARD))
        assert edge.query("SELECT count(*) FROM ev_needs") == [(0,)]
        await answer(ch, event("e3", "Started", "TX-NEXT", 0, 0, 31, OTHER))
        await wait_for(lambda: ch.cp.limits.get("TX-NEXT") == 24.0, what="the next EV: the charger's 24 A again")
    finally:
        await ch.close()
