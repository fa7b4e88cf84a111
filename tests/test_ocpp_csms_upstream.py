"""The third-party `ocpp-csms` CentralSystem (PyPI) as the OCPP 1.6 upstream CSMS of the real edge in proxy mode.

Chargers are built on the `ocpp` package (tests/peers.py). What ocpp-csms saw is read from its own events and
from its documented `ocpp_csms.wire` debug logger (every frame it received and sent, in full). Covered: online
pass-through with the 1.6 transaction id mapping both ways, RemoteStopTransaction and SetChargingProfile coming
down with the edge's id, and sessions run while ocpp-csms is away, replayed once and in order when it returns.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any, TypeVar

import pytest
import websockets
from conftest import EdgeProcess, free_port, wait_for
from ocpp.routing import on
from ocpp.v16 import ChargePoint as CP16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp_csms import (
    BootEvent,
    CentralSystem,
    ChargePointEvent,
    ConnectedEvent,
    MeterValuesEvent,
    StatusEvent,
    TransactionStartedEvent,
    TransactionStoppedEvent,
)
from peers import Charger, RecordingConnection, now

TAG = "04AABBCCDD"
CSMS_HEARTBEAT = 123  # ocpp-csms's BootNotification interval; the edge's own answer says 300
EDGE_HEARTBEAT = 300

TRANSACTION_EVENTS = (TransactionStartedEvent, MeterValuesEvent, TransactionStoppedEvent)

E = TypeVar("E", bound=ChargePointEvent)


# -- peers -------------------------------------------------------------------------------------------------
class RemoteControlledCP(CP16):
    """A 1.6 charge point that accepts RemoteStopTransaction and SetChargingProfile, remembering what it got."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.remote_stops: list[int] = []
        self.profiles: list[dict[str, Any]] = []

    @on("RemoteStopTransaction")
    def on_remote_stop(self, transaction_id: int) -> result16.RemoteStopTransaction:
        self.remote_stops.append(transaction_id)
        return result16.RemoteStopTransaction(status="Accepted")

    @on("SetChargingProfile")
    def on_set_charging_profile(self, connector_id: int,
                                cs_charging_profiles: dict[str, Any]) -> result16.SetChargingProfile:
        self.profiles.append(cs_charging_profiles)
        return result16.SetChargingProfile(status="Accepted")


class RemoteControlledCharger(Charger):
    """`peers.Charger` (1.6) whose charge point answers the CSMS's RemoteStop and SetChargingProfile."""

    cp: RemoteControlledCP

    async def connect(self) -> RemoteControlledCharger:
        self.ws = await websockets.connect(self.url, subprotocols=["ocpp1.6"], proxy=None, open_timeout=10)
        conn = RecordingConnection(self.ws, self.received, self.sent)
        self.cp = RemoteControlledCP(self.charger_id, conn, response_timeout=15)
        self._task = asyncio.create_task(self.cp.start())
        return self


