"""Conformance, raising a charger's security profile over OCPP (2.0.1 TC_A_19_CSMS, A05.FR.04/07; the 1.6
security whitepaper's A05): the owner asks through the operations API, the charger hears the steps, and once
it has reconnected at the new profile the site refuses the old one; until then the old one still works (a
charger that cannot reach the new profile falls back, A05.FR.08). A profile 1 site with a TLS port beside it,
mock chargers over real sockets (TLS with the throwaway CA of tests/pki.py)."""

from __future__ import annotations

import json

import pytest
from conftest import free_port, wait_for
from ocpp.routing import on
from ocpp.v16 import ChargePoint as CP16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as CP201
from ocpp.v201 import call_result as result201
from peers import Charger
from pki import Pki, make_pki
from test_operations import call
from test_security import PASSWORD, basic, boots, refused_status


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def site(pki: Pki, charger: str, tls_port: int | None) -> dict:
    ocpp: dict = {"security_profile": 1, "tls_cert": str(pki.server_cert), "tls_key": str(pki.server_key),
                  "chargers": {charger: {"password": PASSWORD}}}
    if tls_port:
        ocpp["tls_port"] = tls_port
    return {"ocpp": ocpp}


class Upgradable201(CP201):
    heard: list

    @on("SetNetworkProfile")
    def network_profile(self, configuration_slot, connection_data, **kw):
        self.heard.append(("SetNetworkProfile", configuration_slot, connection_data))
        return result201.SetNetworkProfile(status="Accepted")

    @on("SetVariables")
    def set_variables(self, set_variable_data, **kw):
        self.heard.append(("SetVariables", set_variable_data))
        return result201.SetVariables(set_variable_result=[
            {"attribute_status": "Accepted", "component": d["component"], "variable": d["variable"]}
            for d in set_variable_data])

    @on("Reset")
    def reset(self, type, **kw):
        self.heard.append(("Reset", type))
        return result201.Reset(status="Accepted")


class Upgradable16(CP16):
    heard: list
    answer = "Accepted"

    @on("ChangeConfiguration")
    def change(self, key, value, **kw):
        self.heard.append((key, value))
        return result16.ChangeConfiguration(status=self.answer)


async def connect(url: str, charger: str, version: str, cls: type, **kw) -> Charger:
    ch = await Charger(url, charger, version, cp_class=cls, headers=basic(charger, PASSWORD), **kw).connect()
    ch.cp.heard = []
    return ch


async def test_TC_A_19_CSMS_a_charger_raised_from_profile_1_to_2_is_refused_at_1_once_it_has_come_at_2(
        edge_factory, pki):
    tls_port = free_port()
    edge = edge_factory(site(pki, "CP-A19", tls_port))
    secure = f"wss://127.0.0.1:{tls_port}/ocpp"
    ch = await connect(edge.url, "CP-A19", "2.0.1", Upgradable201)
    await ch.boot201()
    await wait_for(lambda: edge.query("SELECT connected FROM chargers WHERE id = 'CP-A19'") == [(1,)])
    status, out = await call(edge, "POST", "/api/chargers/CP-A19/security-profile", {"profile": 2})
    assert status == 200 and out["asked"] == 2, out
    (_, slot, data), (_, priority), reset = ch.cp.heard
    assert data == {"ocpp_version": "OCPP20", "ocpp_transport": "JSON", "ocpp_csms_url": secure,
                    "message_timeout": 30, "security_profile": 2, "ocpp_interface": "Wired0"}
    assert priority[0]["component"]["name"] == "OCPPCommCtrlr"
    assert priority[0]["variable"]["name"] == "NetworkConfigurationPriority"
    assert str(slot) in priority[0]["attribute_value"].split(",")[:1], "the new slot first"
    assert reset == ("Reset", "OnIdle")
    await ch.close()
    # A05.FR.08: a charger that cannot reach the new profile falls back; until it has come, the old one works
    await boots(edge.url, "CP-A19", "2.0.1", headers=basic("CP-A19", PASSWORD))
    # steps 7-9: it reconnects at profile 2 (TLS and its password) and boots
    await boots(secure, "CP-A19", "2.0.1", headers=basic("CP-A19", PASSWORD), tls=pki.client_context())
    await wait_for(lambda: edge.query("SELECT security_profile, security_upgrade FROM chargers WHERE id = 'CP-A19'")
                   == [(2, None)])
    # steps 10-11: at its old profile it is refused
    refused = await refused_status(edge.url, "CP-A19", basic("CP-A19", PASSWORD))
    assert refused.response.status_code == 403
    await boots(secure, "CP-A19", "2.0.1", headers=basic("CP-A19", PASSWORD), tls=pki.client_context())
    assert edge.query("SELECT what, before, after FROM changes") == [
        ("charger.security_profile", json.dumps({"profile": 1}), json.dumps({"profile": 2}))]
    status, out = await call(edge, "POST", "/api/chargers/CP-A19/security-profile", {"profile": 1})
    assert status == 422 and "only ever raised" in out["detail"]


async def test_1_6_A05_change_configuration_security_profile_then_only_the_new_profile(edge_factory, pki):
    """1.6 whitepaper A05: ChangeConfiguration SecurityProfile; the charger reconnects at it (A05.FR.06/07)
    and from then its profile 1 connection is refused. A charger that refuses the change stays where it was."""
    tls_port = free_port()
    edge = edge_factory(site(pki, "CP-16", tls_port))
    ch = await connect(edge.url, "CP-16", "1.6", Upgradable16)
    await ch.boot16()
    await wait_for(lambda: edge.query("SELECT connected FROM chargers WHERE id = 'CP-16'") == [(1,)])
    ch.cp.answer = "Rejected"  # A05.FR.03: no CentralSystemRootCertificate installed, say
    status, out = await call(edge, "POST", "/api/chargers/CP-16/security-profile", {"profile": 2})
    assert status == 200 and out["asked"] is None and out["refused_at"] == "ChangeConfiguration"
    assert edge.query("SELECT security_profile, security_upgrade FROM chargers WHERE id = 'CP-16'") == [(None, None)]
    ch.cp.answer = "Accepted"
    status, out = await call(edge, "POST", "/api/chargers/CP-16/security-profile", {"profile": 2})
    assert status == 200 and out["asked"] == 2
    assert ch.cp.heard == [("SecurityProfile", "2"), ("SecurityProfile", "2")]
    await ch.close()
    await boots(f"wss://127.0.0.1:{tls_port}/ocpp", "CP-16", headers=basic("CP-16", PASSWORD),
                tls=pki.client_context())
    await wait_for(lambda: edge.query("SELECT security_profile FROM chargers WHERE id = 'CP-16'") == [(2,)])
    assert (await refused_status(edge.url, "CP-16", basic("CP-16", PASSWORD))).response.status_code == 403
    status, out = await call(edge, "GET", "/api/chargers/CP-16/security-profile")
    assert out == {"charger": "CP-16", "site": 1, "own": 2, "asked": None}


async def test_a_site_without_tls_cannot_raise_a_charger_to_2_and_says_so(edge_factory, pki):
    edge = edge_factory(site(pki, "CP-NT", None))
    ch = await connect(edge.url, "CP-NT", "1.6", Upgradable16)
    await ch.boot16()
    status, out = await call(edge, "POST", "/api/chargers/CP-NT/security-profile", {"profile": 2})
    assert status == 422 and "ocpp.tls_port" in out["detail"]
    assert ch.cp.heard == [], "nothing is sent to the charger"
    await ch.close()
