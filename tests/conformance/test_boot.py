"""Conformance, booting (OCPP 2.0.1 part 6, B02/B03; 1.6 §4.2): a site with `ocpp.new_chargers = "pending"`
(or "reject") answers a new charger's BootNotification Pending (Rejected) until the owner approves it, answers
anything else it sends meanwhile with a SecurityError CALLERROR, gives it none of the site's cards, and on
approval asks it to boot again (TriggerMessage), which is then Accepted. A mock charger over a real socket; the
owner's approval through the operations API and the CLI."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess

from conftest import SITEKEEPER, wait_for
from ocpp.routing import after, on
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from peers import CP201, Charger, now
from test_operations import call
from test_taps import add_card

from edge.web import stickers

BOOT_201 = {"chargingStation": {"vendorName": "OCTT", "model": "mock"}, "reason": "PowerUp"}
BOOT_16 = {"chargePointVendor": "OCTT", "chargePointModel": "mock"}
STATUS_201 = {"timestamp": "2026-12-07T10:00:00Z", "connectorStatus": "Available", "evseId": 1, "connectorId": 1}
EVENT_201 = {"generatedAt": "2026-12-07T10:00:00Z", "seqNo": 0, "eventData": [{
    "eventId": 1, "timestamp": "2026-12-07T10:00:00Z", "trigger": "Delta", "actualValue": "Available",
    "eventNotificationType": "HardWiredNotification", "component": {"name": "Connector", "evse": {"id": 1,
                                                                                                  "connectorId": 1}},
    "variable": {"name": "AvailabilityState"}}]}


def pending_site(policy: str = "pending") -> dict:
    return {"ocpp": {"new_chargers": policy}}


def offered(edge) -> list:
    """The connectors drivers are offered (the kiosk's list, the pay stickers)."""
    conn = sqlite3.connect(edge.db_path)
    try:
        return stickers.connectors(conn)
    finally:
        conn.close()


def frame(msg_id: str, action: str, payload: dict) -> str:
    return json.dumps([2, msg_id, action, payload])


class Triggered201(CP201):
    """A 2.0.1 charger that boots again when the CSMS triggers it (reason Triggered), keeping the answers."""

    boots: list

    @on("TriggerMessage")
    def trigger(self, requested_message, **kw):
        return result201.TriggerMessage(status="Accepted")

    @after("TriggerMessage")
    def boot_again(self, requested_message, **kw):
        if requested_message == "BootNotification":
            asyncio.get_running_loop().create_task(self._boot())

    async def _boot(self) -> None:
        self.boots.append(await self.call(call201.BootNotification(
            charging_station={"vendor_name": "OCTT", "model": "mock"}, reason="Triggered")))


async def test_TC_B_02_CSMS_a_new_charger_is_pending_until_the_owner_accepts_it(edge_factory):
    edge = edge_factory(pending_site())
    ch = await Charger(edge.url, "OCTT-B02", "2.0.1").connect()
    try:
        first = await ch.raw(frame("b1", "BootNotification", BOOT_201))
        assert first[2]["status"] == "Pending" and first[2]["interval"] > 0, "step 2: Pending, with a retry interval"
        assert (await ch.raw(frame("b2", "BootNotification", BOOT_201)))[2]["status"] == "Pending", \
            "still Pending while the owner has not decided"
        assert edge.query("SELECT registration, vendor, model FROM chargers WHERE id = 'OCTT-B02'") == [
            ("pending", "OCTT", "mock")], "it waits in the owner's list, with what it said about itself"
        status, out = await call(edge, "POST", "/api/chargers/OCTT-B02/approve")
        assert status == 200 and out["approved"] and out["changed"]
        accepted = await ch.raw(frame("b3", "BootNotification", BOOT_201))
        assert accepted[2]["status"] == "Accepted" and accepted[2]["interval"] == 300, "step 4: Accepted"
        assert await ch.raw(frame("s1", "StatusNotification", STATUS_201)) == [3, "s1", {}], "step 6"
        assert await ch.raw(frame("e1", "NotifyEvent", EVENT_201)) == [3, "e1", {}]
        assert edge.query("SELECT who, what, subject FROM changes WHERE what = 'charger.approve'") == [
            ("local", "charger.approve", "OCTT-B02")], "the approval is in the owner's audit"
    finally:
        await ch.close()


async def test_TC_B_30_CSMS_a_pending_or_rejected_charger_gets_SecurityError_for_other_messages(edge_factory):
    edge = edge_factory(pending_site())
    ch = await Charger(edge.url, "OCTT-B30", "2.0.1").connect()
    try:
        assert (await ch.raw(frame("s0", "StatusNotification", STATUS_201)))[:3] == [4, "s0", "SecurityError"], \
            "nothing before a BootNotification"
        assert (await ch.raw(frame("b1", "BootNotification", BOOT_201)))[2]["status"] == "Pending"
        assert (await ch.raw(frame("s1", "StatusNotification", STATUS_201)))[:3] == [4, "s1", "SecurityError"]
        assert (await ch.raw(frame("e1", "NotifyEvent", EVENT_201)))[:3] == [4, "e1", "SecurityError"]
        assert edge.query("SELECT count(*) FROM connector_status WHERE charger_id = 'OCTT-B30'") == [(0,)], \
            "what it sent changed nothing"
    finally:
        await ch.close()
    edge2 = edge_factory(pending_site("reject"))
    ch = await Charger(edge2.url, "OCTT-B30R", "2.0.1").connect()
    try:
        rejected = await ch.raw(frame("b1", "BootNotification", BOOT_201))
        assert rejected[2]["status"] == "Rejected" and rejected[2]["interval"] > 0, "B03: Rejected"
        assert (await ch.raw(frame("s1", "StatusNotification", STATUS_201)))[:3] == [4, "s1", "SecurityError"]
        assert edge2.query("SELECT registration FROM chargers WHERE id = 'OCTT-B30R'") == [("pending",)], \
            "a rejected charger still waits for the owner, who may approve it"
    finally:
        await ch.close()


async def test_TC_B_31_CSMS_approval_triggers_a_boot_that_is_accepted(edge_factory):
    edge = edge_factory(pending_site())
    ch = await Charger(edge.url, "OCTT-B31", "2.0.1", cp_class=Triggered201).connect()
    ch.cp.boots = []
    try:
        first = await ch.call(call201.BootNotification(charging_station={"vendor_name": "OCTT", "model": "mock"},
                                                       reason="PowerUp"))
        assert first.status == "Pending"
        status, out = await call(edge, "POST", "/api/chargers/OCTT-B31/approve")
        assert status == 200 and out["boot_asked"], out
        trigger = next(json.loads(t) for t in ch.received if '"TriggerMessage"' in t)
        assert trigger[3] == {"requestedMessage": "BootNotification"}, "step 3"
        await wait_for(lambda: ch.cp.boots)
        assert ch.cp.boots[0].status == "Accepted", "step 6: the triggered BootNotification is Accepted"
        await ch.call(call201.StatusNotification(timestamp=now(), connector_status="Available", evse_id=1,
                                                 connector_id=1))
        await wait_for(lambda: edge.query("SELECT status FROM connector_status WHERE charger_id = 'OCTT-B31'")
                       == [("Available",)])
    finally:
        await ch.close()


async def test_16_pending_chargers_get_no_cards_and_the_owner_approves_from_the_cli(edge_factory):
    """1.6 §4.2 (Pending: the Central System may talk to it, it should send nothing but BootNotification);
    the site's cards (its local list) go to an accepted charger only."""
    edge = edge_factory({**pending_site(), "billing": {"push_local_list": True}})
    add_card(edge, "04AB12CD", "personal")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([SITEKEEPER, "--config", str(edge.config_path), *args], capture_output=True, text=True,
                              timeout=60)

    ch = await Charger(edge.url, "OCTT-16P", "1.6").connect()
    try:
        pending = await ch.raw(frame("b1", "BootNotification", BOOT_16))
        assert pending[2]["status"] == "Pending" and pending[2]["interval"] > 0
        assert (await ch.raw(frame("s1", "StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                                                "status": "Available"})))[:3] == \
            [4, "s1", "SecurityError"]
        out = await asyncio.to_thread(cli, "charger", "list")
        assert out.returncode == 0 and "waiting for approval" in out.stdout, out.stdout + out.stderr
        assert offered(edge) == [], "drivers are not offered it (the kiosk, the pay stickers)"
        await asyncio.sleep(2.5)  # the local list goes out a second after a charger boots: not to this one
        assert not [t for t in ch.received if "LocalList" in t], "no card list for a charger not accepted"
        out = await asyncio.to_thread(cli, "charger", "OCTT-16P", "approve")
        assert out.returncode == 0 and "OCTT-16P is approved" in out.stdout, out.stdout + out.stderr
        assert (await ch.raw(frame("b2", "BootNotification", BOOT_16)))[2]["status"] == "Accepted"
        await wait_for(lambda: [t for t in ch.received if "LocalList" in t], timeout=10)
        assert offered(edge) == [("OCTT-16P", 1)]
        out = await asyncio.to_thread(cli, "charger", "NOPE-1", "approve")
        assert out.returncode != 0 and "no charger 'NOPE-1'" in out.stderr, out.stderr
    finally:
        await ch.close()


async def test_a_listed_charger_is_accepted_at_once(edge_factory):
    edge = edge_factory({"ocpp": {"new_chargers": "reject", "chargers": {"CP-LISTED": {"serial": "CP-LISTED"}}}})
    ch = await Charger(edge.url, "CP-LISTED", "1.6").connect()
    try:
        assert (await ch.raw(frame("b1", "BootNotification", BOOT_16)))[2]["status"] == "Accepted"
        assert edge.query("SELECT registration FROM chargers WHERE id = 'CP-LISTED'") == [("accepted",)]
    finally:
        await ch.close()
