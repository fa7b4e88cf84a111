"""An independent OCPP stack against the real edge daemon: ocpp-rpc (npm) in strict mode as the charger.

`tests/node/charger.js` runs an ocpp-rpc `RPCClient` with `strictMode: true`, which validates every CALL it
sends and every CALLRESULT it receives against the official OCPP 1.6J / 2.0.1 JSON schemas, and prints one
JSON line per call. The tests run it against the edge in standalone mode (the edge is the CSMS) and in proxy
mode in front of `peers.Csms`, then check what the charger saw, what upstream received and what the edge
recorded in its database. Node.js and `tests/node/node_modules` come from `./setup.sh --dev`; their absence
is a failure, not a skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websockets
from conftest import EdgeProcess, free_port
from peers import Csms, now

NODE_DIR = Path(__file__).resolve().parent / "node"
CHARGER_JS = NODE_DIR / "charger.js"
ENERGY = "Energy.Active.Import.Register"
PROTOCOLS = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}


@dataclass
class RpcRun:
    """What one run of charger.js printed, parsed."""

    returncode: int
    lines: list[dict[str, Any]]
    stderr: str

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("type") in types]

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Every CALL the charger made with its outcome ("result" or "error"), in order."""
        return self.of_type("result", "error")

    def result(self, action: str, index: int = 0) -> dict[str, Any]:
        found = [c for c in self.of_type("result") if c["action"] == action]
        assert len(found) > index, f"no result #{index} for {action}\n{self}"
        return found[index]

    def __str__(self) -> str:
        out = "\n".join(json.dumps(line) for line in self.lines)
        return f"charger.js exit {self.returncode}\n--- stdout\n{out}\n--- stderr\n{self.stderr}"


