"""A bare WebSocket relay: the floor for what any proxy between a charger and its CSMS must cost.

For each charger connection it opens one connection to the target with the same path and the charger's
subprotocols, then forwards every message both ways as it is (no parsing, no logging, no storage). One
asyncio process (uvloop) on the same transport as the edge (`edge.ocpp.transport`, picows), so that the
difference between this and the edge is the edge's own work.

Run on its own (bench/proxy.py starts it for you)::

    .venv/bin/python bench/relay.py --target ws://127.0.0.1:9100 [--port 0]

A charger then connects to ``ws://127.0.0.1:PORT/ocpp/<id>`` and the relay to ``TARGET/ocpp/<id>``. It prints
``ready port=N`` once it listens and runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from http import HTTPStatus

import uvloop
from benchutil import READY, raise_nofile

from edge.ocpp.transport import Accept, Link, Refusal, Request, connect, serve


def make_prepare(target: str):  # noqa: ANN201
    async def prepare(request: Request) -> Accept | Refusal:
        down = Link()
        up = Link(down.send, down.close)
        offered = [p.strip() for p in request.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
        try:
            chosen = await connect(target.rstrip("/") + request.path, up, subprotocols=offered, ping_interval=0)
        except Exception:  # noqa: BLE001 - any failure: refuse this charger
            return Refusal(HTTPStatus.BAD_GATEWAY, "upstream unreachable")
        down.on_message = up.send
        down.on_closed = up.close
        return Accept(down, chosen, abandon=up.close)

    return prepare


async def main(target: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await serve(make_prepare(target), "127.0.0.1", port, ping_interval=0)
    print(f"{READY}{server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", required=True, help="the CSMS base URL, e.g. ws://127.0.0.1:9100")
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    args = p.parse_args()
    raise_nofile()
    uvloop.run(main(args.target, args.port))
