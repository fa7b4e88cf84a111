"""permessage-deflate (RFC 7692) for `edge.ocpp.transport`: the negotiation on both sides and each message's
(de)compression, as plain functions and one small object.

Like `websockets`, the edge keeps memory small per connection: its own compressor uses a 4 KiB window
(``max_window_bits`` 12) and zlib memLevel 5, and as a server it asks clients for the same window. Messages
under `MIN_SIZE` bytes go uncompressed (RFC 7692 lets either side send any message uncompressed: a Heartbeat or
a StartTransaction answer gains nothing), and the compressor (about 26 kB) is made for the first message that
is larger, so a charger link that only ever gets short answers holds just the inflater (about 5 kB).
"""

from __future__ import annotations

import zlib
from typing import Any

NAME = "permessage-deflate"
WINDOW_BITS = 12
MEM_LEVEL = 5
MIN_SIZE = 200
_TAIL = b"\x00\x00\xff\xff"


class NegotiationError(ValueError):
    pass


class TooBig(Exception):
    pass


class Deflate:
    """One connection's compression state. `send_bits`: the window our compressor may use; `send_reset`: no
    context takeover for what we send; `recv_bits`: the window the peer compresses with."""

    def __init__(self, send_bits: int = WINDOW_BITS, send_reset: bool = False, recv_bits: int = 15):
        self.send_bits = send_bits
        self.send_reset = send_reset
        self.recv_bits = recv_bits
        self._comp: Any = None
        self._decomp = zlib.decompressobj(-max(recv_bits, 9))  # zlib's deflate uses 9 when asked for 8

    def compress(self, data: bytes) -> bytes:
        if self._comp is None:
            self._comp = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -self.send_bits, MEM_LEVEL)
        out = self._comp.compress(data) + self._comp.flush(zlib.Z_SYNC_FLUSH)
        if self.send_reset:
            self._comp = None
        return out[:-4] if out.endswith(_TAIL) else out

    def decompress(self, data: bytes, limit: int) -> bytes:
        """The message `data` held, at most `limit` bytes (`TooBig` beyond; `zlib.error` if it is not deflate).
        The peer may keep its context, so ours is kept too, whatever it said about takeover."""
        out = self._decomp.decompress(data + _TAIL, limit + 1)
        if len(out) > limit or self._decomp.unconsumed_tail:
            raise TooBig
        return out


def _offers(header: str) -> list[tuple[str, dict[str, str | None]]]:
    """``a; x=1, b`` → [("a", {"x": "1"}), ("b", {})]; a repeated parameter makes the offer invalid (None)."""
    out = []
    for item in header.split(","):
        name, *params = [p.strip() for p in item.split(";")]
        values: dict[str, str | None] = {}
        bad = False
        for p in params:
            key, eq, value = p.partition("=")
            key = key.strip()
            if not key or key in values:
                bad = True
            values[key] = value.strip().strip('"') if eq else None
        if name:
            out.append((name.lower(), {"!": None} if bad else values))
    return out


def _bits(value: str | None) -> int:
    if value is None or not value.isdigit() or not 8 <= int(value) <= 15:
        raise NegotiationError(f"bad window bits {value!r}")
    return int(value)


def server_accept(header: str | None) -> tuple[str, Deflate] | None:
    """The server's side: the response header and the state for the first acceptable offer in a client's
    ``Sec-WebSocket-Extensions``, or None (no compression) if it offers none we can take."""
    for name, params in _offers(header or ""):
        if name != NAME:
            continue
        try:
            if set(params) - {"server_no_context_takeover", "client_no_context_takeover",
                              "server_max_window_bits", "client_max_window_bits"}:
                raise NegotiationError("unknown parameter")
            if any(params[k] is not None for k in ("server_no_context_takeover", "client_no_context_takeover")
                   if k in params):
                raise NegotiationError("takeover parameters take no value")
            send_bits = WINDOW_BITS
            if "server_max_window_bits" in params:
                send_bits = min(_bits(params["server_max_window_bits"]), WINDOW_BITS)
                if send_bits < 9:  # zlib cannot deflate with a 256-byte window
                    raise NegotiationError("window too small")
            answer = [NAME]
            reset = "server_no_context_takeover" in params
            if reset:
                answer.append("server_no_context_takeover")
            if "client_no_context_takeover" in params:
                answer.append("client_no_context_takeover")
            answer.append(f"server_max_window_bits={send_bits}")
            recv_bits = 15
            if "client_max_window_bits" in params:
                offered = params["client_max_window_bits"]
                recv_bits = WINDOW_BITS if offered is None else min(_bits(offered), WINDOW_BITS)
                answer.append(f"client_max_window_bits={recv_bits}")
        except NegotiationError:
            continue
        return "; ".join(answer), Deflate(send_bits, reset, recv_bits)
    return None


CLIENT_OFFER = f"{NAME}; client_max_window_bits"


def client_accept(header: str | None) -> Deflate | None:
    """The client's side, after offering `CLIENT_OFFER`: the state for the server's answer, None if it declined;
    `NegotiationError` if the answer is not one RFC 7692 allows (the connection must then fail)."""
    offers = _offers(header or "")
    if not offers:
        return None
    if len(offers) != 1 or offers[0][0] != NAME:
        raise NegotiationError(f"the server answered extensions we did not offer: {header!r}")
    params = offers[0][1]
    if set(params) - {"server_no_context_takeover", "client_no_context_takeover", "server_max_window_bits",
                      "client_max_window_bits"}:
        raise NegotiationError(f"bad permessage-deflate answer: {header!r}")
    recv_bits = _bits(params["server_max_window_bits"]) if "server_max_window_bits" in params else 15
    send_bits = WINDOW_BITS
    if "client_max_window_bits" in params:
        send_bits = min(_bits(params["client_max_window_bits"]), WINDOW_BITS)
        if send_bits < 9:
            raise NegotiationError("client window of 8 bits: zlib cannot deflate with it")
    return Deflate(send_bits, "client_no_context_takeover" in params, recv_bits)