class NodeCharger:
    """charger.js running as a subprocess; its stdout is read line by line without blocking the loop that
    the test's peers run on."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc
        self.lines: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, url: str, charger_id: str, version: str, scenario: str) -> NodeCharger:
        node = shutil.which("node")
        assert node, "Node.js is not on PATH: run ./setup.sh --dev"
        assert (NODE_DIR / "node_modules" / "ocpp-rpc").is_dir(), "ocpp-rpc is not installed: run ./setup.sh --dev"
        proc = await asyncio.create_subprocess_exec(
            node, str(CHARGER_JS), url, charger_id, PROTOCOLS[version], scenario, cwd=NODE_DIR,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        return cls(proc)

    async def _next_line(self) -> dict[str, Any] | None:
        assert self.proc.stdout is not None
        text = await self.proc.stdout.readline()
        if not text:
            return None
        try:
            line = json.loads(text)
        except ValueError:
            line = {"type": "text", "text": text.decode(errors="replace")}
        self.lines.append(line)
        return line

    async def wait_for(self, kind: str, timeout: float = 30) -> dict[str, Any]:
        """Read output until a line of type `kind`."""
        try:
            async with asyncio.timeout(timeout):
                while (line := await self._next_line()) is not None:
                    if line.get("type") == kind:
                        return line
        except TimeoutError:
            self.proc.kill()
        raise AssertionError(f"charger.js printed no {kind!r} line:\n{await self.finish()}")

    async def finish(self, timeout: float = 90) -> RpcRun:
        """Wait for the scenario to end (killing it after `timeout` seconds) and return all it printed."""
        assert self.proc.stderr is not None
        try:
            async with asyncio.timeout(timeout):
                while await self._next_line() is not None:
                    pass
                stderr = await self.proc.stderr.read()
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(f"charger.js did not finish in {timeout} s:\n"
                                 f"{RpcRun(-9, self.lines, '')}") from None
        assert self.proc.returncode is not None
        return RpcRun(self.proc.returncode, self.lines, stderr.decode(errors="replace"))


async def run_charger(url: str, charger_id: str, version: str, scenario: str) -> RpcRun:
    """Run one scenario of charger.js to its end."""
    return await (await NodeCharger.start(url, charger_id, version, scenario)).finish()


def assert_clean(run: RpcRun) -> None:
    """The scenario completed: every call answered with a CALLRESULT that passed strict validation."""
    assert run.returncode == 0, str(run)
    assert run.lines and run.lines[-1] == {"type": "done"}, str(run)
    assert not run.of_type("error", "strictValidationFailure", "badMessage", "fatal", "text"), str(run)


def wh(sampled_value: dict[str, Any]) -> int:
    """A sampled energy value in Wh (1.6 `unit`, 2.0.1 `unitOfMeasure.unit`; kWh converted)."""
    unit = sampled_value.get("unit") or sampled_value.get("unitOfMeasure", {}).get("unit", "Wh")
    value = float(sampled_value["value"])
    return round(value * 1000) if unit == "kWh" else round(value)


def energy_samples(request: dict[str, Any], key: str = "meterValue") -> list[dict[str, Any]]:
    return [s for mv in request.get(key, []) for s in mv["sampledValue"] if s.get("measurand") == ENERGY]


async def wait_rows(edge: EdgeProcess, sql: str, params: tuple, expected: list[tuple], timeout: float = 5) -> None:
    """Poll until `sql` returns `expected` (the edge commits observed proxy traffic a moment after relaying)."""
    rows: list[tuple] = []
    for _ in range(int(timeout / 0.05)):
        rows = edge.query(sql, params)
        if rows == expected:
            return
        await asyncio.sleep(0.05)
    assert rows == expected


# -- standalone: the edge is the CSMS ------------------------------------------------------------------
ACTIONS_16 = ["BootNotification", "StatusNotification", "StatusNotification", "Heartbeat", "Authorize",
              "StatusNotification", "StartTransaction", "StatusNotification", "MeterValues", "MeterValues",
              "DataTransfer", "StopTransaction", "StatusNotification", "StatusNotification"]
ACTIONS_201 = ["BootNotification", "StatusNotification", "Heartbeat", "Authorize", "TransactionEvent",
               "StatusNotification", "TransactionEvent", "DataTransfer", "TransactionEvent", "StatusNotification"]


async def test_ocpp_rpc_16_charger_against_standalone_edge(edge_factory):
    edge = edge_factory()
    run = await run_charger(edge.url, "RPC16", "1.6", "session")
    assert_clean(run)
    assert [c["action"] for c in run.calls] == ACTIONS_16

    boot = run.result("BootNotification")["response"]
    assert boot["status"] == "Accepted" and boot["interval"] == 300
    assert run.result("Authorize")["response"] == {"idTagInfo": {"status": "Accepted"}}
    assert run.result("DataTransfer")["response"] == {"status": "UnknownVendorId"}  # the edge knows no vendor
    start, stop = run.result("StartTransaction"), run.result("StopTransaction")
    tx = start["response"]["transactionId"]
    assert tx > 0 and start["response"]["idTagInfo"] == {"status": "Accepted"}
    assert stop["request"]["transactionId"] == tx and stop["response"] == {"idTagInfo": {"status": "Accepted"}}

    meter_start, meter_stop = start["request"]["meterStart"], stop["request"]["meterStop"]
    assert meter_stop > meter_start
    rows = edge.query("SELECT charger_id, tx_key, ocpp_version, connector_id, id_tag, meter_start, meter_stop,"
                      " energy_wh, started_at, stopped_at, stop_reason FROM transactions WHERE id = ?", (tx,))
    assert rows == [("RPC16", str(tx), "1.6", 1, start["request"]["idTag"], meter_start, meter_stop,
                     meter_stop - meter_start, start["request"]["timestamp"], stop["request"]["timestamp"],
                     "Local")]
    sent = [s["value"] for c in run.calls if c["action"] == "MeterValues" for s in energy_samples(c["request"])]
    sent += [s["value"] for s in energy_samples(stop["request"], "transactionData")]
    stored = edge.query("SELECT value FROM meter_values WHERE charger_id = 'RPC16' AND tx_key = ? AND measurand = ?"
                        " ORDER BY id", (str(tx), ENERGY))
    assert [v for (v,) in stored] == sent == ["12500", "13100", "13750"]
    assert edge.query("SELECT connector_id, status FROM connector_status WHERE charger_id = 'RPC16'"
                      " ORDER BY connector_id") == [(0, "Available"), (1, "Available")]
    assert edge.query("SELECT vendor, model, serial, firmware, ocpp_version FROM chargers WHERE id = 'RPC16'") == [
        ("ocpp-rpc", "strict-1.6", "RPC16", "2.2.1", "1.6")]


async def test_ocpp_rpc_201_charger_against_standalone_edge(edge_factory):
    edge = edge_factory()
    run = await run_charger(edge.url, "RPC201", "2.0.1", "session")
    assert_clean(run)
    assert [c["action"] for c in run.calls] == ACTIONS_201

    boot = run.result("BootNotification")["response"]
    assert boot["status"] == "Accepted" and boot["interval"] == 300
    assert run.result("Authorize")["response"] == {"idTokenInfo": {"status": "Accepted"}}
    assert run.result("DataTransfer")["response"] == {"status": "UnknownVendorId"}
    started, updated, ended = (run.result("TransactionEvent", i) for i in range(3))
    assert [e["request"]["eventType"] for e in (started, updated, ended)] == ["Started", "Updated", "Ended"]
    assert started["response"] == ended["response"] == {"idTokenInfo": {"status": "Accepted"}}
    assert updated["response"] == {}

    tx_key = started["request"]["transactionInfo"]["transactionId"]
    (first,), (last,) = energy_samples(started["request"]), energy_samples(ended["request"])
    meter_start, meter_stop = wh(first), wh(last)
    assert last["unitOfMeasure"]["unit"] == "kWh" and meter_stop > meter_start  # 3.25 kWh after 2000 Wh
    rows = edge.query("SELECT ocpp_version, evse_id, connector_id, id_tag, meter_start, meter_stop, energy_wh,"
                      " started_at, stopped_at, stop_reason FROM transactions WHERE charger_id = 'RPC201'"
                      " AND tx_key = ?", (tx_key,))
    assert rows == [("2.0.1", 1, 1, started["request"]["idToken"]["idToken"], meter_start, meter_stop,
                     meter_stop - meter_start, started["request"]["timestamp"], ended["request"]["timestamp"],
                     "Local")]
    assert meter_stop - meter_start == 1250
    stored = edge.query("SELECT value, unit FROM meter_values WHERE charger_id = 'RPC201' AND tx_key = ?"
                        " ORDER BY id", (tx_key,))
    assert stored == [("2000", "Wh"), ("2600", "Wh"), ("3.25", "kWh")]
    assert edge.query("SELECT evse_id, connector_id, status FROM connector_status WHERE charger_id = 'RPC201'") == [
        (1, 1, "Available")]
    assert edge.query("SELECT vendor, model, serial, firmware, ocpp_version FROM chargers WHERE id = 'RPC201'") == [
        ("ocpp-rpc", "strict-2.0.1", "RPC201", "2.2.1", "2.0.1")]


# -- proxy: the edge in front of an upstream CSMS ------------------------------------------------------
# The edge's own heartbeat interval differs from upstream's (peers.Csms says 300), so that a Boot the edge
# answered itself cannot pass for upstream's answer.
EDGE_INTERVAL = 77


def proxy_edge(edge_factory: Callable[[dict], EdgeProcess], csms: Csms) -> EdgeProcess:
    return edge_factory({"upstream": {"mode": "proxy", "url": csms.url},
                         "ocpp": {"heartbeat_interval": EDGE_INTERVAL}})


def upstream_answers(csms: Csms, charger_id: str) -> dict[str, dict[str, Any]]:
    """Upstream's CALLRESULT payloads to `charger_id`, by message id."""
    out: dict[str, dict[str, Any]] = {}
    for peer in csms.history:
        if peer.charger_id == charger_id:
            for text in peer.sent:
                msg = json.loads(text)
                if msg[0] == 3:
                    out[msg[1]] = msg[2]
    return out


