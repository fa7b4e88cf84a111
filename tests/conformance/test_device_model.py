"""Conformance, the device model (OCPP 2.0.1 part 6, B07/B08): the operator asks a charger for its configuration
inventory through the operations API; the mock charger answers over a real socket and sends its report in
several NotifyReport messages (`tbc` until the last, `seqNo` counting); the edge answers each part, keeps them
all and shows the whole to the operator."""

from __future__ import annotations

import json

from test_operations import call, connected
from test_operations_limits import Reported201


async def test_TC_B_12_CSMS_a_configuration_inventory_report_in_parts_is_shown_whole(edge_factory):
    edge = edge_factory()
    ch = await connected(edge, "OCTT-B12", "2.0.1", Reported201)
    try:
        status, out = await call(edge, "GET", "/api/chargers/OCTT-B12/configuration")
        asked = json.loads(next(t for t in ch.received if '"GetBaseReport"' in t))[3]
        assert asked["reportBase"] == "ConfigurationInventory" and isinstance(asked["requestId"], int) \
            and asked["requestId"] >= 0, "step 1: GetBaseReportRequest with an integer requestId ≥ 0"
        parts = [json.loads(t) for t in ch.sent if '"NotifyReport"' in t]
        assert [(p[3]["seqNo"], p[3]["tbc"]) for p in parts] == [(0, True), (1, False)]
        answers = {json.loads(t)[1]: json.loads(t) for t in ch.received if json.loads(t)[0] == 3}
        assert all(answers[p[1]][2] == {} for p in parts), "each NotifyReport answered (an empty response)"
        assert status == 200 and out["report"]["complete"] and out["report"]["parts"] == 2
        assert {(v["key"], v["attribute"]) for v in out["variables"]} == {
            ("OCPPCommCtrlr.HeartbeatInterval", "Actual"), ("EVSE@1.Power", "Actual"), ("EVSE@1.Power", "MaxSet")}, \
            "post scenario: all NotifyReports of the requestId received and shown to the operator"
    finally:
        await ch.close()
