"""Proxy mode against a real upstream CSMS (the `ocpp` package) over real sockets: pass-through, offline
answering, replay after reconnect and after kill -9, 1.6 id rewriting, strict mode, upstream timeouts."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
import websockets
from conftest import free_port, wait_for
from ocpp.exceptions import OCPPError
from ocpp.v16 import call as call16
from peers import Charger, Csms


def proxy_config(csms: Csms, **upstream) -> dict:
    return {"upstream": {"mode": "proxy", "url": csms.url, "reconnect_min": 0.1, "reconnect_max": 0.5,
                         "call_timeout": 10, **upstream}}


@pytest.fixture
async def csms():
    server = await Csms(free_port()).start()
    yield server
    await server.stop()


async def test_pass_through_is_byte_identical(edge_factory, csms):
    edge = edge_factory(proxy_config(csms))
    ch = await Charger(edge.url, "PT1", "1.6").connect()
    try:
        await ch.boot16()
        await ch.status16("Available")
        await ch.call(call16.DataTransfer(vendor_id="acme", data="x"))
        await ch.call(call16.Heartbeat())
    finally:
        await ch.close()
    peer = csms.peers["PT1"]
    assert peer.subprotocol == "ocpp1.6"
    assert peer.received == ch.sent, "upstream got the charger's own text"
    assert ch.received == peer.sent, "the charger got upstream's own text"


async def test_both_links_compressed_and_frames_still_identical(edge_factory, csms):
    edge = edge_factory(proxy_config(csms))
    ch = await Charger(edge.url, "DEF1", "1.6").connect()
    try:
        assert "permessage-deflate" in ch.ws.response.headers["Sec-WebSocket-Extensions"]
        assert [type(e).__name__ for e in ch.ws.protocol.extensions] == ["PerMessageDeflate"]
        await ch.boot16()
        big = "meter log " * 3000  # 30 kB, compressible: one deflated frame each way
        await ch.call(call16.DataTransfer(vendor_id="acme", message_id="log", data=big))
        await ch.call(call16.Heartbeat())  # short messages go uncompressed on the same links
    finally:
        await ch.close()
    peer = csms.peers["DEF1"]
    assert [type(e).__name__ for e in peer.ws.protocol.extensions] == ["PerMessageDeflate"]
    assert peer.received == ch.sent and big in peer.received[1]
    assert ch.received == peer.sent


async def test_compression_can_be_turned_off_both_ways(edge_factory, csms):
    edge = edge_factory({**proxy_config(csms, compression=False), "ocpp": {"compression": False}})
    ch = await Charger(edge.url, "DEF2", "1.6").connect()
    try:
        assert "Sec-WebSocket-Extensions" not in ch.ws.response.headers
        await ch.call(call16.DataTransfer(vendor_id="acme", data="y" * 5000))
    finally:
        await ch.close()
    assert "sec-websocket-extensions" not in {k.lower() for k in csms.peers["DEF2"].headers}
    assert csms.peers["DEF2"].ws.protocol.extensions == []


async def test_subprotocol_of_upstream_is_mirrored(edge_factory):
    only201 = await Csms(free_port(), subprotocols=["ocpp2.0.1"]).start()
    try:
        edge = edge_factory(proxy_config(only201))
        async with websockets.connect(f"{edge.url}/MIRROR", subprotocols=["ocpp1.6", "ocpp2.0.1"],
                                      proxy=None) as ws:
            assert ws.subprotocol == "ocpp2.0.1"
            await ws.send('[2,"1","Heartbeat",{}]')
            assert json.loads(await ws.recv())[:2] == [3, "1"]
        assert only201.peers["MIRROR"].subprotocol == "ocpp2.0.1"
    finally:
        await only201.stop()


async def test_offline_session_answered_locally_then_replayed_once_in_order(edge_factory):
    csms = Csms(free_port())  # not started: upstream is away
    edge = edge_factory(proxy_config(csms))
    ch = await Charger(edge.url, "OFF1", "1.6").connect()
    try:
        boot = await ch.boot16()
        assert boot.status == "Accepted"
        await ch.status16("Preparing")
        await ch.status16("Charging")
        start = await ch.start16("TAG-OFF", meter_start=100)
        local = start.transaction_id
        assert start.id_tag_info["status"] == "Invalid"  # unknown card offline: refused by default
        await ch.meter16(local, 400)
        await ch.stop16(local, 700)
        assert edge.query("SELECT action FROM upstream_queue ORDER BY seq") == [
            ("StartTransaction",), ("MeterValues",), ("StopTransaction",)]
        metrics = edge.http("/metrics")
        assert "sitekeeper_upstream_queue_messages 3" in metrics

        await csms.start()
        await wait_for(lambda: len(csms.calls("OFF1", "StopTransaction")) == 1, what="replayed stop")
        await wait_for(lambda: edge.query("SELECT count(*) FROM upstream_queue") == [(0,)], what="queue drained")
        calls = csms.calls("OFF1")
        assert [c[2] for c in calls] == ["BootNotification", "StatusNotification", "StartTransaction",
                                         "MeterValues", "StopTransaction"]
        assert calls[1][3]["status"] == "Charging"
        upstream_tx = 1000
        assert calls[3][3]["transactionId"] == upstream_tx and calls[4][3]["transactionId"] == upstream_tx
        assert edge.query("SELECT upstream_tx_id FROM transactions WHERE id = ?", (local,)) == [(upstream_tx,)]
        # then live traffic passes through
        await ch.status16("Available")
        assert csms.calls("OFF1")[-1][3]["status"] == "Available"
    finally:
        await ch.close()
        await csms.stop()


async def test_kill9_while_offline_loses_and_doubles_nothing(edge_factory):
    csms = Csms(free_port())
    edge = edge_factory(proxy_config(csms))
    ch = await Charger(edge.url, "K9", "1.6").connect()
    start = await ch.start16("TAG-K9", meter_start=1000)
    local = start.transaction_id
    await ch.meter16(local, 1500)
    first_sent = list(ch.sent)
    edge.kill9()
    await ch.close()
    edge.start()
    ch = await Charger(edge.url, "K9", "1.6").connect()
    try:
        await ch.meter16(local, 1800)
        await ch.stop16(local, 2000)
        second = await ch.start16("TAG-K9", meter_start=2000)
        assert second.transaction_id != local
        await csms.start()
        await wait_for(lambda: len(csms.calls("K9", "StartTransaction")) == 2, what="both starts replayed")
        await wait_for(lambda: edge.query("SELECT count(*) FROM upstream_queue") == [(0,)], what="queue drained")
        calls = [(c[2], c[3].get("transactionId")) for c in csms.calls("K9")]
        assert calls == [("StartTransaction", None), ("MeterValues", 1000), ("MeterValues", 1000),
                         ("StopTransaction", 1000), ("StartTransaction", None)]
        assert csms.calls("K9")[0][1] == json.loads(first_sent[0])[1], "replayed with the charger's own id"
    finally:
        await ch.close()
        await csms.stop()


async def test_upstream_drop_and_return_mid_session(edge_factory, csms):
    edge = edge_factory(proxy_config(csms))
    ch = await Charger(edge.url, "DROP", "1.6").connect()
    try:
        start = await ch.start16("TAG-D", meter_start=0)
        local = start.transaction_id
        assert start.id_tag_info["status"] == "Accepted"  # upstream decided
        await csms.stop()
        await wait_for(lambda: "sitekeeper_upstream_links_up 0" in edge.http("/metrics"), what="link down")
        start_again = await ch.start16("TAG-D", meter_start=0, connector_id=2)
        assert start_again.id_tag_info["status"] == "Accepted", "the card was cached from upstream's answer"
        await ch.stop16(local, 5000)
        await csms.start()
        await wait_for(lambda: len(csms.calls("DROP", "StopTransaction")) == 1, what="stop replayed")
        stops = csms.calls("DROP", "StopTransaction")
        assert stops[0][3]["transactionId"] == 1000
        await wait_for(lambda: len(csms.calls("DROP", "StartTransaction")) == 2, what="offline start replayed")
        assert len(csms.calls("DROP", "StartTransaction")) == 2
    finally:
        await ch.close()


async def test_live_session_keeps_upstreams_id_and_its_frames_pass_unchanged(edge_factory, csms):
    """Upstream's id is above every id the site has given: the charger gets that very id, and its MeterValues
    and StopTransaction reach upstream byte-identical (nothing to rewrite)."""
    edge = edge_factory(proxy_config(csms))
    ch = await Charger(edge.url, "SAME", "1.6").connect()
    try:
        start = await ch.start16("TAG-S", meter_start=0)
        assert start.transaction_id == 1000  # upstream's own
        await ch.meter16(1000, 1500)
        await ch.stop16(1000, 3000)
    finally:
        await ch.close()
    peer = csms.peers["SAME"]
    assert [json.loads(t)[2] for t in peer.received] == ["StartTransaction", "MeterValues", "StopTransaction"]
    assert peer.received == ch.sent, "upstream got the charger's own text"
    row = edge.query("SELECT id, upstream_tx_id FROM transactions WHERE charger_id = 'SAME'")
    assert row == [(1000, 1000)]


async def test_remote_stop_is_rewritten_to_the_chargers_id(edge_factory, csms):
    """Upstream restarts its numbering and hands out an id the site has used: the charger gets a new one, and
    upstream's RemoteStopTransaction for its id reaches the charger with the charger's."""
    edge = edge_factory(proxy_config(csms))
    ch = await Charger(edge.url, "RS1", "1.6").connect()
    try:
        first = await ch.start16("TAG-R")
        assert first.transaction_id == 1000
        await ch.stop16(1000, 2000)
        csms.tx_ids = itertools.count(1000)  # upstream numbers from 1000 again
        start = await ch.start16("TAG-R")
        local = start.transaction_id
        assert local != 1000
        peer = csms.peers["RS1"]
        ch.received.clear()
        task = asyncio.create_task(peer.cp.call(call16.RemoteStopTransaction(transaction_id=1000), suppress=False))
        await wait_for(lambda: any('"RemoteStopTransaction"' in t for t in ch.received), what="remote stop")
        frame = json.loads(next(t for t in ch.received if '"RemoteStopTransaction"' in t))
        assert frame[3] == {"transactionId": local}
        # the ocpp package's charger has no handler: it answers NotImplemented, which goes back upstream
        with pytest.raises(OCPPError):
            await asyncio.wait_for(task, 10)
    finally:
        await ch.close()


async def test_201_offline_events_replayed_marked_offline_and_otherwise_untouched(edge_factory):
    csms = Csms(free_port())
    edge = edge_factory(proxy_config(csms))
    ch = await Charger(edge.url, "V2OFF", "2.0.1").connect()
    try:
        await ch.boot201()
        await ch.tx_event201("Started", "TX-201", 0, 10, id_tag="CARD")
        await ch.tx_event201("Updated", "TX-201", 1, 20)
        await ch.tx_event201("Ended", "TX-201", 2, 30)
        sent = [json.loads(t) for t in ch.sent if '"TransactionEvent"' in t]
        await csms.start()
        await wait_for(lambda: len(csms.calls("V2OFF", "TransactionEvent")) == 3, what="events replayed")
        got = csms.calls("V2OFF", "TransactionEvent")
        assert [g[3].pop("offline") for g in got] == [True] * 3, "the cloud is told they are late"
        assert got == sent, "transaction ids, seqNo and message ids pass through untouched"
        assert edge.query("SELECT energy_wh FROM transactions WHERE tx_key='TX-201'") == [(20,)]
    finally:
        await ch.close()
        await csms.stop()


async def test_strict_mode_refuses_and_closes(edge_factory):
    csms = Csms(free_port())
    edge = edge_factory(proxy_config(csms, strict=True))
    with pytest.raises(websockets.InvalidStatus) as err:
        await Charger(edge.url, "STRICT", "1.6").connect()
    assert err.value.response.status_code == 502
    await csms.start()
    ch = await Charger(edge.url, "STRICT", "1.6").connect()
    await ch.boot16()
    await csms.stop()
    await asyncio.wait_for(ch.ws.wait_closed(), 10)
    assert ch.ws.close_code == 1011
    await ch.close()


async def test_chargers_leaving_while_upstream_refuses_are_let_go_at_once(edge_factory):
    """Upstream refuses every connection and the edge retries without pause, so its reconnect loop is nearly
    always inside a connect when a charger leaves. The connector sometimes turns the cancellation of that
    loop into a ConnectionRefusedError; the loop must still end, or the session lingers and shutdown waits."""
    edge = edge_factory({"upstream": {"mode": "proxy", "url": f"ws://127.0.0.1:{free_port()}/csms",
                                      "reconnect_min": 0.0, "reconnect_max": 0.0}})
    for i in range(12):
        ch = await Charger(edge.url, f"GONE{i}", "1.6").connect()
        await ch.call(call16.Heartbeat())  # answered by the edge: upstream is not there
        await ch.close()
    await wait_for(lambda: json.loads(edge.http("/healthz"))["chargers_connected"] == 0, timeout=3,
                   what="every session to end")
    assert edge.log().count("disconnected") == 12


async def test_silent_upstream_is_answered_locally_after_timeout(edge_factory, csms):
    csms.silent = True
    edge = edge_factory(proxy_config(csms, call_timeout=1))
    ch = await Charger(edge.url, "SIL", "1.6").connect()
    try:
        t0 = asyncio.get_running_loop().time()
        res = await ch.call(call16.Heartbeat())
        waited = asyncio.get_running_loop().time() - t0
        assert res.current_time.endswith("Z")
        assert 0.9 <= waited < 5
    finally:
        await ch.close()


async def test_journal_records_passed_through_frames_once(edge_factory, csms):
    import subprocess

    from conftest import SITEKEEPER

    edge = edge_factory(proxy_config(csms))
    ch = await Charger(edge.url, "JP1", "1.6").connect()
    try:
        await wait_for(lambda: "sitekeeper_upstream_links_up 1" in edge.http("/metrics"), what="link up")
        await ch.call(call16.Heartbeat())
        start = await ch.start16("TAG-J")  # its answer is rewritten (the edge's id): journaled as the edge's
        assert start.transaction_id
    finally:
        await ch.close()
    rows: list = []
    for _ in range(50):
        out = subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "journal", "JP1", "--json"],
                             capture_output=True, text=True, check=True).stdout
        rows = json.loads(out)
        if len(rows) >= 5:
            break
        await asyncio.sleep(0.1)
    directions = [(r["direction"], json.loads(r["frame"])[0]) for r in rows]
    assert directions == [("c>u", 2), ("u>c", 3), ("c>u", 2), ("u>e", 3), ("e>c", 3)]