def assert_relayed(run: RpcRun, csms: Csms, charger_id: str) -> None:
    """Upstream up: every CALL reached upstream once, in order, under the message id ocpp-rpc gave it, and
    the charger got upstream's own answer (1.6 transaction ids aside: see the proxy test)."""
    boot = run.result("BootNotification")
    assert boot["response"]["interval"] != EDGE_INTERVAL, (
        f"upstream was connected, yet the edge answered the charger's BootNotification itself: {boot}")
    upstream = csms.calls(charger_id)
    assert [(m[1], m[2]) for m in upstream] == [(c["id"], c["action"]) for c in run.calls], str(run)
    answers = upstream_answers(csms, charger_id)
    for c in run.calls:
        if c["action"] != "StartTransaction":
            assert c["response"] == answers[c["id"]], f"{c['action']}: the charger did not get upstream's answer"


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_ocpp_rpc_charger_through_proxy_edge(edge_factory, version):
    csms = await Csms(free_port()).start()
    try:
        edge = proxy_edge(edge_factory, csms)
        cid = f"RPCPX{version.replace('.', '')}"
        run = await run_charger(edge.url, cid, version, "session")
    finally:
        await csms.stop()
    assert_clean(run)
    assert_relayed(run, csms, cid)
    upstream = csms.calls(cid)
    answers = upstream_answers(csms, cid)

    if version == "2.0.1":
        # Nothing to rewrite in 2.0.1: the charger's transaction id and seqNo pass through untouched.
        assert [m[3] for m in upstream] == [c["request"] for c in run.calls]
        events = [m[3] for m in upstream if m[2] == "TransactionEvent"]
        assert [(e["eventType"], e["seqNo"], e["transactionInfo"]["transactionId"]) for e in events] == [
            ("Started", 0, f"{cid}-tx1"), ("Updated", 1, f"{cid}-tx1"), ("Ended", 2, f"{cid}-tx1")]
        await wait_rows(edge, "SELECT tx_key, meter_start, meter_stop, energy_wh, stopped_at IS NOT NULL"
                              " FROM transactions WHERE charger_id = ?", (cid,), [(f"{cid}-tx1", 2000, 3250, 1250, 1)])
        return

    # 1.6: the charger only ever sees the edge's transaction id; upstream only ever sees its own. Upstream's id
    # is above every id this site has given, so the edge gives the charger that same number.
    start = run.result("StartTransaction")
    edge_tx = start["response"]["transactionId"]
    up_tx = answers[start["id"]]["transactionId"]
    assert up_tx >= 1000 and edge_tx == up_tx
    assert start["response"] == {**answers[start["id"]], "transactionId": edge_tx}
    for m, c in zip(upstream, run.calls, strict=True):
        expected = dict(c["request"])
        if m[2] in ("MeterValues", "StopTransaction"):
            assert c["request"]["transactionId"] == edge_tx
            expected["transactionId"] = up_tx
        assert m[3] == expected, f"{m[2]} reached upstream changed"
    counts = Counter(m[2] for m in upstream)
    assert counts["StartTransaction"] == 1 and counts["StopTransaction"] == 1
    assert edge.query("SELECT upstream_tx_id, upstream_status FROM transactions WHERE id = ?", (edge_tx,)) == [
        (up_tx, "Accepted")]
    await wait_rows(edge, "SELECT id, meter_start, meter_stop, energy_wh, stopped_at IS NOT NULL"
                          " FROM transactions WHERE charger_id = ?", (cid,), [(edge_tx, 12000, 13750, 1750, 1)])


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_boot_sent_on_open_goes_upstream_while_the_store_is_slow(edge_factory, version):
    """A charger sends its Boot the moment the socket opens. While the edge's first store write for the new
    connection is slow (an SD card's fsync; here: the test holds SQLite's write lock for a moment), that
    Boot must still go to the connected upstream and its answer back to the charger."""
    csms = await Csms(free_port()).start()
    try:
        edge = proxy_edge(edge_factory, csms)
        cid = f"SLOW{version.replace('.', '')}"
        lock = sqlite3.connect(edge.db_path, isolation_level=None, timeout=10)
        try:
            lock.execute("BEGIN IMMEDIATE")
            charger = await NodeCharger.start(edge.url, cid, version, "session")
            await charger.wait_for("open")  # the handshake is done and the Boot is on its way
            await asyncio.sleep(0.5)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        run = await charger.finish()
    finally:
        await csms.stop()
    assert_clean(run)
    assert_relayed(run, csms, cid)


