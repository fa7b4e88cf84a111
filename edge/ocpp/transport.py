"""The edge's WebSocket transport, on `picows`: a charger-facing server with an async handshake, an upstream
client, and `Link`, one connection delivering whole text messages to plain callbacks.

Why not `websockets`: a frame through the edge crosses four WebSocket operations (charger in, upstream out,
upstream in, charger out), and picows (Cython) does each for a fraction of the CPU, on the event loop's own
callbacks, without a task wake-up per message. Measured in bench/proxy.py.

The server's handshake is ours: picows asks for a listener synchronously, but the edge must first check the
charger's credentials and, in proxy mode, open the upstream link to learn which subprotocol upstream chose
(the charger gets the same). So `_Handshake` reads the HTTP request itself, awaits `prepare(request)`, and
then either answers with a refusal or hands the connection (and the bytes read so far) to picows's protocol,
whose listener factory now has its answer ready. This uses picows's `WSProtocol` constructor, which is why
the version is pinned in pyproject.toml.

Compression: picows does not implement permessage-deflate, so this module does (`edge.ocpp.deflate`): both sides
negotiate it unless told not to, and `Link` inflates messages whose RSV1 bit is set and deflates what it sends.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from typing import Any

from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_connect,
)
from picows.picows import WSProtocol

from edge.ocpp import deflate

log = logging.getLogger(__name__)
logging.getLogger("picows").setLevel(logging.WARNING)  # it logs every connection at INFO

MAX_MESSAGE = 2**20  # bytes; a larger frame or message closes the connection (1009)
MAX_REQUEST_HEAD = 16 * 1024
HANDSHAKE_TIMEOUT = 10.0
READ_BUFFER = 2048  # initial per-connection read buffer; picows grows it for larger messages
TEXT, CONTINUATION, BINARY, CLOSE = WSMsgType.TEXT, WSMsgType.CONTINUATION, WSMsgType.BINARY, WSMsgType.CLOSE


@dataclass(slots=True)
class Request:
    """A WebSocket upgrade request: method, path (with query), headers (lower-case names; repeated
    headers joined with ", "), whether it came over TLS and, with a verified client certificate, that
    certificate as `ssl.SSLSocket.getpeercert()` gives it."""

    method: str
    path: str
    headers: dict[str, str]
    peer_cert: dict | None = None
    tls: bool = False


@dataclass(slots=True)
class Refusal:
    status: HTTPStatus
    text: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Accept:
    """Upgrade with this subprotocol (None: no header) and hand the connection to `link`. `abandon` runs if
    the client went away while `prepare` was working (to close what it opened)."""

    link: Link
    subprotocol: str | None
    abandon: Callable[[], Any] | None = None


Prepare = Callable[[Request], Awaitable[Accept | Refusal]]


class Link(WSListener):  # type: ignore[misc]
    """One WebSocket connection, message by message: `on_message(data: bytes)` for each whole text or binary
    message, `on_closed()` once. `send(text)` and `close(code, reason)` never raise once closed.
    `await link.wait_closed()` until the connection is gone (cancelling the waiter leaves the link alone)."""

    def __init__(self, on_message: Callable[[bytes], Any] | None = None,
                 on_closed: Callable[[], Any] | None = None):
        self.on_message = on_message
        self.on_closed = on_closed
        self.transport: WSTransport | None = None
        self._closed = asyncio.get_running_loop().create_future()
        self._parts: list[bytes] | None = None  # a fragmented message being assembled
        self._size = 0
        self._compressed = False  # the message being assembled is deflated
        self.deflate: deflate.Deflate | None = None  # permessage-deflate, once negotiated
        self.offered_deflate = False  # a client that offered it: the server's answer decides
        self.refused_deflate = ""  # why the server's answer was not acceptable

    # picows callbacks
    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        if self.offered_deflate:
            try:
                self.deflate = deflate.client_accept(transport.response.headers.get("Sec-WebSocket-Extensions"))
            except deflate.NegotiationError as e:
                self.refused_deflate = str(e)
                self._fail(WSCloseCode.PROTOCOL_ERROR, str(e))

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is TEXT or kind is BINARY:
            if frame.rsv1 and self.deflate is None:
                return self._fail(WSCloseCode.PROTOCOL_ERROR, "compressed frame without permessage-deflate")
            if frame.fin:
                if self._parts is not None:
                    return self._fail(WSCloseCode.PROTOCOL_ERROR, "new message inside a fragmented one")
                data = frame.get_payload_as_bytes()
                if frame.rsv1 and (data := self._inflate(data)) is None:
                    return None
                if self.on_message is not None:
                    self.on_message(data)
                return None
            self._parts, self._size = [frame.get_payload_as_bytes()], frame.payload_size
            self._compressed = frame.rsv1
        elif kind is CONTINUATION:
            if self._parts is None or frame.rsv1:
                return self._fail(WSCloseCode.PROTOCOL_ERROR, "continuation without a message, or with RSV1")
            self._size += frame.payload_size
            if self._size > MAX_MESSAGE:
                return self._fail(WSCloseCode.MESSAGE_TOO_BIG, "message too big")
            self._parts.append(frame.get_payload_as_bytes())
            if frame.fin:
                data, self._parts = b"".join(self._parts), None
                if self._compressed and (data := self._inflate(data)) is None:
                    return None
                if self.on_message is not None:
                    self.on_message(data)
        elif kind is CLOSE:
            if not transport.is_close_frame_sent:
                code = frame.get_close_code()
                transport.send_close(code if code != WSCloseCode.NO_INFO else WSCloseCode.OK)
            transport.disconnect()
        return None

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self._closed.done():
            self._closed.set_result(None)
            if self.on_closed is not None:
                self.on_closed()

    # ours
    def _inflate(self, data: bytes) -> bytes | None:
        try:
            return self.deflate.decompress(data, MAX_MESSAGE)  # type: ignore[union-attr]
        except deflate.TooBig:
            self._fail(WSCloseCode.MESSAGE_TOO_BIG, "message too big")
        except zlib.error:
            self._fail(WSCloseCode.INVALID_TEXT, "a compressed message does not inflate")
        return None

    def _fail(self, code: WSCloseCode, reason: str) -> None:
        log.info("closing a WebSocket: %s", reason)
        self.close(code.value, reason)

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self._closed.done() and not self.transport.is_close_frame_sent

    def send(self, text: str | bytes) -> None:
        if self.is_open:
            data = text.encode() if isinstance(text, str) else text
            if self.deflate is not None and len(data) >= deflate.MIN_SIZE:
                self.transport.send(TEXT, self.deflate.compress(data), rsv1=True)  # type: ignore[union-attr]
            else:
                self.transport.send(TEXT, data)  # type: ignore[union-attr]

    def close(self, code: int = 1000, reason: str = "") -> None:
        t = self.transport
        if t is None or self._closed.done():
            return
        if not t.is_close_frame_sent:
            with contextlib.suppress(Exception):
                t.send_close(WSCloseCode(code), reason.encode()[:120])
        t.disconnect()

    @property
    def is_closed(self) -> bool:
        return self._closed.done()

    async def wait_closed(self) -> None:
        """Until the connection is gone. Shielded: a waiter that is cancelled does not mark the link closed
        (it would then never be disconnected)."""
        await asyncio.shield(self._closed)

    async def aclose(self, code: int = 1000, reason: str = "", timeout: float = 5.0) -> None:
        """Close and wait until the connection is gone."""
        self.close(code, reason)
        if self.transport is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wait_closed(), timeout)


# -- server --------------------------------------------------------------------------------------------------
def _parse_head(head: bytes) -> Request | None:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            return None
        key, value = name.strip().lower(), value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return Request(parts[0], parts[1], headers)


def _valid_key(key: str) -> bool:
    try:
        return len(base64.b64decode(key.strip(), validate=True)) == 16
    except ValueError:
        return False


def _refusal_bytes(r: Refusal) -> bytes:
    body = (r.text + "\n").encode()
    head = [f"HTTP/1.1 {r.status.value} {r.status.phrase}", "Server: sitekeeper",
            "Content-Type: text/plain; charset=utf-8", f"Content-Length: {len(body)}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in r.headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class _Handshake(asyncio.Protocol):
    """Reads the upgrade request, awaits `prepare`, then refuses or hands the connection over to picows."""

    def __init__(self, prepare: Prepare, ping_interval: float, compression: bool):
        self.prepare = prepare
        self.ping_interval = ping_interval
        self.compression = compression
        self.loop = asyncio.get_running_loop()
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.gone = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.timer = self.loop.call_later(HANDSHAKE_TIMEOUT, transport.close)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.task is not None:
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_REQUEST_HEAD:
                self._refuse(Refusal(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large"))
            return
        request = _parse_head(bytes(self.buf[:end]))
        if request is None or request.method != "GET" or "websocket" not in request.headers.get("upgrade", "").lower():
            self._refuse(Refusal(HTTPStatus.BAD_REQUEST, "expected a WebSocket upgrade (GET, Upgrade: websocket)"))
            return
        if request.headers.get("sec-websocket-version", "").strip() != "13":  # RFC 6455 §4.4
            self._refuse(Refusal(HTTPStatus.UPGRADE_REQUIRED, "WebSocket version 13 only",
                                 {"Sec-WebSocket-Version": "13"}))
            return
        if not _valid_key(request.headers.get("sec-websocket-key", "")):
            self._refuse(Refusal(HTTPStatus.BAD_REQUEST, "Sec-WebSocket-Key must be 16 bytes in base64"))
            return
        ssl_object = self.transport.get_extra_info("ssl_object")  # type: ignore[union-attr]
        if ssl_object is not None:
            request.tls = True
            request.peer_cert = ssl_object.getpeercert() or None
        self.transport.pause_reading()  # type: ignore[union-attr]
        self.task = self.loop.create_task(self._run(request))

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone = True
        if self.timer is not None:
            self.timer.cancel()

    def _refuse(self, refusal: Refusal) -> None:
        assert self.transport is not None
        self.transport.write(_refusal_bytes(refusal))
        self.transport.close()

    async def _run(self, request: Request) -> None:
        try:
            outcome = await self.prepare(request)
        except Exception:
            log.exception("handshake of %s failed", request.path)
            outcome = Refusal(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
        if self.timer is not None:
            self.timer.cancel()
        if self.gone:
            if isinstance(outcome, Accept) and outcome.abandon is not None:
                outcome.abandon()
            return
        if isinstance(outcome, Refusal):
            self._refuse(outcome)
            return
        headers = {"Server": "sitekeeper"}
        if outcome.subprotocol:
            headers["Sec-WebSocket-Protocol"] = outcome.subprotocol
        if self.compression:
            agreed = deflate.server_accept(request.headers.get("sec-websocket-extensions"))
            if agreed is not None:
                headers["Sec-WebSocket-Extensions"], outcome.link.deflate = agreed
        response = WSUpgradeResponse.create_101_response(extra_headers=headers)

        def factory(_request: Any) -> WSUpgradeResponseWithListener:
            return WSUpgradeResponseWithListener(response, outcome.link)

        proto = WSProtocol(None, None, False, factory, logging.getLogger("picows.server"), True,
                           HANDSHAKE_TIMEOUT, self.ping_interval > 0, self.ping_interval or 20.0,
                           self.ping_interval or 20.0, 1, True, MAX_MESSAGE, None, READ_BUFFER)
        transport = self.transport
        assert transport is not None
        transport.set_protocol(proto)
        proto.connection_made(transport)
        data = memoryview(bytes(self.buf))
        while data:
            buf = proto.get_buffer(len(data))
            n = min(len(buf), len(data))
            buf[:n] = data[:n]
            proto.buffer_updated(n)
            data = data[n:]
        transport.resume_reading()


async def serve(prepare: Prepare, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None,
                ping_interval: float = 60.0, compression: bool = True) -> asyncio.Server:
    """Listen for chargers; each upgrade request goes through `prepare` (see the module docstring).
    `compression`: accept permessage-deflate when a charger offers it."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(partial(_Handshake, prepare, ping_interval, compression), host, port,
                                    ssl=ssl_context, backlog=4096, reuse_address=True)