class WireTap(logging.Handler):
    """Every frame ocpp-csms received and sent, from its `ocpp_csms.wire` logger (kept across instances)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.received: list[str] = []
        self.sent: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # The `ocpp` package logs "<id>: receive message <text>" and "<id>: send <text>".
        if record.msg == "%s: receive message %s" and isinstance(record.args, tuple):
            self.received.append(str(record.args[1]))
        elif record.msg == "%s: send %s" and isinstance(record.args, tuple):
            self.sent.append(str(record.args[1]))

    def calls(self, action: str | None = None) -> list[list[Any]]:
        """CALLs ocpp-csms received, parsed, in order (`action` to pick one kind)."""
        frames = [json.loads(t) for t in self.received]
        return [f for f in frames if f[0] == 2 and (action is None or f[2] == action)]


@pytest.fixture
def wire() -> Iterator[WireTap]:
    logger = logging.getLogger("ocpp_csms.wire")
    tap, level = WireTap(), logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(tap)
    yield tap
    logger.removeHandler(tap)
    logger.setLevel(level)


# -- helpers -----------------------------------------------------------------------------------------------
def proxy_config(csms_port: int, **upstream: Any) -> dict[str, Any]:
    return {"upstream": {"mode": "proxy", "url": f"ws://127.0.0.1:{csms_port}/", "call_timeout": 3,
                         "reconnect_max": 1.0, **upstream}}


def central_system(port: int, events: list[ChargePointEvent]) -> CentralSystem:
    """An ocpp-csms CentralSystem on 127.0.0.1:`port` whose events all go to `events` (start it with async with)."""
    cs = CentralSystem(host="127.0.0.1", port=port, heartbeat_interval=CSMS_HEARTBEAT, call_timeout=10)
    cs.add_listener(events.append)
    return cs


def of(events: list[ChargePointEvent], kind: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


async def upstream_links(edge: EdgeProcess) -> int:
    return json.loads(await asyncio.to_thread(edge.http, "/healthz"))["upstream_links_up"]


async def wait_links(edge: EdgeProcess, n: int, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while await upstream_links(edge) != n:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"edge never had {n} upstream link(s)")
        await asyncio.sleep(0.1)


async def settled(edge: EdgeProcess, sql: str, params: tuple, expected: list[tuple]) -> None:
    """Assert the edge's database answers `sql` with `expected` once its writes settle: what it records of a
    frame it forwards is committed in the background, a moment after the charger has its answer."""
    deadline = asyncio.get_running_loop().time() + 5
    while (rows := edge.query(sql, params)) != expected and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert rows == expected


def queued(edge: EdgeProcess, charger_id: str) -> list[str]:
    return [r[0] for r in edge.query("SELECT action FROM upstream_queue WHERE charger_id = ? ORDER BY seq",
                                     (charger_id,))]


def frames(texts: list[str], kind: int, action: str | None = None) -> list[list[Any]]:
    """Parsed frames of one message type (2 CALL, 3 CALLRESULT), optionally of one CALL action."""
    parsed = [json.loads(t) for t in texts]
    return [f for f in parsed if f[0] == kind and (action is None or f[2] == action)]


def sent_text(ch: Charger, action: str) -> str:
    """The text of the one CALL of `action` the charger sent."""
    (text,) = [t for t in ch.sent if json.loads(t)[0] == 2 and json.loads(t)[2] == action]
    return text


def sent_call(ch: Charger, action: str) -> list[Any]:
    """The one CALL of `action` the charger sent, parsed."""
    return json.loads(sent_text(ch, action))


async def stop_remote(ch: Charger, tx_id: int, meter_stop: int) -> result16.StopTransaction:
    return await ch.call(call16.StopTransaction(transaction_id=tx_id, meter_stop=meter_stop, timestamp=now(),
                                                reason="Remote"))


# -- tests -------------------------------------------------------------------------------------------------
async def test_online_session_passes_through_with_mapped_transaction_id(edge_factory, wire: WireTap) -> None:
    port = free_port()
    events: list[ChargePointEvent] = []
    async with central_system(port, events) as cs:
        edge = edge_factory(proxy_config(port))
        ch = await Charger(edge.url, "CSMS-UP-1", "1.6").connect()
        try:
            await wait_for(lambda: of(events, ConnectedEvent), what="ocpp-csms to see the charger connect")
            assert cs.charge_points["CSMS-UP-1"].connected

            boot = await ch.boot16()
            assert (boot.status, boot.interval) == ("Accepted", CSMS_HEARTBEAT), "ocpp-csms answers the Boot"
            await ch.status16("Available")
            start = await ch.start16(TAG, meter_start=1000)
            edge_tx = start.transaction_id
            await ch.meter16(edge_tx, 1500)
            await ch.stop16(edge_tx, 2000, id_tag=TAG)
            heartbeat = await ch.call(call16.Heartbeat())
        finally:
            await ch.close()

        (boot_event,) = of(events, BootEvent)
        assert (boot_event.info.vendor, boot_event.info.model) == ("tests", "test")
        assert [(e.connector.connector_id, e.connector.status.value) for e in of(events, StatusEvent)] == [
            (1, "Available")]
        (started,) = of(events, TransactionStartedEvent)
        up_tx = started.transaction.transaction_id
        assert (started.transaction.connector_id, started.transaction.id_tag, started.transaction.meter_start) == (
            1, TAG, 1000)
        assert start.id_tag_info["status"] == "Accepted"
        assert edge_tx != up_tx, "the charger gets the edge's own transaction id, not upstream's"
        await settled(edge, "SELECT upstream_tx_id, started_offline, energy_wh FROM transactions WHERE id = ?",
                      (edge_tx,), [(up_tx, 0, 1000)])
        assert not any(str(up_tx) in text for text in ch.received), "upstream's id never reaches the charger"

        (meter,) = of(events, MeterValuesEvent)
        assert (meter.transaction_id, [r.value for r in meter.readings]) == (up_tx, ["1500"])
        (stopped,) = of(events, TransactionStoppedEvent)
        assert (stopped.transaction.transaction_id, stopped.transaction.meter_stop,
                stopped.transaction.energy_wh) == (up_tx, 2000, 1000)
        assert not cs.charge_points["CSMS-UP-1"].transactions, "ocpp-csms closed its own transaction"
        assert heartbeat.current_time

    # On the wire: every CALL reaches ocpp-csms with its own text and id, but for the transaction id going up.
    by_id = {msg[1]: (msg, text) for msg, text in ((json.loads(t), t) for t in wire.received) if msg[0] == 2}
    for text in ch.sent:
        msg = json.loads(text)
        up_msg, up_text = by_id[msg[1]]
        if msg[2] in ("MeterValues", "StopTransaction"):
            assert msg[3]["transactionId"] == edge_tx
            assert up_msg == [2, msg[1], msg[2], {**msg[3], "transactionId": up_tx}]
        else:
            assert up_text == text, f"{msg[2]} must pass through byte for byte"
    # And every answer ocpp-csms gave reaches the charger as it was, but for StartTransaction's id.
    for text in wire.sent:
        msg = json.loads(text)
        (at_charger,) = [t for t in ch.received if json.loads(t)[1] == msg[1]]
        if msg[1] == sent_call(ch, "StartTransaction")[1]:
            assert json.loads(at_charger) == [3, msg[1], {**msg[2], "transactionId": edge_tx}]
        else:
            assert at_charger == text


async def test_remote_stop_and_charging_profile_reach_charger_with_edge_id(edge_factory, wire: WireTap) -> None:
    port = free_port()
    events: list[ChargePointEvent] = []
    async with central_system(port, events) as cs:
        edge = edge_factory(proxy_config(port))
        ch = await RemoteControlledCharger(edge.url, "CSMS-UP-2", "1.6").connect()
        try:
            await ch.boot16()
            edge_tx = (await ch.start16(TAG, meter_start=500)).transaction_id
            await wait_for(lambda: of(events, TransactionStartedEvent), what="ocpp-csms to see the start")
            up_tx = of(events, TransactionStartedEvent)[0].transaction.transaction_id
            assert edge_tx != up_tx
            cp = cs.charge_points["CSMS-UP-2"]

            profile = await cp.async_call(call16.SetChargingProfile(connector_id=1, cs_charging_profiles={
                "charging_profile_id": 7, "transaction_id": up_tx, "stack_level": 0,
                "charging_profile_purpose": "TxProfile", "charging_profile_kind": "Relative",
                "charging_schedule": {"charging_rate_unit": "W",
                                      "charging_schedule_period": [{"start_period": 0, "limit": 7400}]}}))
            assert profile.status == "Accepted"
            assert [p["transaction_id"] for p in ch.cp.profiles] == [edge_tx]

            assert await cp.async_remote_stop_transaction(up_tx) == "Accepted", "the charger's answer goes up"
            assert ch.cp.remote_stops == [edge_tx]
            (remote_stop,) = frames(ch.received, 2, "RemoteStopTransaction")
            (up_remote_stop,) = frames(wire.sent, 2, "RemoteStopTransaction")
            assert remote_stop == [2, up_remote_stop[1], "RemoteStopTransaction", {"transactionId": edge_tx}]
            assert up_remote_stop[3] == {"transactionId": up_tx}

            await stop_remote(ch, edge_tx, 900)
            await wait_for(lambda: of(events, TransactionStoppedEvent), what="ocpp-csms to see the stop")
        finally:
            await ch.close()

    (stopped,) = of(events, TransactionStoppedEvent)
    assert (stopped.transaction.transaction_id, stopped.transaction.stop_reason,
            stopped.transaction.energy_wh) == (up_tx, "Remote", 400)
    # The charger's answers went up as it sent them (same id and text).
    for action in ("SetChargingProfile", "RemoteStopTransaction"):
        (down,) = frames(ch.received, 2, action)
        (answer,) = [t for t in ch.sent if json.loads(t)[1] == down[1]]
        assert answer in wire.received


async def test_offline_session_replayed_once_in_order(edge_factory, wire: WireTap) -> None:
    port = free_port()  # ocpp-csms is not running yet
    edge = edge_factory(proxy_config(port, offline_accept_unknown=True))
    ch = await Charger(edge.url, "CSMS-UP-3", "1.6").connect()
    events: list[ChargePointEvent] = []
    try:
        boot = await ch.boot16()
        assert (boot.status, boot.interval) == ("Accepted", EDGE_HEARTBEAT), "the edge answers while upstream is away"
        await ch.status16("Available")
        start = await ch.start16(TAG, meter_start=10_000)
        assert start.id_tag_info["status"] == "Accepted"
        edge_tx = start.transaction_id
        await ch.status16("Charging")
        await ch.meter16(edge_tx, 10_700)
        await ch.stop16(edge_tx, 11_500, id_tag=TAG)
        await ch.status16("Available")
        assert queued(edge, "CSMS-UP-3") == ["StartTransaction", "MeterValues", "StopTransaction"]

        async with central_system(port, events) as cs:
            await wait_for(lambda: not queued(edge, "CSMS-UP-3"), what="the edge to replay its queue", timeout=20)
            # The queue is empty, so the edge is live: this Heartbeat must go to ocpp-csms as the last CALL.
            heartbeat = await ch.call(call16.Heartbeat())
            assert heartbeat.current_time
            await wait_for(lambda: wire.calls("Heartbeat"), what="the live Heartbeat to reach ocpp-csms")
            await asyncio.sleep(0.5)  # room for a duplicate to show up
            assert not cs.charge_points["CSMS-UP-3"].transactions
    finally:
        await ch.close()

    actions = [msg[2] for msg in wire.calls()]
    assert actions == ["BootNotification", "StatusNotification", "StartTransaction", "MeterValues",
                       "StopTransaction", "Heartbeat"], "Boot, latest Status per connector, queue in order, live"
    # The replay carries the charger's own texts and message ids (but for the transaction id).
    for action in ("BootNotification", "StartTransaction"):
        assert sent_text(ch, action) in wire.received, f"{action} replayed byte for byte"
    last_status = frames(ch.sent, 2, "StatusNotification")[-1]
    assert wire.calls("StatusNotification") == [last_status]

    (started,) = of(events, TransactionStartedEvent)
    up_tx = started.transaction.transaction_id
    assert (started.transaction.meter_start, started.transaction.id_tag) == (10_000, TAG)
    (stop,) = wire.calls("StopTransaction")
    charger_stop = sent_call(ch, "StopTransaction")
    assert stop == [2, charger_stop[1], "StopTransaction", {**charger_stop[3], "transactionId": up_tx}]
    (meter,) = wire.calls("MeterValues")
    assert meter[3]["transactionId"] == up_tx
    (stopped,) = of(events, TransactionStoppedEvent)
    assert (stopped.transaction.transaction_id, stopped.transaction.energy_wh) == (up_tx, 1500)
    session = [type(e) for e in events if isinstance(e, TRANSACTION_EVENTS)]
    assert session == [TransactionStartedEvent, MeterValuesEvent, TransactionStoppedEvent]
    assert edge.query("SELECT upstream_tx_id, started_offline, energy_wh FROM transactions WHERE id = ?",
                      (edge_tx,)) == [(up_tx, 1, 1500)]


async def test_csms_restart_mid_session(edge_factory, wire: WireTap) -> None:
    """ocpp-csms goes away mid-session and a new instance comes back on the same port: the rest of the session
    is replayed with the id the first instance gave, and later sessions map to the new instance's ids."""
    port = free_port()
    events: list[ChargePointEvent] = []
    edge = edge_factory(proxy_config(port))
    ch = Charger(edge.url, "CSMS-UP-4", "1.6")
    try:
        async with central_system(port, events):
            await ch.connect()
            await ch.boot16()
            edge_tx = (await ch.start16(TAG, meter_start=100)).transaction_id
            await ch.meter16(edge_tx, 300)
        first_tx = of(events, TransactionStartedEvent)[0].transaction.transaction_id
        await wait_links(edge, 0)
        await ch.meter16(edge_tx, 600)
        assert (await ch.stop16(edge_tx, 900, id_tag=TAG)).id_tag_info["status"] == "Accepted", "card cached"
        assert queued(edge, "CSMS-UP-4") == ["MeterValues", "StopTransaction"]
        received_before = len(wire.received)

        async with central_system(port, events) as cs2:
            await wait_for(lambda: not queued(edge, "CSMS-UP-4"), what="the edge to replay its queue", timeout=20)
            second = await ch.start16(TAG, meter_start=900)
            await ch.stop16(second.transaction_id, 1000, id_tag=TAG)
            assert not cs2.charge_points["CSMS-UP-4"].transactions
    finally:
        await ch.close()

    replayed = [json.loads(t) for t in wire.received[received_before:]]
    replayed = [(m[2], m[3].get("transactionId")) for m in replayed if m[0] == 2]
    second_tx = of(events, TransactionStartedEvent)[1].transaction.transaction_id
    assert replayed == [("MeterValues", first_tx), ("StopTransaction", first_tx), ("StartTransaction", None),
                        ("StopTransaction", second_tx)]
    (stopped,) = of(events, TransactionStoppedEvent)  # ocpp-csms keeps no state across instances
    assert stopped.transaction.transaction_id == second_tx
    await settled(edge, "SELECT id, upstream_tx_id, energy_wh FROM transactions ORDER BY id", (), [
        (edge_tx, first_tx, 800), (second.transaction_id, second_tx, 100)])