# -- the harness itself: strict mode catches an answer that breaks the schema --------------------------
async def serve_bad_upstream(port: int, received: list[list]) -> websockets.Server:
    """An upstream CSMS that answers Boot and Heartbeat correctly and DataTransfer out of schema."""

    async def handler(ws: websockets.ServerConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for text in ws:
                msg = json.loads(text)
                if msg[0] != 2:
                    continue
                received.append(msg)
                payload = {
                    "BootNotification": {"status": "Accepted", "currentTime": now(), "interval": 300},
                    "Heartbeat": {"currentTime": now()},
                }.get(msg[2], {"status": "Maybe"})  # not one of DataTransfer's statuses
                await ws.send(json.dumps([3, msg[1], payload]))

    return await websockets.serve(handler, "127.0.0.1", port, subprotocols=list(PROTOCOLS.values()))


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_strict_mode_rejects_an_out_of_schema_answer(edge_factory, version):
    port, received = free_port(), []
    server = await serve_bad_upstream(port, received)
    try:
        edge = edge_factory({"upstream": {"mode": "proxy", "url": f"ws://127.0.0.1:{port}/csms"}})
        run = await run_charger(edge.url, "CANARY", version, "canary")
    finally:
        server.close()
        await server.wait_closed()
    assert run.returncode == 0, str(run)
    transfer = [c for c in run.calls if c["action"] == "DataTransfer"]
    assert len(transfer) == 1 and transfer[0]["type"] == "error" and transfer[0]["strict"], str(run)
    failures = run.of_type("strictValidationFailure")
    assert [(f["id"], f["outbound"], f["isCall"], f["result"]) for f in failures] == [
        (transfer[0]["id"], False, False, {"status": "Maybe"})]
    assert [m[1] for m in received if m[2] == "DataTransfer"] == [transfer[0]["id"]]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_every_intent_the_edge_sends_passes_a_strict_chargers_schema_check(edge_factory, version):
    """ocpp-rpc in strict mode validates each CALL the edge sends it: every operation of the API must fit."""
    import urllib.request

    edge = edge_factory()
    ch = await NodeCharger.start(edge.url, f"RPCOP{version[0]}", version, "operated")
    await ch.wait_for("ready")
    cid = f"RPCOP{version[0]}"
    key = "HeartbeatInterval" if version == "1.6" else "OCPPCommCtrlr.HeartbeatInterval"

    def api(method: str, path: str, body=None) -> dict:
        req = urllib.request.Request(f"http://127.0.0.1:{edge.web_port}/api/chargers/{cid}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {edge.token}"})
        with urllib.request.urlopen(req, timeout=40) as r:
            return json.loads(r.read())

    steps = [("POST", "/reset", {"hard": True}), ("POST", "/reset", {}), ("POST", "/unlock", {"connector": 1}),
             ("POST", "/availability", {"connector": 0, "operative": False}),
             ("POST", "/availability", {"connector": 1, "operative": True}),
             ("POST", "/trigger", {"message": "StatusNotification", "connector": 1}),
             ("POST", "/trigger", {"message": "Heartbeat"}), ("POST", "/clear-cache", None),
             ("GET", f"/configuration?key={key}", None), ("GET", "/configuration", None),
             ("PUT", "/configuration", {"key": key, "value": "120"}),
             ("POST", "/start?timeout=1", {"connector": 1, "card": "04A1B2C3"})]
    outs = [await asyncio.to_thread(api, m, p, b) for m, p, b in steps]
    assert [o["status"] for o in outs] == ["answered"] * len(steps), outs
    assert all((o["response"] or {}).get("status", "Accepted") in ("Accepted", "Unlocked") for o in outs), outs
    await asyncio.to_thread(api, "POST", "/call/DataTransfer", {"vendorId": "org.sitekeeper.tests"})
    run = await ch.finish()
    assert run.returncode == 0, str(run)
    assert run.of_type("strictValidationFailure") == []
    inbound = [line["action"] for line in run.of_type("inboundCall")]
    for action in ("Reset", "UnlockConnector", "ChangeAvailability", "TriggerMessage", "ClearCache",
                   "RemoteStartTransaction" if version == "1.6" else "RequestStartTransaction"):
        assert action in inbound, (action, inbound)