# -- client --------------------------------------------------------------------------------------------------
class HandshakeFailed(Exception):
    pass


async def connect(url: str, link: Link, *, subprotocols: list[str], headers: dict[str, str] | None = None,
                  ssl_context: ssl.SSLContext | None = None, timeout: float = 5.0,
                  ping_interval: float = 20.0, compression: bool = True) -> str | None:
    """Open `link` as a client of `url`; return the subprotocol the server chose. Raises on any failure
    (refused, unreachable, TLS, HTTP status, timeout). `compression`: offer permessage-deflate."""
    extra = {"User-Agent": "sitekeeper", **(headers or {})}
    if subprotocols:
        extra["Sec-WebSocket-Protocol"] = ", ".join(subprotocols)
    if compression:
        extra["Sec-WebSocket-Extensions"] = deflate.CLIENT_OFFER
        link.offered_deflate = True
    kwargs: dict[str, Any] = {"ssl_context": ssl_context} if url.startswith("wss://") else {}
    transport, _ = await asyncio.wait_for(
        ws_connect(lambda: link, url, extra_headers=extra, websocket_handshake_timeout=timeout,
                   enable_auto_ping=ping_interval > 0, auto_ping_idle_timeout=ping_interval or 20.0,
                   auto_ping_reply_timeout=ping_interval or 20.0, max_frame_size=MAX_MESSAGE,
                   read_buffer_init_size=READ_BUFFER,
                   logger_name="client", **kwargs), timeout)
    if transport.response is None or link.transport is None:  # picows hands back a transport regardless
        transport.disconnect()
        raise HandshakeFailed("upstream closed the connection during the WebSocket handshake")
    if link.refused_deflate:
        raise HandshakeFailed(f"bad permessage-deflate answer: {link.refused_deflate}")
    chosen = transport.response.headers.get("Sec-WebSocket-Protocol")
    return chosen.strip() if chosen else None
