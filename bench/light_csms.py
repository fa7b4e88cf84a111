"""A light OCPP 1.6J CSMS for the benchmarks: the "direct" baseline and the edge's upstream in proxy mode.

It shares nothing with the edge: one asyncio process on `websockets`, one handler per connection that
parses each CALL with `json.loads` and answers at once (Boot, Heartbeat, StatusNotification, Authorize,
Start/StopTransaction with its own increasing transaction ids, MeterValues, DataTransfer, …; anything else
gets a NotImplemented CALLERROR). It persists nothing. ``--delay-ms`` holds each answer back, to stand in for
a cloud CSMS's round trip. Chargers connect to ``ws://127.0.0.1:PORT/<any
path>/<charger-id>``.

Run on its own (bench/proxy.py starts it for you)::

    .venv/bin/python bench/light_csms.py [--port 0] [--deflate] [--delay-ms 0]

It prints ``ready port=N`` once it listens and runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from benchutil import READY, Clock, raise_nofile
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

_clock = Clock()
_tx_ids = itertools.count(1)
_ACCEPTED = {"status": "Accepted"}


def answer(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """The CALLRESULT payload for a 1.6 CALL from a charger, or None for an action this CSMS does not know."""
    if action == "Heartbeat":
        return {"currentTime": _clock.now()}
    if action in ("StatusNotification", "MeterValues", "DiagnosticsStatusNotification",
                  "FirmwareStatusNotification"):
        return {}
    if action == "Authorize":
        return {"idTagInfo": _ACCEPTED}
    if action == "StartTransaction":
        return {"transactionId": next(_tx_ids), "idTagInfo": _ACCEPTED}
    if action == "StopTransaction":
        return {"idTagInfo": _ACCEPTED} if payload.get("idTag") else {}
    if action == "BootNotification":
        return {"status": "Accepted", "currentTime": _clock.now(), "interval": 300}
    if action == "DataTransfer":
        return {"status": "Accepted"}
    return None


def reply_text(raw: str | bytes) -> str | None:
    """The frame to send back for one received frame (None: nothing to send, e.g. a CALLRESULT)."""
    try:
        msg = json.loads(raw)
        kind, msg_id = msg[0], msg[1]
    except (ValueError, TypeError, IndexError, KeyError):
        return json.dumps([4, "-1", "FormationViolation", "unreadable frame", {}])
    if kind != 2:
        return None
    try:
        result = answer(msg[2], msg[3])
    except (TypeError, AttributeError, IndexError):
        return json.dumps([4, msg_id, "FormationViolation", "bad CALL", {}], separators=(",", ":"))
    if result is None:
        return json.dumps([4, msg_id, "NotImplemented", f"{msg[2]} is not supported", {}], separators=(",", ":"))
    return json.dumps([3, msg_id, result], separators=(",", ":"))


def make_handler(delay_s: float) -> Callable[[ServerConnection], Awaitable[None]]:
    async def handler(ws: ServerConnection) -> None:
        try:
            async for raw in ws:
                text = reply_text(raw)
                if text is not None:
                    if delay_s:
                        await asyncio.sleep(delay_s)
                    await ws.send(text)
        except ConnectionClosed:
            pass

    return handler


async def main(port: int, deflate: bool, delay_ms: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(make_handler(delay_ms / 1000), "127.0.0.1", port, subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                     compression="deflate" if deflate else None, ping_interval=None, max_size=2**20,
                     backlog=4096) as server:
        print(f"{READY}{server.sockets[0].getsockname()[1]}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    p.add_argument("--deflate", action="store_true", help="accept permessage-deflate (off: no compression)")
    p.add_argument("--delay-ms", type=float, default=0.0, help="wait this long before each answer (a WAN round trip)")
    args = p.parse_args()
    raise_nofile()
    asyncio.run(main(args.port, args.deflate, args.delay_ms))
