"""Billing through real OCPP sessions (both versions) against the running daemon: personal and commercial
cards, exact tariffs, refusals, the edge stopping a session at its hold, duplicates, kill -9, offline."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from conftest import free_port
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from peers import Charger, Csms

from edge.billing import cards, ledger
from edge.store.sqlite import Store

T0 = datetime(2026, 3, 2, 17, 30, tzinfo=UTC)


def ts(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def site(**billing_and_tariff) -> dict:
    tariff = billing_and_tariff.pop("tariff", {})
    return {"billing": {"currency": "PHP", "min_start_balance": "50.00", "max_hold": "500.00",
                        **billing_and_tariff},
            "tariff": {"per_kwh": "20.00", "per_minute": "0.00", "session_fee": "0.00", "idle_per_minute": "0.00",
                       "idle_grace_minutes": 10, **tariff}}


def add_card(edge, uid: str, kind: str, topup: int = 0, **kw) -> int:
    store = Store.open(edge.db_path)
    try:
        def fn(conn):
            card = cards.add_card(conn, uid, kind, name=kw.pop("name", f"Driver {uid[-4:]}"), **kw)
            if topup:
                ledger.post(conn, card.account_id, "topup", topup, key=f"test-topup-{uid}", currency="PHP")
            return card.account_id
        return store.write_now(fn)
    finally:
        store.close()


def money(edge, account_id: int) -> tuple[int, int]:
    """(balance, available) read independently of the code under test."""
    rows = edge.query("SELECT kind, amount_minor, session_id FROM ledger WHERE account_id = ?", (account_id,))
    balance = sum(a if k in ("topup", "refund", "adjustment") else -a for k, a, _ in rows if k != "hold"
                  and k != "release")
    captured = {s for k, _, s in rows if k == "capture"}
    held = sum(a for k, a, s in rows if k == "hold" and s not in captured)
    return balance, balance - held


def meter16(tx: int, wh: int, at: str, connector: int = 1):
    return call16.MeterValues(connector_id=connector, transaction_id=tx, meter_value=[
        {"timestamp": at, "sampledValue": [{"value": str(wh), "measurand": "Energy.Active.Import.Register",
                                            "unit": "Wh"}]}])


async def test_personal_card_charges_free(edge_factory):
    edge = edge_factory(site())
    account = add_card(edge, "04a1b2c3", "personal")  # lower case: normalised
    ch = await Charger(edge.url, "CP-P", "1.6").connect()
    try:
        res = await ch.call(call16.StartTransaction(connector_id=1, id_tag="04A1B2C3", meter_start=0, timestamp=ts(0)))
        assert res.id_tag_info["status"] == "Accepted"
        await ch.call(call16.StopTransaction(transaction_id=res.transaction_id, meter_stop=10_000, timestamp=ts(60)))
    finally:
        await ch.close()
    assert edge.query("SELECT cost_minor, captured_minor, energy_wh FROM transactions") == [(0, 0, 10_000)]
    assert money(edge, account) == (0, 0)


async def test_personal_card_limited_to_named_chargers(edge_factory):
    edge = edge_factory(site())
    add_card(edge, "04A1B2C4", "personal", chargers=["HOME-1"])
    ch = await Charger(edge.url, "DEPOT-9", "1.6").connect()
    try:
        res = await ch.call(call16.Authorize(id_tag="04A1B2C4"))
        assert res.id_tag_info["status"] == "Invalid"
    finally:
        await ch.close()


async def test_commercial_card_billed_exactly_16(edge_factory):
    # 7 kWh × 20.00 + 75 min × 1.00 + (45 − 10) idle min × 2.00 + 5.00 fee = 140 + 75 + 70 + 5 = 290.00
    edge = edge_factory(site(tariff={"per_minute": "1.00", "session_fee": "5.00", "idle_per_minute": "2.00"}))
    account = add_card(edge, "04C0FFEE", "commercial", topup=100_000)
    ch = await Charger(edge.url, "CP-C", "1.6").connect()
    try:
        res = await ch.call(call16.StartTransaction(connector_id=1, id_tag="04C0FFEE", meter_start=1000,
                                                    timestamp=ts(0)))
        assert res.id_tag_info["status"] == "Accepted"
        tx = res.transaction_id
        assert money(edge, account) == (100_000, 50_000), "hold of max_hold committed before the answer"
        await ch.call(meter16(tx, 8000, ts(30)))
        await ch.call(meter16(tx, 8000, ts(60)))
        await ch.call(call16.StopTransaction(transaction_id=tx, meter_stop=8000, timestamp=ts(75)))
    finally:
        await ch.close()
    row = edge.query("SELECT cost_minor, captured_minor, uncollected_minor, cost_detail FROM transactions")[0]
    assert row[:3] == (29_000, 29_000, 0)
    detail = json.loads(row[3])
    assert (detail["energy_minor"], detail["time_minor"], detail["idle_minor"], detail["fee_minor"]) == \
        (14_000, 7_500, 7_000, 500)
    assert money(edge, account) == (71_000, 71_000), "capture posted, the rest of the hold released"


async def test_time_of_use_across_a_band_edge_201(edge_factory):
    # 17:30–18:30, 2 kWh evenly: half before 18:00 at 10.00, half in the 18:00–22:00 band at 30.00 = 40.00
    edge = edge_factory(site(tariff={"per_kwh": "10.00", "bands": [{"start": "18:00", "end": "22:00",
                                                                       "per_kwh": "30.00"}]}))
    account = add_card(edge, "04D00D01", "commercial", topup=100_000)
    ch = await Charger(edge.url, "CS-TOU", "2.0.1").connect()
    token = {"id_token": "04D00D01", "type": "ISO14443"}

    def event(kind: str, seq: int, wh: int, minutes: float, **kw):
        return call201.TransactionEvent(
            event_type=kind, timestamp=ts(minutes), trigger_reason="Authorized" if kind == "Started" else "EVDeparted",
            seq_no=seq, transaction_info={"transaction_id": "TOU-1", **kw}, evse={"id": 1, "connector_id": 1},
            meter_value=[{"timestamp": ts(minutes), "sampled_value": [
                {"value": wh, "measurand": "Energy.Active.Import.Register"}]}],
            **({"id_token": token} if kind == "Started" else {}))
    try:
        res = await ch.call(event("Started", 0, 0, 0))
        assert res.id_token_info["status"] == "Accepted"
        await ch.call(event("Ended", 1, 2000, 60, stopped_reason="EVDisconnected"))
    finally:
        await ch.close()
    assert edge.query("SELECT cost_minor, energy_wh FROM transactions") == [(4_000, 2000)]
    assert money(edge, account) == (96_000, 96_000)


@pytest.mark.parametrize("version, refused", [("1.6", "Blocked"), ("2.0.1", "NoCredit")])
async def test_insufficient_balance_refused(edge_factory, version, refused):
    edge = edge_factory(site())
    account = add_card(edge, "04BB0001", "commercial", topup=1_000)  # 10.00 < 50.00 minimum
    ch = await Charger(edge.url, "CP-LOW", version).connect()
    try:
        if version == "1.6":
            res = await ch.call(call16.Authorize(id_tag="04BB0001"))
            assert res.id_tag_info["status"] == refused
            res = await ch.call(call16.StartTransaction(connector_id=1, id_tag="04BB0001", meter_start=0,
                                                        timestamp=ts(0)))
            assert res.id_tag_info["status"] == refused
        else:
            res = await ch.call(call201.Authorize(id_token={"id_token": "04BB0001", "type": "ISO14443"}))
            assert res.id_token_info["status"] == refused
    finally:
        await ch.close()
    assert money(edge, account) == (1_000, 1_000), "nothing held"


async def test_blocked_card_and_concurrent_use_refused(edge_factory):
    edge = edge_factory(site())
    add_card(edge, "04BB0002", "commercial", topup=100_000)
    blocked = add_card(edge, "04BB0003", "personal")
    store = Store.open(edge.db_path)
    store.write_now(lambda c: cards.update_card(c, "04BB0003", status="lost"))
    store.close()
    a = await Charger(edge.url, "CP-A", "1.6").connect()
    b = await Charger(edge.url, "CP-B", "1.6").connect()
    try:
        first = await a.call(call16.StartTransaction(connector_id=1, id_tag="04BB0002", meter_start=0, timestamp=ts(0)))
        assert first.id_tag_info["status"] == "Accepted"
        second = await b.call(call16.StartTransaction(connector_id=1, id_tag="04BB0002", meter_start=0,
                                                      timestamp=ts(1)))
        assert second.id_tag_info["status"] == "ConcurrentTx"
        lost = await b.call(call16.Authorize(id_tag="04BB0003"))
        assert lost.id_tag_info["status"] == "Blocked"
    finally:
        await a.close()
        await b.close()
    assert blocked


async def test_hold_exhausted_edge_stops_the_charger(edge_factory):
    edge = edge_factory(site(max_hold="100.00", min_start_balance="50.00", tariff={"per_kwh": "20.00"}))
    account = add_card(edge, "04EE0001", "commercial", topup=100_000)
    ch = await Charger(edge.url, "CP-X", "1.6").connect()
    try:
        res = await ch.call(call16.StartTransaction(connector_id=1, id_tag="04EE0001", meter_start=0, timestamp=ts(0)))
        tx = res.transaction_id
        await ch.call(meter16(tx, 2000, ts(10)))  # 40.00: still under the 100.00 hold
        # the charger's frames are carried out in order: by the Heartbeat's answer, a stop the meter values
        # called for would have been sent (no fixed pause to wait out)
        await ch.call(call16.Heartbeat())
        assert not any('"RemoteStopTransaction"' in t for t in ch.received)
        await ch.call(meter16(tx, 5500, ts(20)))  # 110.00 ≥ 100.00: the edge stops the session
        for _ in range(100):
            if any('"RemoteStopTransaction"' in t for t in ch.received):
                break
            await asyncio.sleep(0.05)
        frame = json.loads(next(t for t in ch.received if '"RemoteStopTransaction"' in t))
        assert frame[3] == {"transactionId": tx}
        await ch.call(call16.StopTransaction(transaction_id=tx, meter_stop=5600, timestamp=ts(21), reason="Remote"))
    finally:
        await ch.close()
    row = edge.query("SELECT cost_minor, captured_minor, uncollected_minor, billing_stop FROM transactions")[0]
    assert row[:3] == (11_200, 10_000, 1_200), "captured up to the hold; the rest recorded, not lost"
    assert row[3].startswith("hold exhausted")
    assert money(edge, account) == (90_000, 90_000)


async def test_duplicate_stop_billed_once(edge_factory):
    edge = edge_factory(site())
    account = add_card(edge, "04DD0001", "commercial", topup=100_000)
    ch = await Charger(edge.url, "CP-D", "1.6").connect()
    try:
        res = await ch.call(call16.StartTransaction(connector_id=1, id_tag="04DD0001", meter_start=0, timestamp=ts(0)))
        stop = call16.StopTransaction(transaction_id=res.transaction_id, meter_stop=1000, timestamp=ts(10))
        await ch.call(stop)
        await ch.call(stop)  # a charger's retry
    finally:
        await ch.close()
    assert edge.query("SELECT count(*) FROM ledger WHERE kind = 'capture'") == [(1,)]
    assert money(edge, account) == (98_000, 98_000)


async def test_kill9_between_start_and_stop_billed_once(edge_factory):
    edge = edge_factory(site())
    account = add_card(edge, "04AA0009", "commercial", topup=100_000)
    ch = await Charger(edge.url, "CP-K", "1.6").connect()
    res = await ch.call(call16.StartTransaction(connector_id=1, id_tag="04AA0009", meter_start=0, timestamp=ts(0)))
    tx = res.transaction_id
    edge.kill9()
    await ch.close()
    edge.start()
    assert money(edge, account) == (100_000, 50_000), "the hold survived"
    ch = await Charger(edge.url, "CP-K", "1.6").connect()
    try:
        stop = call16.StopTransaction(transaction_id=tx, meter_stop=2500, timestamp=ts(30))
        await ch.call(stop)
        await ch.call(stop)
    finally:
        await ch.close()
    assert money(edge, account) == (95_000, 95_000)
    assert edge.query("SELECT count(*) FROM ledger WHERE kind = 'capture'") == [(1,)]


async def test_offline_session_billed_locally_and_replayed_upstream(edge_factory):
    csms = Csms(free_port())  # upstream away
    edge = edge_factory({**site(), "upstream": {"mode": "proxy", "url": csms.url, "reconnect_min": 0.1,
                                                 "reconnect_max": 0.5}})
    account = add_card(edge, "04FF0001", "commercial", topup=100_000)
    ch = await Charger(edge.url, "CP-OFF", "1.6").connect()
    try:
        res = await ch.call(call16.StartTransaction(connector_id=1, id_tag="04FF0001", meter_start=0, timestamp=ts(0)))
        assert res.id_tag_info["status"] == "Accepted", "a card the edge knows is decided offline too"
        await ch.call(call16.StopTransaction(transaction_id=res.transaction_id, meter_stop=3000, timestamp=ts(40)))
        assert money(edge, account) == (94_000, 94_000)
        await csms.start()
        for _ in range(200):
            if csms.calls("CP-OFF", "StopTransaction"):
                break
            await asyncio.sleep(0.05)
        assert [c[2] for c in csms.calls("CP-OFF")] == ["StartTransaction", "StopTransaction"]
        assert csms.calls("CP-OFF", "StopTransaction")[0][3]["transactionId"] == 1000
    finally:
        await ch.close()
        await csms.stop()
    assert money(edge, account) == (94_000, 94_000), "billed once"


async def test_proxy_live_known_card_decided_by_edge(edge_factory):
    csms = await Csms(free_port()).start()
    csms.tag_status["04AB0001"] = "Blocked"  # upstream would refuse; the edge knows the card and decides
    edge = edge_factory({**site(), "upstream": {"mode": "proxy", "url": csms.url}})
    add_card(edge, "04AB0001", "commercial", topup=100_000)
    ch = await Charger(edge.url, "CP-LIVE", "1.6").connect()
    try:
        auth = await ch.call(call16.Authorize(id_tag="04AB0001"))
        assert auth.id_tag_info["status"] == "Accepted"
        assert csms.calls("CP-LIVE", "Authorize") == [], "a known card's Authorize is answered by the edge"
        res = await ch.call(call16.StartTransaction(connector_id=1, id_tag="04AB0001", meter_start=0, timestamp=ts(0)))
        assert res.id_tag_info["status"] == "Accepted" and res.transaction_id != 1000
        assert len(csms.calls("CP-LIVE", "StartTransaction")) == 1, "upstream still sees the session"
        await ch.call(call16.StopTransaction(transaction_id=res.transaction_id, meter_stop=1000, timestamp=ts(5)))
        assert csms.calls("CP-LIVE", "StopTransaction")[0][3]["transactionId"] == 1000
    finally:
        await ch.close()
        await csms.stop()


async def test_authority_upstream_decides_while_up_and_edge_still_bills(edge_factory):
    csms = await Csms(free_port()).start()
    csms.tag_status["04AB0002"] = "Blocked"
    edge = edge_factory({**site(authority="upstream"), "upstream": {"mode": "proxy", "url": csms.url,
                                                                    "reconnect_min": 0.1, "reconnect_max": 0.5}})
    account = add_card(edge, "04AB0002", "commercial", topup=100_000)
    add_card(edge, "04AB0003", "commercial", topup=100_000)
    ch = await Charger(edge.url, "CP-UP", "1.6").connect()
    try:
        auth = await ch.call(call16.Authorize(id_tag="04AB0002"))
        assert auth.id_tag_info["status"] == "Blocked", "upstream's word while it is up"
        assert len(csms.calls("CP-UP", "Authorize")) == 1
        res = await ch.call(call16.StartTransaction(connector_id=1, id_tag="04AB0003", meter_start=0, timestamp=ts(0)))
        assert res.id_tag_info["status"] == "Accepted"
        assert money(edge, account) == (100_000, 100_000)
        other = edge.query("SELECT account_id, hold_minor, upstream_tx_id FROM transactions WHERE id = ?",
                           (res.transaction_id,))
        assert other[0][1:] == (50_000, 1000), "a known card started under upstream's authority is still held"
        await ch.call(call16.StopTransaction(transaction_id=res.transaction_id, meter_stop=1000, timestamp=ts(5)))
        assert edge.query("SELECT captured_minor FROM transactions WHERE id = ?", (res.transaction_id,)) == [(2_000,)]
        await csms.stop()
        for _ in range(100):
            if "sitekeeper_upstream_links_up 0" in edge.http("/metrics"):
                break
            await asyncio.sleep(0.05)
        auth = await ch.call(call16.Authorize(id_tag="04AB0002"))
        assert auth.id_tag_info["status"] == "Accepted", "offline, the edge's own cards decide"
    finally:
        await ch.close()
        await csms.stop()


async def test_201_hold_exhausted_request_stop(edge_factory):
    edge = edge_factory(site(max_hold="60.00", tariff={"per_kwh": "20.00"}))
    add_card(edge, "04EE0201", "commercial", topup=100_000)
    ch = await Charger(edge.url, "CS-X", "2.0.1").connect()

    def event(kind: str, seq: int, wh: int, minutes: float):
        return call201.TransactionEvent(
            event_type=kind, timestamp=ts(minutes), trigger_reason="Authorized" if kind == "Started" else
            "MeterValuePeriodic", seq_no=seq, transaction_info={"transaction_id": "X-201"},
            evse={"id": 1, "connector_id": 1}, meter_value=[{"timestamp": ts(minutes), "sampled_value": [
                {"value": wh, "measurand": "Energy.Active.Import.Register"}]}],
            **({"id_token": {"id_token": "04EE0201", "type": "ISO14443"}} if kind == "Started" else {}))
    try:
        res = await ch.call(event("Started", 0, 0, 0))
        assert res.id_token_info["status"] == "Accepted"
        await ch.call(event("Updated", 1, 3500, 10))  # 70.00 ≥ the 60.00 hold
        for _ in range(100):
            if any('"RequestStopTransaction"' in t for t in ch.received):
                break
            await asyncio.sleep(0.05)
        frame = json.loads(next(t for t in ch.received if '"RequestStopTransaction"' in t))
        assert frame[3] == {"transactionId": "X-201"}
    finally:
        await ch.close()
    assert edge.query("SELECT billing_stop IS NOT NULL FROM transactions") == [(1,)]


async def test_a_good_card_hears_accepted_at_the_end_of_its_session_when_unknown_cards_are_refused(edge_factory):
    """With `site.accept_unknown_cards = false` (the README's safe setting) the end of a normal session once
    answered idTagInfo Invalid for a card with credit: the charger may then tell the driver "card invalid"."""
    edge = edge_factory({**site(), "site": {"accept_unknown_cards": False}})
    add_card(edge, "04E0E001", "commercial", topup=100_000)
    add_card(edge, "04E0E002", "personal", chargers=["CP-END"])
    add_card(edge, "04E0E003", "personal", chargers=["ELSEWHERE"])
    ch = await Charger(edge.url, "CP-END", "1.6").connect()
    try:
        await ch.boot16()
        for uid in ("04E0E001", "04e0:e002"):
            start = await ch.start16(uid, meter_start=1000)
            assert start.id_tag_info["status"] == "Accepted"
            stop = await ch.stop16(start.transaction_id, 2000, id_tag=uid)
            assert stop.id_tag_info["status"] == "Accepted", (uid, stop)
        stop = await ch.stop16(999, 2000, id_tag="DEADBEEF")  # a card the site does not know: the rule holds
        assert stop.id_tag_info["status"] == "Invalid"
        stop = await ch.stop16(998, 2000, id_tag="04E0E003")  # its real status: not for this charger
        assert stop.id_tag_info["status"] == "Invalid"
    finally:
        await ch.close()
    ch = await Charger(edge.url, "CP-END2", "2.0.1").connect()
    try:
        assert (await ch.tx_event201("Started", "E-1", 0, 0, id_tag="04E0E001")).id_token_info["status"] == "Accepted"
        ended = await ch.tx_event201("Ended", "E-1", 1, 1000, id_tag="04E0E001")
        assert ended.id_token_info["status"] == "Accepted"
        ended = await ch.tx_event201("Ended", "E-2", 1, 1000, id_tag="04E0E002")  # limited to CP-END
        assert ended.id_token_info["status"] == "NotAtThisLocation"
    finally:
        await ch.close()
