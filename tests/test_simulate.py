"""`sitekeeper simulate` shows the whole product, as real chargers would: the site's own cards, a session the
edge starts remotely (a tap at a bay), a reconnect when the edge restarts, and no flood when a card is
refused (once 44,000 calls in 10 s and 12 MB of database)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time

from conftest import SITEKEEPER, wait_for
from test_taps import add_card, tap


def simulate(edge, *args: str) -> subprocess.Popen:
    return subprocess.Popen([SITEKEEPER, "simulate", "--url", edge.url, "--meter-interval", "0.05", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 60) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out


def test_the_sites_own_cards_charge(edge_factory):
    edge = edge_factory({"site": {"accept_unknown_cards": False}, "billing": {"min_start_balance": "1.00"}})
    add_card(edge, "04A1A1A1", "commercial", topup=100_000)
    add_card(edge, "04B2B2B2C3C3C3", "commercial", topup=100_000)
    out = finish(simulate(edge, "--chargers", "2", "--card", "04:a1:a1:a1", "--card", "04b2b2b2c3c3c3"))
    assert "SIM0001: 1 session(s)" in out and "SIM0002: 1 session(s)" in out and "refused" not in out, out
    assert sorted(edge.query("SELECT charger_id, id_tag, captured_minor > 0 FROM transactions")) == [
        ("SIM0001", "04A1A1A1", 1), ("SIM0002", "04B2B2B2C3C3C3", 1)]
    bad = subprocess.run([SITEKEEPER, "simulate", "--url", edge.url, "--card", "xyz"], capture_output=True,
                         text=True, timeout=30)
    assert bad.returncode == 2 and "--card" in bad.stderr and "not a card id" in bad.stderr


def test_a_refused_card_is_not_tried_again_at_once(edge_factory):
    edge = edge_factory({"site": {"accept_unknown_cards": False}})
    proc = simulate(edge, "--card", "DEADBEEF", "--forever")
    try:
        time.sleep(8)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
    rows = json.loads(subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "journal", "SIM0001", "--json",
                                      "--limit", "10000"], capture_output=True, text=True, timeout=30).stdout)
    tries = [r for r in rows if r["direction"] == "c>e" and '"Authorize"' in r["frame"]]
    assert 1 <= len(tries) <= 5, f"{len(tries)} Authorize in 8 s"


async def test_a_remote_start_starts_a_session_and_the_simulator_reconnects_when_the_edge_restarts(edge_factory):
    edge = edge_factory({"billing": {"min_start_balance": "1.00", "max_hold": "100.00"},
                         "reader": {"bay1": {"backend": "sim", "connector": "SIM0001:1"}}})
    add_card(edge, "04C0C0C0", "commercial", topup=100_000)
    proc = simulate(edge, "--sessions", "0", "--forever")
    try:
        await wait_for(lambda: edge.query("SELECT connected FROM chargers WHERE id = 'SIM0001'") == [(1,)],
                       what="the simulated charger connected")
        started = await tap(edge, "04C0C0C0", "bay1")
        assert started["result"] == "starting", started.get("message")
        await wait_for(lambda: edge.query("SELECT id_tag FROM transactions WHERE stopped_at IS NULL")
                       == [("04C0C0C0",)], what="the session the tap started")
        await asyncio.sleep(0.5)
        assert (await tap(edge, "04C0C0C0", "bay1"))["result"] == "stopping"
        await wait_for(lambda: edge.query("SELECT count(*) FROM transactions WHERE stopped_at IS NOT NULL")
                       == [(1,)], what="stopped")
        edge.stop()
        edge.start()
        await wait_for(lambda: edge.log().count("charger SIM0001 connected") >= 2, timeout=40,
                       what="the simulator back after the edge's restart")
        assert proc.poll() is None, "it kept running"
        assert (await tap(edge, "04C0C0C0", "bay1"))["result"] == "starting", "and charges again"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)


def test_the_simulated_chargers_take_their_share_and_show_the_cost(edge_factory):
    """Smart charging and the California pricing messages, as `sitekeeper simulate` shows them to an installer:
    two chargers on a 16 A site are held to 8 A each while both charge, and the one set to hear cost messages
    ends with the total on its display."""
    edge = edge_factory({"site": {"accept_unknown_cards": False, "max_current_a": 16},
                         "billing": {"min_start_balance": "1.00"},
                         "ocpp": {"chargers": {"SIM0001": {"cost_messages": True}}}})
    add_card(edge, "04A1A1A1", "commercial", topup=100_000)
    add_card(edge, "04B2B2B2", "commercial", topup=100_000)
    out = finish(subprocess.Popen([SITEKEEPER, "simulate", "--url", edge.url, "--meter-interval", "1.5",
                                   "--chargers", "2", "--card", "04A1A1A1", "--card", "04B2B2B2"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    lines = {line.split(":")[0]: line for line in out.splitlines() if line.startswith("SIM")}
    assert "held to 8 A at the least" in lines["SIM0001"] and "held to 8 A at the least" in lines["SIM0002"], out
    assert "its display: Total ₱" in lines["SIM0001"] and "display" not in lines["SIM0002"], out
