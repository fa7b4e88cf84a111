"""Charging limits, reservations and the 2.0.1 device model through the operations API, on real chargers (the
`ocpp` package, 1.6 and 2.0.1) over real sockets: each said in the charger's version and answered with its
real response; a reservation the edge enforces in standalone mode (another card is refused at the reserved
connector, the reserved card starts and uses it up); a base report sent in parts, stored whole."""

from __future__ import annotations

import asyncio
import subprocess

from conftest import SITEKEEPER
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as CP16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as CP201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from peers import now
from test_operations import call, connected
from test_taps import add_card


class Limited16(CP16):
    asked: list

    @on("SetChargingProfile")
    def set_profile(self, connector_id, cs_charging_profiles, **kw):
        self.asked.append(("SetChargingProfile", connector_id, cs_charging_profiles))
        return result16.SetChargingProfile(status="Accepted")

    @on("ClearChargingProfile")
    def clear_profile(self, **kw):
        self.asked.append(("ClearChargingProfile", kw.get("id")))
        return result16.ClearChargingProfile(status="Accepted")

    @on("GetCompositeSchedule")
    def composite(self, connector_id, duration, **kw):
        return result16.GetCompositeSchedule(status="Accepted", connector_id=connector_id, schedule_start=now(),
                                             charging_schedule={"duration": duration, "charging_rate_unit": "A",
                                                                "charging_schedule_period": [
                                                                    {"start_period": 0, "limit": 16.0}]})

    @on("ReserveNow")
    def reserve(self, connector_id, expiry_date, id_tag, reservation_id, **kw):
        self.asked.append(("ReserveNow", connector_id, id_tag, reservation_id))
        return result16.ReserveNow(status="Accepted" if connector_id == 1 else "Occupied")

    @on("CancelReservation")
    def cancel(self, reservation_id, **kw):
        self.asked.append(("CancelReservation", reservation_id))
        return result16.CancelReservation(status="Accepted")


class Reported201(CP201):
    """A 2.0.1 charger whose base report comes in two NotifyReport messages (tbc, seqNo)."""

    asked: list

    @on("SetChargingProfile")
    def set_profile(self, evse_id, charging_profile, **kw):
        self.asked.append(("SetChargingProfile", evse_id, charging_profile))
        return result201.SetChargingProfile(status="Accepted")

    @on("GetBaseReport")
    def base_report(self, request_id, report_base, **kw):
        self.asked.append(("GetBaseReport", report_base))
        return result201.GetBaseReport(status="Accepted")

    @after("GetBaseReport")
    def send_report(self, request_id, report_base, **kw):
        asyncio.get_running_loop().create_task(self._report(request_id))

    async def _report(self, request_id: int) -> None:
        part1 = [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"},
                  "variable_attribute": [{"type": "Actual", "value": "300", "mutability": "ReadWrite"}],
                  "variable_characteristics": {"data_type": "integer", "unit": "s", "supports_monitoring": False}}]
        part2 = [{"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"},
                  "variable_attribute": [{"type": "Actual", "value": "7400", "mutability": "ReadOnly"},
                                         {"type": "MaxSet", "value": "22000", "mutability": "ReadOnly"}],
                  "variable_characteristics": {"data_type": "decimal", "unit": "W", "supports_monitoring": True}}]
        await self.call(call201.NotifyReport(request_id=request_id, generated_at=now(), seq_no=0, tbc=True,
                                             report_data=part1))
        await self.call(call201.NotifyReport(request_id=request_id, generated_at=now(), seq_no=1, tbc=False,
                                             report_data=part2))

    @on("ReserveNow")
    def reserve(self, id, expiry_date_time, id_token, **kw):
        self.asked.append(("ReserveNow", id, kw.get("evse_id"), id_token["id_token"]))
        return result201.ReserveNow(status="Accepted")


