"""Proxy mode against the faults real clouds have: answering late, refusing a replayed start, accepting a
connection and closing it, stalling, restarting in the middle of a replay, and the edge killed in the middle
of one. Each time the cloud must get every Start and Stop (1.6) and every TransactionEvent (2.0.1) of every
session once, with the right energy (the one frame in flight when a link failed may come twice, with its own
message id), and the edge must not storm it with connections."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections import Counter

from conftest import SITEKEEPER, free_port, wait_for
from peers import Charger, Csms
from test_proxy import proxy_config

SESSION_16 = ("StartTransaction", "StopTransaction")


def once_each(csms: Csms, charger_id: str, actions=SESSION_16, repeats: int = 0) -> list[list]:
    """The CALLs of `actions` the cloud got from `charger_id`; each message id once, but for at most `repeats`
    ids that came twice as the very same text (a frame in flight when the link failed)."""
    texts = [t for p in csms.history if p.charger_id == charger_id for t in p.received]
    calls = [json.loads(t) for t in texts]
    wanted = [(c, t) for c, t in zip(calls, texts, strict=True) if c[0] == 2 and c[2] in actions]
    seen = Counter(c[1] for c, _ in wanted)
    twice = {m for m, n in seen.items() if n > 1}
    assert all(seen[m] == 2 for m in twice) and len(twice) <= repeats, f"repeated: {dict(seen)}"
    for m in twice:
        assert len({t for c, t in wanted if c[1] == m}) == 1, "a repeat is the same frame again"
    firsts = {}
    for c, _ in wanted:
        firsts.setdefault(c[1], c)
    return list(firsts.values())


def cloud_energy(csms: Csms, charger_id: str) -> list[tuple[int, int]]:
    return sorted((t["meter_start"], t.get("meter_stop")) for t in csms.transactions.values()
                  if t["charger_id"] == charger_id)


async def offline_sessions(ch: Charger, n: int, card: str = "CARD-1", first_wh: int = 0) -> list[tuple[int, int]]:
    """`n` card sessions (start, meter values, stop); their (meterStart, meterStop)."""
    made = []
    for i in range(n):
        begin = first_wh + i * 1000
        tx = (await ch.start16(card, meter_start=begin)).transaction_id
        await ch.meter16(tx, begin + 400)
        await ch.stop16(tx, begin + 700 + i)
        made.append((begin, begin + 700 + i))
    return made


def queue_len(edge) -> int:
    return edge.query("SELECT count(*) FROM upstream_queue")[0][0]


def metric(edge, sample: str) -> float:
    for line in edge.http("/metrics").splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no metric {sample}")


async def test_a_charger_that_leaves_takes_its_upstream_link_with_it(edge_factory):
    csms = await Csms(free_port()).start()
    try:
        edge = edge_factory(proxy_config(csms))
        for _ in range(3):
            ch = await Charger(edge.url, "LEAVE", "1.6").connect()
            await ch.boot16()
            assert csms.open_connections == 1
            await ch.close()
            await wait_for(lambda: csms.open_connections == 0, timeout=5, what="the cloud to see the close")
        await wait_for(lambda: json.loads(edge.http("/healthz"))["chargers_connected"] == 0, timeout=5,
                       what="/healthz to count no charger")
        assert json.loads(edge.http("/healthz"))["upstream_links_up"] == 0
        assert len(csms.history) == 3
        await wait_for(lambda: edge.log().count("charger LEAVE disconnected") == 3, timeout=5, what="log")
        await wait_for(lambda: edge.query("SELECT connected FROM chargers WHERE id = 'LEAVE'") == [(0,)],
                       timeout=5, what="the charger row")
    finally:
        await csms.stop()


async def test_a_late_answer_is_used_and_nothing_goes_up_twice(edge_factory):
    """The cloud answers a 1.6 start and a 2.0.1 Started event 15 s late (call_timeout is 10 s)."""
    csms = await Csms(free_port()).start()
    csms.answer_delay = {"StartTransaction": 15, "TransactionEvent": 15}
    edge = edge_factory(proxy_config(csms, offline_accept_unknown=True, call_timeout=10))
    ch16 = await Charger(edge.url, "LATE16", "1.6").connect()
    ch201 = await Charger(edge.url, "LATE201", "2.0.1").connect()
    loop = asyncio.get_running_loop()
    try:
        async def session16() -> float:
            t0 = loop.time()
            start = await ch16.start16("CARD-16", meter_start=100)
            waited = loop.time() - t0
            await ch16.meter16(start.transaction_id, 600)
            await ch16.stop16(start.transaction_id, 900)
            return waited

        async def session201() -> float:
            t0 = loop.time()
            await ch201.tx_event201("Started", "TX-LATE", 0, 100, id_tag="04A1B2C3D4E5F6")
            waited = loop.time() - t0
            await ch201.tx_event201("Updated", "TX-LATE", 1, 500)
            await ch201.tx_event201("Ended", "TX-LATE", 2, 800)
            return waited

        waits = await asyncio.gather(session16(), session201())
        assert all(9 < w < 13 for w in waits), f"answered locally at call_timeout, not later: {waits}"
        await wait_for(lambda: csms.transactions.get(1000, {}).get("stops") == 1, timeout=20, what="the stop")
        await wait_for(lambda: len(csms.calls("LATE201", "TransactionEvent")) == 3, timeout=20, what="events")
        await wait_for(lambda: queue_len(edge) == 0, what="the queue to empty")
        assert len(csms.history) == 2, "one connection per charger: a late answer does not reset the link"
        starts, stops = once_each(csms, "LATE16")[:1], once_each(csms, "LATE16")[1:]
        assert len(starts) == 1 and len(stops) == 1 and stops[0][3]["transactionId"] == 1000
        assert [m[3]["transactionId"] for m in csms.calls("LATE16", "MeterValues")] == [1000]
        assert cloud_energy(csms, "LATE16") == [(100, 900)]
        events = once_each(csms, "LATE201", ("TransactionEvent",))
        sent = [json.loads(t) for t in ch201.sent]
        assert [e[1] for e in events] == [s[1] for s in sent]
        assert events[0] == sent[0], "the late one went up live: its own text"
        assert [e[3]["offline"] for e in events[1:]] == [True, True], "the queued ones say they were late"
        assert edge.query("SELECT upstream_tx_id FROM transactions WHERE charger_id = 'LATE16'") == [(1000,)]
        assert metric(edge, "sitekeeper_answered_locally_while_up_total") >= 4
    finally:
        await ch16.close()
        await ch201.close()
        await csms.stop()


async def test_a_refused_replay_still_reaches_the_cloud_and_the_owner_sees_it(edge_factory):
    csms = Csms(free_port())  # away for now
    csms.start_zero = True  # and when back, it refuses every start with transactionId 0
    edge = edge_factory(proxy_config(csms, offline_accept_unknown=True))
    ch = await Charger(edge.url, "REF", "1.6").connect()
    try:
        tx = (await ch.start16("CARD-R", meter_start=100)).transaction_id
        await ch.meter16(tx, 400)
        await ch.stop16(tx, 700)
        await csms.start()
        await wait_for(lambda: len(csms.calls("REF", "StopTransaction")) == 1, what="the stop")
        start, stop = once_each(csms, "REF")
        meters = csms.calls("REF", "MeterValues")
        assert stop[3]["transactionId"] == 0 and stop[3]["meterStop"] == 700, "with the id upstream gave"
        assert [m[3]["transactionId"] for m in meters] == [0]
        assert "upstream refused replayed transaction" in edge.log()
        assert metric(edge, 'sitekeeper_upstream_refused_total{when="replay"}') == 1
        out = subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "sessions", "list",
                              "--upstream-refused", "--json"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        rows = json.loads(out.stdout)["sessions"]
        assert [(r["id"], r["upstream_status"], r["upstream_tx_id"]) for r in rows] == [(tx, "Accepted", 0)]
        table = subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "sessions", "list",
                                "--upstream-refused"], capture_output=True, text=True, timeout=30)
        assert "REF" in table.stdout and "refused by upstream" in table.stdout
    finally:
        await ch.close()
        await csms.stop()


async def test_a_start_refused_concurrent_right_after_its_cards_stop_is_retried(edge_factory):
    """The cloud closes a session a moment after its Stop: the same card's next replayed Start, 5 ms later,
    meets ConcurrentTx. The edge sends it once more after a pause, and the cloud gets both sessions whole."""
    csms = Csms(free_port())
    csms.concurrent_tx, csms.close_delay = True, 0.5
    edge = edge_factory(proxy_config(csms, offline_accept_unknown=True))
    ch = await Charger(edge.url, "CONC", "1.6").connect()
    try:
        made = await offline_sessions(ch, 2, card="CARD-C")
        await csms.start()
        await wait_for(lambda: len(csms.calls("CONC", "StopTransaction")) == 2, what="both stops")
        assert cloud_energy(csms, "CONC") == made
        assert all(t["stops"] == 1 for t in csms.transactions.values())
        starts = csms.calls("CONC", "StartTransaction")
        assert len(starts) == 3 and starts[1][3] == starts[2][3] and starts[1][1] != starts[2][1]
        assert "sending it once more" in edge.log()
        assert metric(edge, "sitekeeper_replay_retries_total") == 1
        assert edge.query("SELECT upstream_tx_id, upstream_status FROM transactions ORDER BY id") == [
            (1000, "Accepted"), (1001, "Accepted")]
    finally:
        await ch.close()
        await csms.stop()


async def test_an_upstream_that_closes_at_once_or_stalls_is_not_hammered(edge_factory):
    """60 s against a cloud that completes the handshake and closes, and one that accepts TCP and never
    answers, with the default backoff: a handful of connections each, not thousands."""
    closing = Csms(free_port())
    closing.close_at_once = True
    await closing.start()
    stalled: list[asyncio.StreamWriter] = []

    async def stall(reader, writer):
        stalled.append(writer)  # read nothing, answer nothing

    stall_server = await asyncio.start_server(stall, "127.0.0.1", 0)
    stall_url = f"ws://127.0.0.1:{stall_server.sockets[0].getsockname()[1]}/csms"
    edge_a = edge_factory({"upstream": {"mode": "proxy", "url": closing.url, "offline_accept_unknown": True}})
    edge_b = edge_factory({"upstream": {"mode": "proxy", "url": stall_url, "offline_accept_unknown": True}})
    ch_a = await Charger(edge_a.url, "CLOSER", "1.6").connect()
    ch_b = await Charger(edge_b.url, "STALL", "1.6").connect()
    try:
        await offline_sessions(ch_a, 1)  # something to replay on every connection
        await offline_sessions(ch_b, 1)
        await asyncio.sleep(60)
        assert 3 <= len(closing.history) <= 12, f"{len(closing.history)} connections in 60 s"
        assert 3 <= len(stalled) <= 12, f"{len(stalled)} connections in 60 s"
        journal = subprocess.run([SITEKEEPER, "--config", str(edge_a.config_path), "journal", "CLOSER",
                                  "--json", "--limit", "1000"], capture_output=True, text=True, timeout=30)
        replayed = [line for line in journal.stdout.splitlines() if "StartTransaction" in line and "e>u" in line]
        assert len(replayed) <= len(closing.history)
        assert metric(edge_a, 'sitekeeper_upstream_connects_total{result="ok"}') == len(closing.history)
        assert "no answer in time" in edge_b.log()
        assert queue_len(edge_a) == 3 and queue_len(edge_b) == 3, "nothing lost meanwhile"
    finally:
        await ch_a.close()
        await ch_b.close()
        await closing.stop()
        for w in stalled:
            w.close()
        stall_server.close()


async def test_many_chargers_at_once_reach_the_cloud_staggered(edge_factory):
    """After an outage every charger comes back in the same second: the site opens its upstream links at its
    own pace (here 5 a second), and serves every charger meanwhile."""
    csms = await Csms(free_port()).start()
    edge = edge_factory(proxy_config(csms, max_connects_per_second=5))
    chargers = [Charger(edge.url, f"CROWD{i:02d}", "1.6") for i in range(15)]
    try:
        await asyncio.gather(*(c.connect() for c in chargers))
        booted = await asyncio.gather(*(c.boot16() for c in chargers))
        assert all(b.status == "Accepted" for b in booted)  # answered at once, by upstream or by the edge
        await wait_for(lambda: len(csms.peers) == 15, timeout=10, what="every charger's link")
        times = sorted(p.connected_at for p in csms.history)
        assert times[-1] - times[0] >= 1.5, "not all in the same second"
        in_any_second = max(sum(1 for t in times if start <= t < start + 1) for start in times)
        assert in_any_second <= 10
        await wait_for(lambda: all(len(csms.calls(c.charger_id, "BootNotification")) == 1 for c in chargers),
                       what="each boot upstream once")
    finally:
        await asyncio.gather(*(c.close() for c in chargers))
        await csms.stop()


async def test_upstream_restarted_in_the_middle_of_a_replay(edge_factory):
    csms = Csms(free_port())
    edge = edge_factory(proxy_config(csms, offline_accept_unknown=True))
    ch = await Charger(edge.url, "RST", "1.6").connect()
    try:
        made = await offline_sessions(ch, 4)
        seen = []

        def hold(text: str) -> bool:  # the 6th replayed frame (session 2's stop) comes in, then it restarts
            seen.append(text)
            if len(seen) == 6:
                asyncio.get_running_loop().create_task(restart())
                return True
            return False

        async def restart():
            await csms.stop()
            csms.hold = None
            await asyncio.sleep(1)
            await csms.start()

        csms.hold = hold
        await csms.start()
        await wait_for(lambda: len(cloud_energy(csms, "RST")) == 4 and queue_len(edge) == 0, timeout=30,
                       what="every session in the cloud")
        calls = once_each(csms, "RST", repeats=1)
        assert len(calls) == 8
        assert cloud_energy(csms, "RST") == made
        assert all(t["stops"] == 1 for t in csms.transactions.values())
        assert len(csms.history) <= 4
    finally:
        await ch.close()
        await csms.stop()


async def test_kill9_in_the_middle_of_a_replay_repeats_at_most_the_frame_in_flight(edge_factory):
    csms = Csms(free_port())
    edge = edge_factory(proxy_config(csms, offline_accept_unknown=True))
    ch = await Charger(edge.url, "K9R", "1.6").connect()
    made = await offline_sessions(ch, 3)
    seen = []
    csms.hold = lambda text: seen.append(text) or len(seen) == 5  # session 2's meter values: never answered
    await csms.start()
    await wait_for(lambda: len(seen) == 5, what="the replay to reach the held frame")
    edge.kill9()
    await ch.close()
    csms.hold = None
    edge.start()
    ch = await Charger(edge.url, "K9R", "1.6").connect()
    try:
        await wait_for(lambda: len(cloud_energy(csms, "K9R")) == 3 and queue_len(edge) == 0, timeout=30,
                       what="every session in the cloud")
        assert len(once_each(csms, "K9R")) == 6, "no Start or Stop twice"
        metered = once_each(csms, "K9R", ("MeterValues",), repeats=1)
        assert len(metered) == 3 and metered[1][3]["transactionId"] == 1001, "the mapping survived the kill"
        assert cloud_energy(csms, "K9R") == made
    finally:
        await ch.close()
        await csms.stop()


async def test_a_queue_goes_up_though_its_charger_has_gone(edge_factory):
    csms = Csms(free_port())
    edge = edge_factory(proxy_config(csms, offline_accept_unknown=True, queue_alert_minutes=0.01))
    ch = await Charger(edge.url, "AWAY", "1.6").connect()
    made = await offline_sessions(ch, 2)
    await ch.close()
    await asyncio.sleep(1)
    health = json.loads(edge.http("/healthz"))
    assert health["upstream_queue"]["messages"] == 6 and health["upstream_queue"]["stale"]
    assert health["alerts"] and "AWAY" in health["alerts"][0]
    assert metric(edge, "sitekeeper_upstream_queue_stale") == 1
    await csms.start()
    try:
        await wait_for(lambda: len(cloud_energy(csms, "AWAY")) == 2 and queue_len(edge) == 0, timeout=20,
                       what="the queue to go up without its charger")
        assert cloud_energy(csms, "AWAY") == made and len(once_each(csms, "AWAY")) == 4
        await wait_for(lambda: csms.open_connections == 0, timeout=5, what="the replay link to close")
        health = json.loads(edge.http("/healthz"))
        assert health["alerts"] == [] and health["upstream_links_up"] == 0 and health["chargers_connected"] == 0
        assert metric(edge, "sitekeeper_replays_without_charger_total") == 1
        # the charger comes back: nothing goes up again
        ch = await Charger(edge.url, "AWAY", "1.6").connect()
        await ch.boot16()
        await ch.close()
        assert len(csms.calls("AWAY", "StartTransaction")) == 2
    finally:
        await csms.stop()


async def test_a_stalled_uplink_does_not_hold_the_chargers_handshake(edge_factory):
    """An upstream address that accepts TCP and never answers (a stalled cellular link) once held the charger's
    own WebSocket open for about 5 s: a charger that gives up after 5 s never got on. Now it is answered at
    once, in the subprotocol it asked for, and upstream is attached when (if) it comes."""
    import time

    stalled: list[asyncio.StreamWriter] = []

    async def stall(reader, writer):
        stalled.append(writer)

    stall_server = await asyncio.start_server(stall, "127.0.0.1", 0)
    stall_url = f"ws://127.0.0.1:{stall_server.sockets[0].getsockname()[1]}/csms"
    edge = edge_factory({"upstream": {"mode": "proxy", "url": stall_url, "offline_accept_unknown": True}})
    try:
        for version in ("2.0.1", "1.6"):
            began = time.monotonic()
            ch = await Charger(edge.url, f"SLOW-{version}", version).connect()
            took = time.monotonic() - began
            try:
                assert took < 1.5, f"the charger's handshake took {took:.1f} s"
                assert ch.ws.subprotocol == ("ocpp1.6" if version == "1.6" else "ocpp2.0.1")
                if version == "1.6":
                    assert (await ch.boot16()).status == "Accepted", "answered by the edge meanwhile"
                    await wait_for(lambda: "unreachable: no answer in time" in edge.log(), timeout=20,
                                   what="the log gives the reason")
            finally:
                await ch.close()
        assert "unreachable: \n" not in edge.log(), "never a reason left empty"
    finally:
        for w in stalled:
            w.close()
        stall_server.close()


async def test_an_upstream_that_answers_in_time_still_chooses_the_subprotocol(edge_factory):
    csms = Csms(free_port())
    await csms.start()
    edge = edge_factory(proxy_config(csms))
    try:
        ch = await Charger(edge.url, "QUICK", "1.6").connect()
        try:
            assert (await ch.boot16()).status == "Accepted"
            await wait_for(lambda: any(p.charger_id == "QUICK" for p in csms.history), what="upstream attached")
            assert [json.loads(t)[2] for p in csms.history if p.charger_id == "QUICK" for t in p.received
                    if json.loads(t)[0] == 2][:1] == ["BootNotification"], "the first frame went up live"
        finally:
            await ch.close()
    finally:
        await csms.stop()