async def test_remote_stop_after_csms_restart_reaches_the_running_session(edge_factory, wire: WireTap) -> None:
    """ocpp-csms numbers transactions from the Unix time its instance was created at, so an instance started
    within seconds of the last one reuses that one's ids (documented). Ten sessions end while ocpp-csms is
    away and are replayed to the new instance; a RemoteStop for the session running now must reach the charger
    with the edge's id of that session, not of a finished one that upstream once gave the same id."""
    port = free_port()
    events: list[ChargePointEvent] = []
    edge = edge_factory(proxy_config(port))
    ch = RemoteControlledCharger(edge.url, "CSMS-UP-5", "1.6")
    try:
        async with central_system(port, events):
            await ch.connect()
            await ch.boot16()
            finished = [(await ch.start16(TAG, meter_start=0, connector_id=c)).transaction_id for c in range(1, 11)]
        await wait_links(edge, 0)
        for tx in finished:
            await ch.stop16(tx, 100, id_tag=TAG)
        async with central_system(port, events) as cs2:
            await wait_for(lambda: not queued(edge, "CSMS-UP-5"), what="the edge to replay its queue", timeout=20)
            running = (await ch.start16(TAG, meter_start=100, connector_id=1)).transaction_id
            *old, new = of(events, TransactionStartedEvent)
            up_tx = new.transaction.transaction_id
            assert up_tx in [e.transaction.transaction_id for e in old], "premise: the new instance reused an id"
            assert await cs2.charge_points["CSMS-UP-5"].async_remote_stop_transaction(up_tx) == "Accepted"
    finally:
        await ch.close()
    (remote_stop,) = frames(ch.received, 2, "RemoteStopTransaction")
    assert remote_stop[3] == {"transactionId": running}, (
        f"upstream stopped its transaction {up_tx}, the session running as edge id {running}; the charger was "
        f"told to stop edge id {remote_stop[3]['transactionId']} (finished: {finished})")