async def test_charging_limits_in_16_and_201(edge_factory):
    edge = edge_factory({})
    ch16 = await connected(edge, "LIM16", "1.6", Limited16)
    ch201 = await connected(edge, "LIM201", "2.0.1", Reported201)
    try:
        status, out = await call(edge, "POST", "/api/chargers/LIM16/charging-limit",
                                 {"connector": 1, "amps": 16, "until": "2026-12-31T18:00:00+08:00"})
        assert status == 200 and out["response"] == {"status": "Accepted"}, out
        _, connector, profile = ch16.cp.asked[-1]
        assert connector == 1 and profile["charging_profile_purpose"] == "TxDefaultProfile"
        assert profile["valid_to"] == "2026-12-31T10:00:00Z", "the owner's time, said in UTC"
        assert profile["charging_schedule"]["charging_rate_unit"] == "A"
        assert profile["charging_schedule"]["charging_schedule_period"] == [{"start_period": 0, "limit": 16.0}]
        status, out = await call(edge, "GET", "/api/chargers/LIM16/charging-limit?connector=1")
        assert out["response"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 16.0
        status, out = await call(edge, "DELETE", "/api/chargers/LIM16/charging-limit?connector=1")
        assert out["response"] == {"status": "Accepted"} and ch16.cp.asked[-1] == ("ClearChargingProfile", 1001)
        status, out = await call(edge, "POST", "/api/chargers/LIM16/charging-limit", {"connector": 1})
        assert status == 422 and "amps or in watts" in out["detail"]
        status, out = await call(edge, "POST", "/api/chargers/LIM201/charging-limit", {"connector": 0, "watts": 11000})
        assert out["response"] == {"status": "Accepted"}
        _, evse, profile = ch201.cp.asked[-1]
        assert evse == 0 and profile["charging_profile_purpose"] == "ChargingStationMaxProfile"
        assert profile["charging_schedule"][0]["charging_rate_unit"] == "W"
        out = await asyncio.to_thread(subprocess.run, [SITEKEEPER, "--config", str(edge.config_path), "charger", "LIM16",
                                                       "limit", "2", "10A"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "Accepted" in out.stdout, out.stderr
        assert ch16.cp.asked[-1][1] == 2
    finally:
        await ch16.close()
        await ch201.close()


async def test_a_reservation_holds_the_connector_for_its_card_in_standalone(edge_factory):
    edge = edge_factory({"billing": {"min_start_balance": "1.00"}})
    add_card(edge, "04C1C1C1", "commercial", topup=100_000)
    add_card(edge, "04D2D2D2", "commercial", topup=100_000)
    ch = await connected(edge, "RSV16", "1.6", Limited16)
    try:
        status, out = await call(edge, "POST", "/api/chargers/RSV16/reservations",
                                 {"connector": 1, "card": "04c1c1c1", "minutes": 30})
        assert status == 200 and out["response"] == {"status": "Accepted"}, out
        reservation = out["reservation"]
        assert reservation["status"] == "active" and reservation["id_tag"] == "04C1C1C1"
        assert ch.cp.asked[-1] == ("ReserveNow", 1, "04C1C1C1", reservation["id"])
        status, out = await call(edge, "POST", "/api/chargers/RSV16/reservations",
                                 {"connector": 1, "card": "04D2D2D2"})
        assert status == 409 and "reserved already" in out["detail"], "one reservation per connector"
        # another card at the reserved connector is refused; on another connector it charges
        other = await ch.start16("04D2D2D2", connector_id=1)
        assert other.id_tag_info["status"] == "Invalid"
        elsewhere = await ch.start16("04D2D2D2", connector_id=2)
        assert elsewhere.id_tag_info["status"] == "Accepted"
        mine = await ch.start16("04C1C1C1", connector_id=1)
        assert mine.id_tag_info["status"] == "Accepted", "the reserved card starts"
        rows = (await call(edge, "GET", "/api/chargers/RSV16/reservations"))[1]
        assert rows[0]["status"] == "used"
        # a refused reservation is recorded so; a cancelled one frees the connector
        status, out = await call(edge, "POST", "/api/chargers/RSV16/reservations", {"connector": 3, "card": "04D2D2D2"})
        assert out["response"] == {"status": "Occupied"} and out["reservation"]["status"] == "refused"
        status, out = await call(edge, "POST", "/api/chargers/RSV16/reservations", {"connector": 1, "card": "04D2D2D2"})
        rid = out["reservation"]["id"]
        status, out = await call(edge, "DELETE", f"/api/chargers/RSV16/reservations/{rid}")
        assert out["response"] == {"status": "Accepted"} and out["reservation"]["status"] == "cancelled"
        assert ch.cp.asked[-1] == ("CancelReservation", rid)
        assert (await call(edge, "DELETE", f"/api/chargers/RSV16/reservations/{rid}"))[0] == 409
        listed = await asyncio.to_thread(subprocess.run, [SITEKEEPER, "--config", str(edge.config_path), "charger",
                                                          "RSV16", "reservations"], capture_output=True, text=True,
                                         timeout=60)
        assert listed.returncode == 0 and "cancelled" in listed.stdout and "used" in listed.stdout
    finally:
        await ch.close()


async def test_a_201_base_report_in_parts_is_stored_whole(edge_factory):
    edge = edge_factory({})
    ch = await connected(edge, "DM201", "2.0.1", Reported201)
    try:
        status, out = await call(edge, "GET", "/api/chargers/DM201/configuration")
        assert out["action"] == "GetBaseReport" and out["response"] == {"status": "Accepted"}
        assert out["report"] == {"request_id": 1, "parts": 2, "variables": 2, "complete": True}, \
            "the answer waited for the last part (tbc false)"
        rows = out["variables"]
        assert rows == (await call(edge, "GET", "/api/chargers/DM201/device-model"))[1]
        got = {(r["key"], r["attribute"]): (r["value"], r["mutability"], r["unit"]) for r in rows}
        assert got == {("OCPPCommCtrlr.HeartbeatInterval", "Actual"): ("300", "ReadWrite", "s"),
                       ("EVSE@1.Power", "Actual"): ("7400", "ReadOnly", "W"),
                       ("EVSE@1.Power", "MaxSet"): ("22000", "ReadOnly", "W")}, "both parts, every attribute"
        status, out = await call(edge, "GET", "/api/chargers/DM201/configuration")
        assert out["report"]["request_id"] == 2 and out["report"]["complete"], "each report its own requestId"
        status, out = await call(edge, "POST", "/api/chargers/DM201/reservations", {"connector": 2, "card": "04E1"})
        assert status == 422, "a card id is checked before anything is sent"
    finally:
        await ch.close()
