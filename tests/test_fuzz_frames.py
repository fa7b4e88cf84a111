"""Fuzzing a real edge over a real socket: Hypothesis-made frames, mutated real ones and random bytes. Every
CALL with a readable message id gets a CALLRESULT or a CALLERROR (never silence), and the connection and the
daemon live on. In a sample of fuzzed frames every unanswered CALL once held an integer at or above 2^63."""

from __future__ import annotations

import asyncio
import json

import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ACTIONS = ["BootNotification", "Heartbeat", "StatusNotification", "Authorize", "StartTransaction", "MeterValues",
           "StopTransaction", "DataTransfer", "FirmwareStatusNotification", "NoSuchAction", ""]

REAL = [
    ("BootNotification", {"chargePointVendor": "ACME", "chargePointModel": "M1"}),
    ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"}),
    ("Authorize", {"idTag": "04AABBCC"}),
    ("StartTransaction", {"connectorId": 1, "idTag": "04AABBCC", "meterStart": 1000,
                          "timestamp": "2026-03-01T10:00:00Z"}),
    ("MeterValues", {"connectorId": 1, "transactionId": 1, "meterValue": [
        {"timestamp": "2026-03-01T10:05:00Z", "sampledValue": [{"value": "1500"}]}]}),
    ("StopTransaction", {"transactionId": 1, "meterStop": 2000, "timestamp": "2026-03-01T11:00:00Z"}),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.integers(min_value=-2**70, max_value=2**70),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)
big_ints = st.integers(min_value=2**62, max_value=2**80) | st.integers(min_value=-2**80, max_value=-2**62)


@st.composite
def mutated(draw) -> str:
    """A real CALL with one field given another value: a huge number, another type, nothing."""
    action, payload = draw(st.sampled_from(REAL))
    payload = json.loads(json.dumps(payload))
    key = draw(st.sampled_from(sorted(payload)))
    payload[key] = draw(big_ints | json_values)
    return json.dumps([2, draw(st.text(min_size=1, max_size=36)), action, payload])


generated = st.builds(lambda mid, action, payload: json.dumps([2, mid, action, payload]),
                      st.text(min_size=1, max_size=36), st.sampled_from(ACTIONS),
                      st.dictionaries(st.sampled_from(["connectorId", "idTag", "meterStart", "transactionId",
                                                       "meterStop", "timestamp", "status", "errorCode"]),
                                      json_values | big_ints, max_size=6))
frames = (mutated() | generated | st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
          | st.builds(lambda v: json.dumps(v), json_values))


def readable_id(text: str) -> str | None:
    """The id the edge must answer under: the CALL's own when readable, else "-1" for any CALL-like garbage."""
    try:
        msg = json.loads(text)
    except ValueError:
        return "-1"
    if isinstance(msg, list) and len(msg) >= 3 and msg[0] in (3, 4):
        return None  # an answer to nothing: logged, never answered
    if isinstance(msg, list) and len(msg) >= 3 and isinstance(msg[1], str) and 1 <= len(msg[1]) <= 36:
        return msg[1]
    return "-1"


def test_every_call_gets_an_answer_and_the_edge_lives_on(edge_factory):
    edge = edge_factory()
    loop = asyncio.new_event_loop()
    state: dict = {"ws": None, "sent": 0}

    async def connect():
        state["ws"] = await websockets.connect(f"{edge.url}/CP-FUZZ", subprotocols=["ocpp1.6"], max_size=2**20)

    async def answer_to(msg_id: str) -> list:
        while True:
            reply = json.loads(await asyncio.wait_for(state["ws"].recv(), 10))
            if reply[0] == 2:
                continue  # the edge's own CALL (its local list, ...): not what we wait for
            if reply[1] == msg_id:
                return reply

    async def one(text: str) -> None:
        if state["ws"] is None or state["ws"].close_code is not None:
            await connect()
        msg_id = readable_id(text)
        await state["ws"].send(text)
        state["sent"] += 1
        if msg_id is None:
            return
        reply = await answer_to(msg_id)
        assert reply[0] in (3, 4), (text, reply)

    @settings(max_examples=400, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(frames)
    def each(text: str) -> None:
        loop.run_until_complete(one(text))

    try:
        each()
        # the same connection still works, and the daemon is healthy
        loop.run_until_complete(one(json.dumps([2, "hb-end", "Heartbeat", {}])))
        assert state["ws"].close_code is None, "the connection lives on"
        assert json.loads(edge.http("/healthz"))["ok"] is True
        assert edge.proc.poll() is None
        assert "Traceback" not in edge.log(), edge.log()[-3000:]
    finally:
        if state["ws"] is not None:
            loop.run_until_complete(state["ws"].close())
        loop.close()


def test_a_number_too_large_for_the_database_is_refused_before_anything_is_written(edge_factory):
    edge = edge_factory()

    async def go() -> list:
        async with websockets.connect(f"{edge.url}/CP-BIG", subprotocols=["ocpp1.6"]) as ws:
            replies = []
            for key in ("connectorId", "meterStart"):
                start = {"connectorId": 1, "idTag": "04AABBCC", "meterStart": 1000, "timestamp": "2026-03-01T10:00:00Z"}
                start[key] = 2**63
                await ws.send(json.dumps([2, f"s-{key}", "StartTransaction", start]))
                replies.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            stop = {"transactionId": 2**64, "meterStop": 1, "timestamp": "2026-03-01T11:00:00Z"}
            await ws.send(json.dumps([2, "x", "StopTransaction", stop]))
            replies.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            return replies

    replies = asyncio.run(go())
    assert [r[:3] for r in replies] == [[4, "s-connectorId", "PropertyConstraintViolation"],
                                        [4, "s-meterStart", "PropertyConstraintViolation"],
                                        [4, "x", "PropertyConstraintViolation"]], replies
    assert "meterStart: the number is too large" in replies[1][3]
    assert edge.query("SELECT count(*) FROM transactions") == [(0,)]
