"""Operations through the edge's API on real chargers (the `ocpp` package, 1.6 and 2.0.1) over real sockets:
each intent said in the charger's version and answered with its real response, any call, a CALLERROR and
silence, a charger that is not there, payloads that do not fit, tokens and roles, the audit, and the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.error
import urllib.request

import pytest
from conftest import SITEKEEPER, wait_for
from ocpp.exceptions import NotSupportedError
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as CP16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as CP201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from peers import Charger, now
from test_taps import add_card


class Operated16(CP16):
    """A 1.6 charger that does what the CSMS asks, and remembers it."""

    asked: list

    @on("Reset")
    def reset(self, type, **kw):
        self.asked.append(("Reset", type))
        return result16.Reset(status="Accepted")

    @on("UnlockConnector")
    def unlock(self, connector_id, **kw):
        self.asked.append(("UnlockConnector", connector_id))
        return result16.UnlockConnector(status="Unlocked")

    @on("ChangeAvailability")
    def availability(self, connector_id, type, **kw):
        self.asked.append(("ChangeAvailability", connector_id, type))
        return result16.ChangeAvailability(status="Accepted")

    @on("TriggerMessage")
    def trigger(self, requested_message, **kw):
        self.asked.append(("TriggerMessage", requested_message, kw.get("connector_id")))
        return result16.TriggerMessage(status="Accepted")

    @on("ClearCache")
    def clear(self, **kw):
        raise NotSupportedError(description="this charger keeps no cache")

    @on("GetConfiguration")
    def get_config(self, key=None, **kw):
        known = {"HeartbeatInterval": "300", "MeterValueSampleInterval": "60"}
        keys = key or list(known)
        return result16.GetConfiguration(
            configuration_key=[{"key": k, "readonly": False, "value": known[k]} for k in keys if k in known],
            unknown_key=[k for k in keys if k not in known] or None)

    @on("ChangeConfiguration")
    def change_config(self, key, value, **kw):
        self.asked.append(("ChangeConfiguration", key, value))
        return result16.ChangeConfiguration(status="Accepted" if key == "HeartbeatInterval" else "NotSupported")

    @on("RemoteStartTransaction")
    def remote_start(self, id_tag, **kw):
        self.asked.append(("RemoteStartTransaction", id_tag, kw.get("connector_id")))
        return result16.RemoteStartTransaction(status="Accepted")

    @after("RemoteStartTransaction")
    def plugged_in(self, id_tag, **kw):  # the driver plugs in: the charger starts (never awaited in a handler)
        asyncio.get_running_loop().create_task(self.call(call16.StartTransaction(
            connector_id=kw.get("connector_id") or 1, id_tag=id_tag, meter_start=1000, timestamp=now())))

    @on("RemoteStopTransaction")
    def remote_stop(self, transaction_id, **kw):
        self.asked.append(("RemoteStopTransaction", transaction_id))
        return result16.RemoteStopTransaction(status="Accepted")

    @on("DataTransfer")
    async def data_transfer(self, vendor_id, **kw):
        await asyncio.sleep(5)  # says nothing in time
        return result16.DataTransfer(status="Accepted")


class Operated201(CP201):
    asked: list

    @on("Reset")
    def reset(self, type, **kw):
        self.asked.append(("Reset", type))
        return result201.Reset(status="Accepted")

    @on("UnlockConnector")
    def unlock(self, evse_id, connector_id, **kw):
        self.asked.append(("UnlockConnector", evse_id, connector_id))
        return result201.UnlockConnector(status="Unlocked")

    @on("ChangeAvailability")
    def availability(self, operational_status, evse=None, **kw):
        self.asked.append(("ChangeAvailability", operational_status, evse))
        return result201.ChangeAvailability(status="Accepted")

    @on("GetVariables")
    def get_variables(self, get_variable_data, **kw):
        return result201.GetVariables(get_variable_result=[
            {"attribute_status": "Accepted", "attribute_value": "300", "component": d["component"],
             "variable": d["variable"]} for d in get_variable_data])

    @on("SetVariables")
    def set_variables(self, set_variable_data, **kw):
        self.asked.append(("SetVariables", set_variable_data[0]["variable"]["name"],
                           set_variable_data[0]["attribute_value"]))
        return result201.SetVariables(set_variable_result=[
            {"attribute_status": "Accepted", "component": d["component"], "variable": d["variable"]}
            for d in set_variable_data])

    @on("RequestStartTransaction")
    def request_start(self, id_token, remote_start_id, **kw):
        self.asked.append(("RequestStartTransaction", id_token["id_token"], kw.get("evse_id")))
        return result201.RequestStartTransaction(status="Accepted")

    @after("RequestStartTransaction")
    def plugged_in(self, id_token, remote_start_id, **kw):
        asyncio.get_running_loop().create_task(self.call(call201.TransactionEvent(
            event_type="Started", timestamp=now(), trigger_reason="RemoteStart", seq_no=0,
            transaction_info={"transaction_id": "R-1", "remote_start_id": remote_start_id},
            id_token=id_token, evse={"id": kw.get("evse_id") or 1, "connector_id": 1},
            meter_value=[{"timestamp": now(), "sampled_value": [{"value": 0}]}])))

    @on("RequestStopTransaction")
    def request_stop(self, transaction_id, **kw):
        self.asked.append(("RequestStopTransaction", transaction_id))
        return result201.RequestStopTransaction(status="Accepted")


def api(edge, method: str, path: str, body=None, token: str | None = None) -> tuple[int, object]:
    req = urllib.request.Request(f"http://127.0.0.1:{edge.web_port}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    token = edge.token if token is None else token
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=40) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


async def call(edge, method: str, path: str, body=None, token: str | None = None) -> tuple[int, object]:
    return await asyncio.to_thread(api, edge, method, path, body, token)


async def connected(edge, charger_id: str, version: str, cls) -> Charger:
    ch = await Charger(edge.url, charger_id, version, cp_class=cls).connect()
    ch.cp.asked = []
    if version == "1.6":
        await ch.boot16()
    else:
        await ch.call(call201.BootNotification(charging_station={"vendor_name": "ACME", "model": "M"},
                                               reason="PowerUp"))
    await wait_for(lambda: edge.query("SELECT connected FROM chargers WHERE id = ?", (charger_id,)) == [(1,)])
    return ch


async def test_each_intent_in_16_with_the_chargers_real_answer(edge_factory):
    edge = edge_factory({"site": {"accept_unknown_cards": False}, "billing": {"min_start_balance": "1.00"}})
    add_card(edge, "04A1A1A1", "commercial", topup=100_000)
    ch = await connected(edge, "OP16", "1.6", Operated16)
    base = "/api/chargers/OP16"
    try:
        status, out = await call(edge, "POST", f"{base}/reset", {"hard": True})
        assert status == 200 and out["status"] == "answered" and out["response"] == {"status": "Accepted"}
        assert (out["charger"], out["version"], out["action"]) == ("OP16", "1.6", "Reset")
        assert (await call(edge, "POST", f"{base}/unlock", {"connector": 2}))[1]["response"] == {"status": "Unlocked"}
        await call(edge, "POST", f"{base}/availability", {"connector": 0, "operative": False})
        await call(edge, "POST", f"{base}/trigger", {"message": "StatusNotification", "connector": 1})
        status, out = await call(edge, "GET", f"{base}/configuration?key=HeartbeatInterval&key=Nope")
        assert out["response"]["configurationKey"] == [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]
        assert out["response"]["unknownKey"] == ["Nope"]
        status, out = await call(edge, "PUT", f"{base}/configuration", {"key": "HeartbeatInterval", "value": "120"})
        assert out["response"] == {"status": "Accepted"}
        status, out = await call(edge, "POST", f"{base}/clear-cache")
        assert status == 200 and out["status"] == "callerror" and out["error"]["code"] == "NotSupported"
        assert "keeps no cache" in out["error"]["description"]
        status, out = await call(edge, "POST", f"{base}/start", {"connector": 1, "card": "04:a1:a1:a1"})
        assert status == 200 and out["response"] == {"status": "Accepted"}, out
        tx = out["transaction"]
        assert tx is not None and tx["id_tag"] == "04A1A1A1" and tx["hold_minor"] > 0, "billed as a tap is"
        status, out = await call(edge, "POST", f"{base}/stop", {"transaction": tx["id"]})
        assert out["response"] == {"status": "Accepted"}
        assert ch.cp.asked == [
            ("Reset", "Hard"), ("UnlockConnector", 2), ("ChangeAvailability", 0, "Inoperative"),
            ("TriggerMessage", "StatusNotification", 1), ("ChangeConfiguration", "HeartbeatInterval", "120"),
            ("RemoteStartTransaction", "04A1A1A1", 1), ("RemoteStopTransaction", tx["id"])]
        # any call, with its own timeout: the charger says nothing in time
        status, out = await call(edge, "POST", f"{base}/call/DataTransfer?timeout=1", {"vendorId": "acme"})
        assert status == 504 and out["status"] == "timeout"
        status, out = await call(edge, "POST", f"{base}/call/GetConfiguration", {"key": ["MeterValueSampleInterval"]})
        assert out["response"]["configurationKey"][0]["value"] == "60"
        # a payload that does not fit the schema: 422, nothing sent
        sent_before = len(ch.received)
        status, out = await call(edge, "POST", f"{base}/call/Reset", {"type": "Sideways"})
        assert status == 422 and "Reset" in out["detail"]
        status, out = await call(edge, "POST", f"{base}/trigger", {"message": "TransactionEvent"})
        assert status == 422 and "cannot trigger" in out["detail"]
        assert len(ch.received) == sent_before
    finally:
        await ch.close()
    status, out = await call(edge, "POST", f"{base}/reset", {})
    assert status == 409 and out["status"] == "not_connected"
    status, ops = await call(edge, "GET", "/api/operations?charger=OP16&limit=50")
    assert [o["action"] for o in ops[-3:]] == ["ChangeAvailability", "UnlockConnector", "Reset"], "newest first"
    assert ops[-1]["request"] == {"type": "Hard"} and ops[-1]["response"] == {"status": "Accepted"}
    assert {o["status"] for o in ops} >= {"answered", "callerror", "timeout", "not_connected"}
    assert all(o["who"] == "local" for o in ops), "who asked: the token's name"
    assert len([o for o in ops if o["action"] == "Reset"]) == 2 and ops[0]["status"] == "not_connected"


async def test_each_intent_in_201(edge_factory):
    edge = edge_factory({"billing": {"min_start_balance": "1.00"}})
    add_card(edge, "04B1B1B1", "commercial", topup=100_000)
    ch = await connected(edge, "OP201", "2.0.1", Operated201)
    base = "/api/chargers/OP201"
    try:
        await call(edge, "POST", f"{base}/reset", {"hard": False})
        await call(edge, "POST", f"{base}/unlock", {"connector": 2})
        await call(edge, "POST", f"{base}/availability", {"connector": 1, "operative": True})
        status, out = await call(edge, "GET", f"{base}/configuration?key=OCPPCommCtrlr.HeartbeatInterval")
        assert out["action"] == "GetVariables" and out["response"]["getVariableResult"][0]["attributeValue"] == "300"
        status, out = await call(edge, "GET", f"{base}/configuration?key=HeartbeatInterval")
        assert status == 422 and "COMPONENT.VARIABLE" in out["detail"]
        await call(edge, "PUT", f"{base}/configuration", {"key": "OCPPCommCtrlr.HeartbeatInterval", "value": "60"})
        status, out = await call(edge, "POST", f"{base}/start", {"connector": 1, "card": "04B1B1B1"})
        assert out["action"] == "RequestStartTransaction" and out["transaction"]["tx_key"] == "R-1", out
        await call(edge, "POST", f"{base}/stop", {"transaction": out["transaction"]["id"]})
        assert ch.cp.asked == [
            ("Reset", "OnIdle"), ("UnlockConnector", 2, 1), ("ChangeAvailability", "Operative", {"id": 1}),
            ("SetVariables", "HeartbeatInterval", "60"), ("RequestStartTransaction", "04B1B1B1", 1),
            ("RequestStopTransaction", "R-1")]
    finally:
        await ch.close()


async def test_tokens_and_roles(edge_factory):
    edge = edge_factory()
    ch = await connected(edge, "OPT", "1.6", Operated16)

    def token(name: str, role: str) -> str:
        out = subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "token", "create", name, "--role", role],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    try:
        viewer, operator = token("wall-screen", "viewer"), token("attendant", "operator")
        assert viewer not in edge.query("SELECT hash FROM api_tokens")[0], "stored hashed"
        for path in ("/api/chargers", "/api/transactions", "/api/operations", "/api/chargers/OPT/journal"):
            assert (await call(edge, "GET", path, token=""))[0] == 401, path
            assert (await call(edge, "GET", path, token="sk_not-a-token"))[0] == 401, path
            assert (await call(edge, "GET", path, token=viewer))[0] == 200, path
        assert (await call(edge, "POST", "/api/chargers/OPT/reset", {}, token=viewer))[0] == 403
        status, out = await call(edge, "POST", "/api/chargers/OPT/reset", {}, token=operator)
        assert status == 200 and out["response"] == {"status": "Accepted"}
        assert (await call(edge, "GET", "/healthz", token=""))[0] == 200, "health needs no token"
        listed = json.loads(subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "token", "list", "--json"],
                                           capture_output=True, text=True, timeout=30).stdout)
        assert {t["name"]: t["role"] for t in listed} == {"attendant": "operator", "local": "owner",
                                                          "kiosk": "operator", "wall-screen": "viewer"}
        assert "token" not in json.dumps(listed).replace('"name"', ""), "never the token itself"
        subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "token", "revoke", "attendant"], check=True,
                       capture_output=True)
        assert (await call(edge, "POST", "/api/chargers/OPT/reset", {}, token=operator))[0] == 401, "revoked"
        status, ops = await call(edge, "GET", "/api/operations", token=viewer)
        assert ops[0]["who"] == "attendant"
    finally:
        await ch.close()


def test_metrics_are_open_unless_the_owner_asks_for_a_token(edge_factory):
    edge = edge_factory({"web": {"metrics_token": True}})
    status, _ = api(edge, "GET", "/metrics", token="")
    assert status == 401, "a token is asked for"
    assert "sitekeeper_" in edge.http("/metrics", token=edge.token)
    assert api(edge, "GET", "/healthz", token="")[0] == 200, "health stays open"
    edge.stop()
    edge.config_path.write_text(edge.config_path.read_text().replace("metrics_token = true", "metrics_token = false"))
    edge.start()
    assert "sitekeeper_" in edge.http("/metrics", token="")


async def test_the_cli_is_a_face_over_the_same_operations(edge_factory):
    edge = edge_factory()
    ch = await connected(edge, "OPC", "1.6", Operated16)

    async def cli(*args: str) -> subprocess.CompletedProcess:
        return await asyncio.to_thread(subprocess.run, [SITEKEEPER, "--config", str(edge.config_path), *args],
                                       capture_output=True, text=True, timeout=60)

    try:
        out = await cli("charger", "OPC", "reset", "--hard")
        assert out.returncode == 0 and out.stdout.strip() == 'OPC Reset: {"status": "Accepted"}', out.stderr
        out = await cli("charger", "OPC", "config", "HeartbeatInterval", "--json")
        assert json.loads(out.stdout)["response"]["configurationKey"][0]["value"] == "300"
        out = await cli("charger", "OPC", "call", "UnlockConnector", '{"connectorId": 1}')
        assert "Unlocked" in out.stdout
        out = await cli("charger", "OPC", "clear-cache")
        assert out.returncode == 1 and "callerror: NotSupported" in out.stdout
        out = await cli("charger", "list", "--json")
        assert [c["id"] for c in json.loads(out.stdout) if c["connected"]] == ["OPC"]
        out = await cli("charger", "OPC", "dance")
        assert out.returncode == 2 and "not a charger command" in out.stderr
        out = await cli("operations", "list", "--json")
        assert [o["action"] for o in json.loads(out.stdout)] == ["ClearCache", "UnlockConnector",
                                                                 "GetConfiguration", "Reset"]
    finally:
        await ch.close()
    out = await cli("charger", "OPC", "reset")
    assert out.returncode == 1 and "not_connected" in out.stdout


@pytest.mark.parametrize("bad", ["[1, 2]", "not json"])
async def test_a_body_that_is_not_an_object_is_refused(edge_factory, bad):
    edge = edge_factory()
    req = urllib.request.Request(f"http://127.0.0.1:{edge.web_port}/api/chargers/X/call/Reset", method="POST",
                                 data=bad.encode(), headers={"Content-Type": "application/json",
                                                             "Authorization": f"Bearer {edge.token}"})
    with pytest.raises(urllib.error.HTTPError) as info:
        await asyncio.to_thread(urllib.request.urlopen, req, None, 10)
    assert info.value.code == 422


async def test_in_proxy_mode_operations_work_with_the_cloud_up_or_away_and_never_disturb_its_calls(edge_factory):
    from conftest import free_port
    from ocpp.v16 import call as up16
    from peers import Csms
    from test_proxy import proxy_config

    csms = await Csms(free_port()).start()
    edge = edge_factory(proxy_config(csms))
    ch = await connected(edge, "OPP", "1.6", Operated16)
    try:
        await wait_for(lambda: "OPP" in csms.peers, what="the upstream link")
        # the cloud asks the charger something while the owner resets it: each gets its own answer
        theirs = asyncio.create_task(csms.peers["OPP"].cp.call(up16.GetConfiguration(key=["HeartbeatInterval"]),
                                                               suppress=False))
        status, ours = await call(edge, "POST", "/api/chargers/OPP/reset", {})
        assert status == 200 and ours["response"] == {"status": "Accepted"}
        got = await asyncio.wait_for(theirs, 15)
        assert got.configuration_key[0]["value"] == "300", "upstream's own call answered, to upstream"
        assert not any('"Reset"' in t for p in csms.history for t in p.received), "the cloud never sees ours"
        await csms.stop()  # the cloud goes away: the owner may still unlock a stuck cable
        status, out = await call(edge, "POST", "/api/chargers/OPP/unlock", {"connector": 1})
        assert status == 200 and out["response"] == {"status": "Unlocked"}
    finally:
        await ch.close()
        await csms.stop()


async def test_operations_can_be_left_to_the_cloud(edge_factory):
    from conftest import free_port
    from peers import Csms
    from test_proxy import proxy_config

    csms = await Csms(free_port()).start()
    edge = edge_factory({**proxy_config(csms), "operations": {"in_proxy": False}})
    ch = await connected(edge, "OPQ", "1.6", Operated16)
    try:
        status, out = await call(edge, "POST", "/api/chargers/OPQ/reset", {})
        assert status == 403 and "in_proxy = false" in out["detail"]
        assert ch.cp.asked == []
    finally:
        await ch.close()
        await csms.stop()
