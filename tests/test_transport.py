"""The edge's WebSocket transport (edge/transport.py, on picows) at the edges of the protocol, through a real
`sitekeeper run`: fragmented messages, oversized messages, a request that is not a WebSocket upgrade, a text
frame that is not UTF-8, a client that closes mid-handshake, and a charger that reconnects. Each time the
daemon goes on serving."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct

import pytest
from peers import Charger
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


async def heartbeat_ok(url: str, charger_id: str) -> None:
    ch = await Charger(url, charger_id, "1.6").connect()
    try:
        reply = await ch.raw('[2, "hb", "Heartbeat", {}]')
        assert reply[:2] == [3, "hb"]
    finally:
        await ch.close()


async def test_fragmented_message_is_assembled(edge_factory):
    edge = edge_factory()
    async with connect(f"{edge.url}/FRAG1", subprotocols=["ocpp1.6"]) as ws:
        await ws.send(['[2, "f1", "Heart', 'beat", ', "{}]"])  # one text message in three frames
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert reply[:2] == [3, "f1"] and reply[2]["currentTime"].endswith("Z")


async def test_oversized_message_closes_that_connection_only(edge_factory):
    edge = edge_factory()
    async with connect(f"{edge.url}/BIG1", subprotocols=["ocpp1.6"], max_size=None) as ws:
        await ws.send('[2, "big", "DataTransfer", {"vendorId": "x", "data": "' + "a" * (2**20 + 10) + '"}]')
        with pytest.raises(ConnectionClosed) as caught:
            await asyncio.wait_for(ws.recv(), 5)
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 1009  # message too big
    await heartbeat_ok(edge.url, "BIG2")


async def test_plain_http_request_gets_400(edge_factory):
    edge = edge_factory()
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.ocpp_port)
    writer.write(b"GET /ocpp/X HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.read(4096), 5)
    writer.close()
    assert head.startswith(b"HTTP/1.1 400 ") and b"WebSocket upgrade" in head
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.ocpp_port)
    writer.write(b"NONSENSE\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(4096), 5)).startswith(b"HTTP/1.1 400 ")
    writer.close()
    await heartbeat_ok(edge.url, "HTTP1")


def _masked_text_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + body


async def test_text_frame_not_utf8_gets_callerror(edge_factory):
    edge = edge_factory()
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.ocpp_port)
    writer.write(b"GET /ocpp/UTF1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                 b"Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 ") and b"ocpp1.6" in head
    writer.write(_masked_text_frame(b'[2, "u1", "Heartbeat", {"\xff": 1}]'))
    first = await asyncio.wait_for(reader.readexactly(2), 5)
    assert first[0] == 0x81  # a text frame back: the CALLERROR
    body = await reader.readexactly(first[1] & 0x7F)
    assert json.loads(body)[:3] == [4, "-1", "FormationViolation"]
    writer.close()
    await heartbeat_ok(edge.url, "UTF2")


async def test_client_gone_during_handshake_and_reconnect(edge_factory):
    edge = edge_factory()
    for _ in range(5):  # half a handshake, then gone
        s = socket.create_connection(("127.0.0.1", edge.ocpp_port))
        s.sendall(b"GET /ocpp/HALF HTTP/1.1\r\nHost: x\r\n")
        s.close()
    first = await Charger(edge.url, "RE1", "1.6").connect()
    await first.boot16()
    second = await Charger(edge.url, "RE1", "1.6").connect()  # the same charger again: the old socket goes
    try:
        await second.boot16()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(first.ws.recv(), 5)
    finally:
        await second.close()
        await first.close()
    assert " ERROR " not in edge.log() and "Traceback" not in edge.log()
