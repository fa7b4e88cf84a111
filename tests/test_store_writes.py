"""What may wait to be written, and what may not (an SD card wears with every commit). With the default
`store.background_delay` (30 s), meter samples and heartbeats are answered at once and committed later,
together; a stop (money) takes what waits into its own commit, so that its bill sees every sample; a kill -9
loses at most the samples that waited, never a session or its money."""

from __future__ import annotations

import asyncio

from conftest import wait_for
from ocpp.v16 import call as call16
from peers import Charger
from test_taps import add_card

from edge.config import StoreConfig

UID = "04AB12CD"
SITE = {"billing": {"max_hold": "500.00"},
        "tariff": {"per_kwh": "20.00", "per_minute": "0.00", "session_fee": "0.00", "idle_per_minute": "0.00"}}


def samples(edge) -> int:
    return edge.query("SELECT count(*) FROM meter_values")[0][0]


async def test_samples_wait_to_share_a_commit_and_a_stop_takes_them_with_it(edge_factory):
    assert StoreConfig.background_delay == 30, "the default this test is about"
    edge = edge_factory({"store": {"background_delay": StoreConfig.background_delay},
                         **SITE})
    add_card(edge, UID, "commercial", topup=100_000)
    ch = await Charger(edge.url, "CP-W1", "1.6").connect()
    await ch.boot16()
    tx = (await ch.start16(UID, meter_start=1000)).transaction_id
    assert edge.query("SELECT count(*) FROM transactions WHERE stopped_at IS NULL") == [(1,)], \
        "a start is committed before the charger hears its answer"
    for wh in (2000, 3000, 4000):
        await ch.meter16(tx, wh)
        await ch.call(call16.Heartbeat())
    await asyncio.sleep(2)
    assert samples(edge) == 0, "answered, and waiting to share a commit"
    await ch.stop16(tx, 5000)
    assert samples(edge) == 3, "the stop's commit took the waiting samples with it"
    captured = edge.query("SELECT captured_minor FROM transactions WHERE id = ?", (tx,))
    assert captured == [(8_000,)], "4 kWh at 20.00"
    await ch.close()


async def test_a_kill_loses_at_most_the_waiting_samples_never_the_session_or_its_money(edge_factory):
    # nothing else commits meanwhile (a commit takes what waits with it): no local list to push, and the kill
    # comes while the charger is still connected (its disconnection is a commit of its own)
    edge = edge_factory({"store": {"background_delay": StoreConfig.background_delay},
                         **SITE, "billing": {**SITE["billing"], "push_local_list": False}})
    add_card(edge, UID, "commercial", topup=100_000)
    ch = await Charger(edge.url, "CP-W2", "1.6").connect()
    await ch.boot16()
    tx = (await ch.start16(UID, meter_start=1000)).transaction_id
    await ch.meter16(tx, 2500)
    edge.kill9()
    await ch.close()
    assert samples(edge) == 0, "the sample that waited is gone with the process"
    assert edge.query("SELECT count(*) FROM transactions WHERE id = ? AND stopped_at IS NULL", (tx,)) == [(1,)]
    edge.start()
    ch = await Charger(edge.url, "CP-W2", "1.6").connect()
    await ch.boot16()
    await ch.stop16(tx, 3000)
    await wait_for(lambda: edge.query("SELECT captured_minor FROM transactions WHERE id = ?", (tx,)) == [(4_000,)],
                   what="2 kWh at 20.00 billed from the charger's own start and stop readings")
    await ch.close()
