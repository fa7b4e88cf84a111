"""The edge's WebSocket transport (edge/ocpp/transport.py, on picows) at the edges of the protocol, through a real
`sitekeeper run`: fragmented messages, oversized messages, a request that is not a WebSocket upgrade, a text
frame that is not UTF-8, a client that closes mid-handshake, and a charger that reconnects. Each time the
daemon goes on serving."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import zlib

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


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_oversized_message_closes_that_connection_only(edge_factory, compression):
    """Deflated, the 1 MiB limit holds for what the message inflates to (a few kB on the wire here)."""
    edge = edge_factory()
    async with connect(f"{edge.url}/BIG1", subprotocols=["ocpp1.6"], max_size=None, compression=compression) as ws:
        assert bool(ws.protocol.extensions) == (compression is not None)
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
    upgrade = b"GET /ocpp/X HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    for extra, answer in ((b"Sec-WebSocket-Version: 13\r\n", b"HTTP/1.1 400 "),  # no key
                          (b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n", b"HTTP/1.1 400 "),
                          (b"Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
                           b"HTTP/1.1 426 ")):
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.ocpp_port)
        writer.write(upgrade + extra + b"\r\n")
        head = await asyncio.wait_for(reader.read(4096), 5)
        writer.close()
        assert head.startswith(answer), head
        assert (b"Sec-WebSocket-Version: 13" in head) == (answer == b"HTTP/1.1 426 ")
    assert edge.query("SELECT count(*) FROM chargers") == [(0,)], "a broken handshake reaches no charger session"
    await heartbeat_ok(edge.url, "HTTP1")


def _masked_text_frame(payload: bytes, rsv1: bool = False) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x81 | (0x40 if rsv1 else 0), 0x80 | len(payload)) + mask + body


async def _raw_upgrade(port: int, charger_id: str, extensions: str | None = None):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ext = f"Sec-WebSocket-Extensions: {extensions}\r\n".encode() if extensions else b""
    writer.write(f"GET /ocpp/{charger_id} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                 "Sec-WebSocket-Protocol: ocpp1.6\r\n".encode() + ext + b"\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 ")
    return reader, writer, head


async def _close_code(reader: asyncio.StreamReader) -> int:
    first = await asyncio.wait_for(reader.readexactly(2), 5)
    assert first[0] & 0x0F == 0x8, "a close frame"
    body = await reader.readexactly(first[1] & 0x7F)
    return struct.unpack("!H", body[:2])[0] if len(body) >= 2 else 0


async def test_compressed_frames_that_break_the_rules_close_with_their_codes(edge_factory):
    edge = edge_factory()
    # compressed (RSV1) though nobody agreed to compression: protocol error
    reader, writer, head = await _raw_upgrade(edge.ocpp_port, "RSV1")
    assert b"permessage-deflate" not in head
    writer.write(_masked_text_frame(zlib.compress(b'[2,"1","Heartbeat",{}]')[2:-4], rsv1=True))
    assert await _close_code(reader) == 1002
    writer.close()
    # agreed, but the bytes do not inflate: invalid data
    reader, writer, head = await _raw_upgrade(edge.ocpp_port, "RSV2", "permessage-deflate")
    assert b"permessage-deflate" in head
    writer.write(_masked_text_frame(b"\xff\xfe not deflate at all", rsv1=True))
    assert await _close_code(reader) == 1007
    writer.close()
    # agreed and well formed: answered (and the answer, being short, comes back uncompressed)
    reader, writer, _ = await _raw_upgrade(edge.ocpp_port, "RSV3", "permessage-deflate")
    deflater = zlib.compressobj(wbits=-12)
    writer.write(_masked_text_frame(deflater.compress(b'[2,"h","Heartbeat",{}]') + deflater.flush(zlib.Z_SYNC_FLUSH)[:-4],
                                    rsv1=True))
    first = await asyncio.wait_for(reader.readexactly(2), 5)
    assert first[0] == 0x81
    assert json.loads(await reader.readexactly(first[1] & 0x7F))[:2] == [3, "h"]
    writer.close()
    await heartbeat_ok(edge.url, "RSV4")


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


async def test_an_upstream_that_drops_the_upgrade_is_named_in_the_log(edge_factory):
    """The cloud reads the upgrade request and closes (or answers 101 and closes before the headers end):
    the log says so in words, the charger is served locally, and the edge tries again later."""
    tries = []

    async def drop(reader, writer):
        tries.append(await reader.readuntil(b"\r\n\r\n"))
        if len(tries) % 2 == 0:
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/csms"
    edge = edge_factory({"upstream": {"mode": "proxy", "url": url, "reconnect_min": 0.1, "reconnect_max": 0.2}})
    ch = await Charger(edge.url, "DROPUP", "1.6").connect()
    try:
        assert (await ch.raw('[2, "hb", "Heartbeat", {}]'))[:2] == [3, "hb"]
        deadline = asyncio.get_running_loop().time() + 10
        while len(tries) < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        assert len(tries) >= 3
        log = edge.log()
        assert "upstream for DROPUP unreachable: upstream closed the connection during the WebSocket handshake" in log
        assert "NoneType" not in log
    finally:
        await ch.close()
        server.close()
