"""permessage-deflate negotiation and (de)compression (edge/ocpp/deflate.py) as plain functions, against the
rules of RFC 7692 and against zlib streams made the way other implementations make them."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.ocpp.deflate import CLIENT_OFFER, Deflate, NegotiationError, TooBig, client_accept, server_accept


def test_server_takes_the_first_offer_it_can_honour():
    answer, _ = server_accept("permessage-deflate; client_max_window_bits")
    assert answer == "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
    answer, d = server_accept("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    assert answer == ("permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                      "server_max_window_bits=12")
    assert d.send_reset
    # a window of 8 bits zlib cannot keep; unknown parameters; a value where none belongs: next offer
    answer, _ = server_accept("permessage-deflate; server_max_window_bits=8, permessage-deflate; foo=1, "
                              "permessage-deflate; server_no_context_takeover=1, permessage-deflate; "
                              "server_max_window_bits=10")
    assert answer == "permessage-deflate; server_max_window_bits=10"
    assert server_accept(None) is None
    assert server_accept("x-webkit-deflate-frame") is None
    assert server_accept("permessage-deflate; client_max_window_bits=16") is None
    assert server_accept("permessage-deflate; client_max_window_bits; client_max_window_bits") is None


def test_client_accepts_only_what_rfc_7692_allows():
    assert client_accept(None) is None
    d = client_accept("permessage-deflate; server_max_window_bits=10; client_max_window_bits=9; "
                      "client_no_context_takeover")
    assert (d.send_bits, d.send_reset, d.recv_bits) == (9, True, 10)
    for bad in ("permessage-deflate; foo", "x-other", "permessage-deflate, permessage-deflate",
                "permessage-deflate; client_max_window_bits=8", "permessage-deflate; server_max_window_bits=99"):
        with pytest.raises(NegotiationError):
            client_accept(bad)
    assert CLIENT_OFFER.startswith("permessage-deflate")


@pytest.mark.parametrize("reset", [False, True])
def test_messages_round_trip_with_and_without_context_takeover(reset):
    sender, receiver = Deflate(12, reset), Deflate(15, False, recv_bits=12)
    message = b'[2,"1","MeterValues",{"connectorId":1,"meterValue":[' + b'{"v":"1234.5"},' * 40 + b"{}]}]"
    sizes = []
    for _ in range(3):
        wire = sender.compress(message)
        sizes.append(len(wire))
        assert receiver.decompress(wire, 2**20) == message
    assert sizes[0] < len(message) / 4
    assert (sizes[1] < sizes[0]) != reset  # with takeover the second copy is a back-reference


def test_decompress_inflates_other_deflaters_and_stops_at_the_limit():
    other = zlib.compressobj(wbits=-15)  # a peer with the full window
    wire = other.compress(b"x" * 100_000) + other.flush(zlib.Z_SYNC_FLUSH)
    with pytest.raises(TooBig):
        Deflate().decompress(wire[:-4], 50_000)
    assert Deflate().decompress(wire[:-4], 100_000) == b"x" * 100_000
    with pytest.raises(zlib.error):
        Deflate().decompress(b"\xff\xfe garbage", 1000)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.integers(min_value=9, max_value=15))
def test_any_bytes_inflate_or_fail_with_the_two_known_errors(data, bits):
    try:
        out = Deflate(recv_bits=bits).decompress(data, 4096)
    except (zlib.error, TooBig):
        return
    assert isinstance(out, bytes) and len(out) <= 4096
