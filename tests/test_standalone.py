"""Standalone mode: the running daemon is a complete CSMS for chargers of both versions."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import urllib.error
import urllib.request

import pytest
from conftest import SITEKEEPER
from peers import Charger


async def test_16_session_is_recorded(edge_factory):
    edge = edge_factory()
    ch = await Charger(edge.url, "CP16", "1.6").connect()
    try:
        boot = await ch.boot16()
        assert boot.status == "Accepted" and boot.interval == 300
        await ch.status16("Available")
        start = await ch.start16("04AABBCCDD", meter_start=5000)
        assert start.id_tag_info["status"] == "Accepted"
        tx = start.transaction_id
        assert isinstance(tx, int) and tx > 0
        await ch.meter16(tx, 5600)
        await ch.stop16(tx, 6200, id_tag="04AABBCCDD")
        second = await ch.start16("04AABBCCDD", meter_start=6200)
        assert second.transaction_id != tx, "each session gets its own transaction id"
    finally:
        await ch.close()
    rows = edge.query("SELECT id_tag, meter_start, meter_stop, energy_wh, stopped_at IS NOT NULL, connector_id"
                      " FROM transactions WHERE id = ?", (tx,))
    assert rows == [("04AABBCCDD", 5000, 6200, 1200, 1, 1)]
    values = edge.query("SELECT value, measurand FROM meter_values WHERE charger_id='CP16' AND tx_key=?", (str(tx),))
    assert values == [("5600", "Energy.Active.Import.Register")]
    assert edge.query("SELECT status FROM connector_status WHERE charger_id='CP16'") == [("Available",)]


async def test_201_session_is_recorded(edge_factory):
    edge = edge_factory()
    ch = await Charger(edge.url, "CS201", "2.0.1").connect()
    try:
        boot = await ch.boot201()
        assert boot.status == "Accepted"
        res = await ch.tx_event201("Started", "tx-abc", 0, 100, id_tag="AB12CD34")
        assert res.id_token_info["status"] == "Accepted"
        await ch.tx_event201("Updated", "tx-abc", 1, 900)
        await ch.tx_event201("Ended", "tx-abc", 2, 1500)
    finally:
        await ch.close()
    rows = edge.query("SELECT tx_key, id_tag, meter_start, meter_stop, energy_wh, stopped_at IS NOT NULL"
                      " FROM transactions WHERE charger_id='CS201'")
    assert rows == [("tx-abc", "AB12CD34", 100, 1500, 1400, 1)]


async def test_unknown_card_refused_when_site_says_so(edge_factory):
    edge = edge_factory({"site": {"accept_unknown_cards": False}})
    ch = await Charger(edge.url, "CP1", "1.6").connect()
    try:
        res = await ch.start16("DEADBEEF")
        assert res.id_tag_info["status"] == "Invalid"
    finally:
        await ch.close()


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_malformed_frames_get_callerror_and_connection_lives(edge_factory, version):
    edge = edge_factory()
    ch = await Charger(edge.url, "BAD1", version).connect()
    fmt = "FormationViolation" if version == "1.6" else "FormatViolation"
    occurrence = "OccurenceConstraintViolation" if version == "1.6" else "OccurrenceConstraintViolation"
    try:
        assert await ch.raw("this is not json") == [4, "-1", fmt, "frame is not valid JSON", {}]
        reply = await ch.raw('{"not": "an array"}')
        assert reply[:3] == [4, "-1", fmt if version == "1.6" else "RpcFrameworkError"]
        reply = await ch.raw('[2, "m1", "NoSuchAction", {}]')
        assert reply[:3] == [4, "m1", "NotImplemented"]
        reply = await ch.raw('[2, "m2", "Heartbeat", []]')
        assert reply[:3] == [4, "m2", fmt]
        bad_boot = '[2, "m3", "BootNotification", {}]'
        reply = await ch.raw(bad_boot)
        assert reply[:3] == [4, "m3", occurrence]
        reply = await ch.raw('[2, "m4", "Heartbeat", {"extra": 1}]')
        assert reply[:3] == [4, "m4", fmt]
        reply = await ch.raw('[9, "m5", "Heartbeat", {}]')
        assert reply[:3] == [4, "m5", fmt if version == "1.6" else "MessageTypeNotSupported"]
        # and the connection is still good
        reply = await ch.raw('[2, "ok", "Heartbeat", {}]')
        assert reply[0] == 3 and reply[1] == "ok" and reply[2]["currentTime"].endswith("Z")
    finally:
        await ch.close()
    metrics = edge.http("/metrics")
    assert 'sitekeeper_frames_total{direction="c>e"} 8' in metrics
    assert 'sitekeeper_errors_total{kind="format"} 7' in metrics, "every refused frame is counted"


async def test_journal_shows_frames_with_cards_masked(edge_factory):
    edge = edge_factory()
    ch = await Charger(edge.url, "J1", "1.6").connect()
    try:
        await ch.boot16()
        await ch.start16("04A1B2C3D4E5F6")
    finally:
        await ch.close()
    for _ in range(50):  # the journal is written within half a second, apart from the answers
        out = subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "journal", "J1", "--json"],
                             capture_output=True, text=True, check=True).stdout
        rows = json.loads(out)
        if len(rows) == 4:
            break
        await asyncio.sleep(0.1)
    actions = [json.loads(r["frame"])[2] for r in rows if r["direction"] == "c>e"]
    assert actions == ["BootNotification", "StartTransaction"]
    assert "04A1B2C3D4E5F6" not in out and "D4E5F6"[-4:] in out
    text = subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "journal", "J1"],
                          capture_output=True, text=True, check=True).stdout
    assert "charger → edge" in text and "edge → charger" in text


async def test_journal_follow_prints_frames_as_they_come(edge_factory):
    edge = edge_factory()
    follow = await asyncio.create_subprocess_exec(
        SITEKEEPER, "--config", str(edge.config_path), "journal", "F1", "--follow", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        ch = await Charger(edge.url, "F1", "1.6").connect()
        seen: list[dict] = []
        try:
            await ch.boot16()
            while len(seen) < 2:
                seen.append(json.loads(await asyncio.wait_for(follow.stdout.readline(), 10)))
            await ch.start16("04A1B2C3D4E5F6")  # later frames come too, cards masked
            while len(seen) < 4:
                seen.append(json.loads(await asyncio.wait_for(follow.stdout.readline(), 10)))
        finally:
            await ch.close()
        assert [(r["direction"], json.loads(r["frame"])[0]) for r in seen] == [("c>e", 2), ("e>c", 3)] * 2
        assert json.loads(seen[2]["frame"])[3]["idTag"] == "********E5F6"
    finally:
        follow.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(follow.wait(), 10) == 0


async def test_sigterm_shuts_down_cleanly(edge_factory):
    edge = edge_factory()
    ch = await Charger(edge.url, "T1", "1.6").connect()
    await ch.boot16()
    assert edge.stop() == 0
    await ch.close()
    errors = [line for line in edge.log().splitlines() if " ERROR " in line or "Traceback" in line]
    assert errors == [], "a clean stop logs no error (the web bridge's handlers once did, at every stop)"


def test_metrics_and_healthz(edge_factory):
    edge = edge_factory()
    health = json.loads(edge.http("/healthz"))
    assert health["ok"] is True and health["mode"] == "standalone"
    metrics = edge.http("/metrics")
    for name in ("sitekeeper_chargers_connected", "sitekeeper_upstream_links_up",
                 "sitekeeper_upstream_queue_messages", "sitekeeper_frames_total", "sitekeeper_errors_total"):
        assert name in metrics
    assert "sitekeeper_outbox_backlog 0" in metrics and "sitekeeper_sync_connected 0" in metrics


async def test_completed_sessions_wait_in_the_outbox_without_a_broker(edge_factory):
    edge = edge_factory()
    ch = await Charger(edge.url, "OB1", "1.6").connect()
    try:
        tx = (await ch.start16("04AABB0011", meter_start=0)).transaction_id
        await ch.stop16(tx, 500)
    finally:
        await ch.close()
    assert edge.query("SELECT kind, key FROM outbox") == [("session", f"session:OB1:{tx}")]
    assert "sitekeeper_outbox_backlog 1" in edge.http("/metrics")


def test_simulate_command_runs_a_site(edge_factory):
    edge = edge_factory()
    out = subprocess.run([SITEKEEPER, "simulate", "--url", edge.url, "--chargers", "2", "--version", "2.0.1",
                          "--meter-interval", "0.05"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SIM0001: 1 session(s)" in out.stdout and "SIM0002: 1 session(s)" in out.stdout
    assert edge.query("SELECT count(*) FROM transactions WHERE stopped_at IS NOT NULL") == [(2,)]
    # ISO 14443 UIDs are 4 or 7 bytes: a strict CSMS refuses any other length (the simulator sends 7)
    tokens = [t for (t,) in edge.query("SELECT id_tag FROM transactions")]
    assert len(tokens) == 2 and all(re.fullmatch(r"04[0-9A-F]{12}", t) for t in tokens), tokens


async def test_the_web_front_says_what_is_there_works_offline_and_masks_card_ids(edge_factory):
    """`/` was a 404 though the log advertised it; `/docs` loaded its assets from a CDN (blank on a site with
    no internet); `/api/transactions` served whole card ids with any `limit`."""
    import urllib.error

    edge = edge_factory({"site": {"name": "Depot <7>"}})
    ch = await Charger(edge.url, "CP-WEB", "1.6").connect()
    try:
        await ch.boot16()
        start = await ch.start16("04AABBCCDD")
        await ch.stop16(start.transaction_id, 1500, id_tag="04AABBCCDD")
    finally:
        await ch.close()
    page = edge.http("/")  # a new site: how to make the first account (tests/test_web_login.py goes on)
    assert "Depot &lt;7&gt;" in page and "admin add" in page and "Depot <7>" not in page, "escaped"
    assert "http://" not in page and "https://" not in page, "nothing from outside the site"
    for path in ("/docs", "/redoc"):
        with pytest.raises(urllib.error.HTTPError) as info:
            edge.http(path)
        assert info.value.code == 404, path
    rows = json.loads(edge.http("/api/transactions"))
    assert [r["id_tag"] for r in rows] == ["******CCDD"], "masked"
    assert "04AABBCCDD" not in edge.http("/api/transactions?limit=5")
    for limit in (0, 1001, -1):
        with pytest.raises(urllib.error.HTTPError) as info:
            edge.http(f"/api/transactions?limit={limit}")
        assert info.value.code == 422


def test_a_web_app_open_beyond_this_machine_says_so_and_still_wants_tokens(edge_factory):
    local = edge_factory()
    assert "open to the network" not in local.log()
    wider = edge_factory({"web": {"host": "127.0.0.2"}})  # another address than this machine's own loopback
    assert "127.0.0.2" in wider.log() and "open to the network: every /api/ route needs a token" in wider.log()
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"http://127.0.0.2:{wider.web_port}/api/chargers", timeout=10)
    assert info.value.code == 401
    assert json.loads(wider.http("/healthz"))["ok"] is True
