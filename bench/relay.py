"""A bare WebSocket relay: the floor for what any proxy between a charger and its CSMS must cost.

For each charger connection it opens one connection to the target with the same path and subprotocol, then
forwards every frame both ways as it is (no parsing, no logging, no storage). One asyncio process on
`websockets`, no compression.

Run on its own (bench/proxy.py starts it for you)::

    .venv/bin/python bench/relay.py --target ws://127.0.0.1:9100 [--port 0]

A charger then connects to ``ws://127.0.0.1:PORT/ocpp/<id>`` and the relay to ``TARGET/ocpp/<id>``. It prints
``ready port=N`` once it listens and runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable

from benchutil import READY, raise_nofile
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


async def _pump(src: ServerConnection | ClientConnection, dst: ServerConnection | ClientConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in src:
            await dst.send(message)


def make_handler(target: str) -> Callable[[ServerConnection], Awaitable[None]]:
    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        subprotocols = [ws.subprotocol] if ws.subprotocol else None
        try:
            up = await connect(target.rstrip("/") + ws.request.path, subprotocols=subprotocols,  # type: ignore[arg-type]
                               compression=None, ping_interval=None, max_size=2**20, proxy=None)
        except (OSError, TimeoutError, Exception):  # noqa: B014 - any failure: refuse this charger
            await ws.close(1011, "upstream unreachable")
            return
        async with up:
            tasks = [asyncio.create_task(_pump(ws, up)), asyncio.create_task(_pump(up, ws))]
            _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await ws.close()

    return handler


async def main(target: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(make_handler(target), "127.0.0.1", port,
                     subprotocols=["ocpp1.6", "ocpp2.0.1"],  # type: ignore[list-item]
                     compression=None, ping_interval=None, max_size=2**20, backlog=4096) as server:
        print(f"{READY}{server.sockets[0].getsockname()[1]}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", required=True, help="the CSMS base URL, e.g. ws://127.0.0.1:9100")
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    args = p.parse_args()
    raise_nofile()
    asyncio.run(main(args.target, args.port))
