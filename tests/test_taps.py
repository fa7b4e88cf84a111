"""Tap-to-charge end to end: `sitekeeper tap` on sim readers of the running daemon, a simulated charger that
charges when asked, the kiosk's event stream, and enrolment by tap."""

from __future__ import annotations

import asyncio
import json
import subprocess

import httpx
from conftest import SITEKEEPER, wait_for

from edge.billing import cards, ledger
from edge.ocpp.simulate import SimCharger
from edge.store.sqlite import Store


def site() -> dict:
    return {"billing": {"min_start_balance": "50.00", "max_hold": "200.00"},
            "reader": {"kiosk": {"backend": "sim"},
                       "bay1": {"backend": "sim", "connector": "SIM-A:1"},
                       "bay2": {"backend": "sim", "connector": "SIM-B:1"},
                       "bay3": {"backend": "sim", "connector": "SIM-C:1"}}}


def add_card(edge, uid: str, kind: str, topup: int = 0) -> None:
    store = Store.open(edge.db_path)
    try:
        def fn(conn):
            card = cards.add_card(conn, uid, kind, name=f"Driver {uid[-2:]}")
            if topup:
                ledger.post(conn, card.account_id, "topup", topup, key=f"t-{uid}", currency="PHP")
        store.write_now(fn)
    finally:
        store.close()


async def tap(edge, uid: str, reader: str) -> dict:
    proc = await asyncio.create_subprocess_exec(SITEKEEPER, "--config", str(edge.config_path), "tap", uid,
                                                "--reader", reader, "--json", stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


async def test_tap_starts_and_tap_again_stops(edge_factory):
    edge = edge_factory(site())
    add_card(edge, "04A0A0A0", "commercial", topup=100_000)
    sim = SimCharger(edge.url, "SIM-A", "1.6", meter_interval=0.2)
    await sim.connect()
    await sim.boot()
    serving = asyncio.create_task(sim.serve_remote())
    try:
        event = await tap(edge, "04:a0:a0:a0", "bay1")
        assert event["result"] == "starting" and event["uid_masked"] == "****A0A0" and event["name"] == "Driver A0"
        await wait_for(lambda: edge.query("SELECT count(*) FROM transactions WHERE stopped_at IS NULL") == [(1,)])
        assert edge.query("SELECT hold_minor, id_tag FROM transactions") == [(20_000, "04A0A0A0")], \
            "the charger's start took the hold, as any start does"
        await asyncio.sleep(0.5)
        event = await tap(edge, "04A0A0A0", "bay1")
        assert event["result"] == "stopping"
        await wait_for(lambda: edge.query("SELECT count(*) FROM transactions WHERE stopped_at IS NOT NULL") == [(1,)])
        assert edge.query("SELECT stop_reason, captured_minor > 0 FROM transactions") == [("Remote", 1)]
    finally:
        serving.cancel()
        await sim.close()


async def test_refused_and_concurrent_taps_say_why(edge_factory):
    edge = edge_factory(site())
    add_card(edge, "04B0B0B0", "commercial", topup=1_000)  # 10.00: below the 50.00 minimum
    add_card(edge, "04C0C0C0", "commercial", topup=100_000)
    a = SimCharger(edge.url, "SIM-A", "2.0.1", meter_interval=0.2)
    b = SimCharger(edge.url, "SIM-B", "2.0.1", meter_interval=0.2)
    for sim in (a, b):
        await sim.connect()
        await sim.boot()
    tasks = [asyncio.create_task(sim.serve_remote()) for sim in (a, b)]
    try:
        low = await tap(edge, "04B0B0B0", "bay1")
        assert low["result"] == "refused" and low["status"] == "NoCredit" \
            and "balance 10.00 PHP below the minimum 50.00 PHP" in low["message"], "major units, as a driver reads"
        assert (await tap(edge, "04C0C0C0", "bay1"))["result"] == "starting"
        await wait_for(lambda: edge.query("SELECT count(*) FROM transactions WHERE stopped_at IS NULL") == [(1,)])
        other = await tap(edge, "04C0C0C0", "bay2")
        assert other["result"] == "refused" and other["status"] == "ConcurrentTx"
        unknown = await tap(edge, "04DDDDDD", "bay2")
        assert unknown["result"] == "unknown" and unknown["known"] is False
        nobody = await tap(edge, "04B0B0B0", "bay3")
        assert nobody["result"] == "refused" and "SIM-C is not connected" in nobody["message"]
        store = Store.open(edge.db_path)
        store.write_now(lambda c: cards.add_card(c, "04E0E0E0", "personal", name="Old Pass",
                                                 expires="2020-01-01T00:00:00Z"))
        store.close()
        for reader in ("bay2", "kiosk"):  # at a charger's reader, and at the pay station's
            old = await tap(edge, "04E0E0E0", reader)
            assert old["result"] == "refused" and old["status"] == "Expired", old
        assert old["reason"] == "expired", "the kiosk says it in plain words"
    finally:
        for t in tasks:
            t.cancel()
        await a.close()
        await b.close()


async def test_kiosk_tap_on_the_event_stream_and_enrol_by_tap(edge_factory):
    edge = edge_factory(site())
    add_card(edge, "04E0E0E0", "commercial", topup=12_345)
    seen: list[dict] = []

    async def listen():
        async with httpx.AsyncClient(timeout=None) as client:
            async with client.stream("GET", f"http://127.0.0.1:{edge.web_port}/api/events",
                                     headers={"Authorization": f"Bearer {edge.token}"}) as resp:
                async for line in resp.aiter_lines():
                    if line.startswith("data: "):
                        seen.append(json.loads(line[6:]))

    listener = asyncio.create_task(listen())
    try:
        await asyncio.sleep(0.5)
        await tap(edge, "04E0E0E0", "kiosk")
        await tap(edge, "04F1F2F3", "kiosk")
        await wait_for(lambda: len(seen) == 2)
    finally:
        listener.cancel()
    known, unknown = seen
    assert (known["type"], known["reader"], known["kind"], known["name"], known["available_minor"]) == \
        ("tap", "kiosk", "commercial", "Driver E0", 12_345)
    assert known["uid_masked"] == "****E0E0" and "04E0E0E0" not in json.dumps(known)
    assert unknown["known"] is False and unknown["result"] == "unknown"
    out = subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "cards", "unknown", "--json"],
                         capture_output=True, text=True, check=True).stdout
    assert [(r["uid"], r["reader"]) for r in json.loads(out)["unknown"]] == [("04F1F2F3", "kiosk")]
    out = subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "cards", "add", "--last-tap", "--kind",
                          "personal", "--name", "New Driver", "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["uid"] == "04F1F2F3"
    again = subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "cards", "add", "--last-tap", "--kind",
                            "personal", "--name", "X"], capture_output=True, text=True)
    assert again.returncode == 2 and "no unknown card" in again.stderr


def test_tap_bad_input(edge_factory):
    edge = edge_factory(site())
    bad = subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "tap", "xyz"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "not a card id" in bad.stderr
    missing = subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "tap", "04AABBCC", "--reader", "nope"],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "no reader 'nope'" in missing.stderr
