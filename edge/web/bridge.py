"""The bridge between the daemon and its web process: what the web app needs of the running daemon (is a
charger connected, a call to it, a tap, the health, the metrics, the live events) asked over a Unix socket in
a folder only the daemon's user may enter. Both ends are here, so that the wire is in one place.

Wire: JSON lines. A request is one line `{"op": ..., ...}`; its answer one line `{"ok": true, "result": ...}`
or `{"ok": false, "error": "timeout" | "connection" | "failed", "message": ...}`. A connection carries any
number of requests, one after the other. `{"op": "events"}` is answered with one line per event, for as long
as the connection lasts.

The daemon end (`BridgeServer`) works on the chargers' loop and answers each request with the same functions
the web app called when it ran there; the web end (`Bridge`) asks quick questions with a blocking call (a
fraction of a millisecond on this machine) and the slow ones (a charger's answer, a tap) from its loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from edge.rfid import Tap

log = logging.getLogger(__name__)
LIMIT = 16 * 1024 * 1024  # the longest line either end reads (a charger's answer, the metrics)


def _line(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _result(answer: dict) -> Any:
    """The result of an answer, or its error raised as the daemon's side raised it."""
    if answer.get("ok"):
        return answer.get("result")
    message = answer.get("message") or ""
    if answer.get("error") == "timeout":
        raise TimeoutError(message)
    if answer.get("error") == "connection":
        raise ConnectionError(message)
    raise RuntimeError(f"the daemon could not answer: {message}")


class BridgeServer:
    """The daemon's end: `edge` is the running daemon (`edge.daemon.Edge`); `on_ready(port)` is told when the
    web process listens."""

    def __init__(self, edge: Any, on_ready: Callable[[int], None]):
        self.edge, self.on_ready = edge, on_ready
        self.server: asyncio.AbstractServer | None = None

    async def start(self, path: str) -> None:
        self.server = await asyncio.start_unix_server(self._serve, path, limit=LIMIT)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                request = json.loads(line)
                if request.get("op") == "events":
                    await self._events(writer)
                    return
                try:
                    answer = {"ok": True, "result": await self._do(request)}
                except TimeoutError as e:
                    answer = {"ok": False, "error": "timeout", "message": str(e)}
                except ConnectionError as e:
                    answer = {"ok": False, "error": "connection", "message": str(e) or "the charger went away"}
                except Exception as e:  # a bad request or a fault: said, and the bridge goes on
                    log.exception("web bridge: %s failed", request.get("op"))
                    answer = {"ok": False, "error": "failed", "message": str(e)}
                writer.write(_line(answer))
                await writer.drain()
        except (ConnectionError, ValueError):  # the web process went away, or sent what is not a request
            pass
        except asyncio.CancelledError:  # the edge stops: the handler ends as any other (Python 3.11's stream
            pass                         # server logs a cancelled handler as an error at every shutdown)
        finally:
            writer.close()

    async def _do(self, request: dict) -> Any:
        edge, op = self.edge, request["op"]
        if op == "connected":
            charger = edge.connected(request["charger"])
            return None if charger is None else charger.version
        if op == "exchange":
            charger = edge.chargers.connected(request["charger"])
            if charger is None:
                raise ConnectionError("the charger is not connected")
            return list(await charger.exchange(request["action"], request["payload"], float(request["timeout"])))
        if op == "tap":
            return await edge.taps.handle(Tap(request["reader"], request["uid"], float(request["at"])))
        if op in ("tap_start", "tap_stop"):
            act = edge.taps.start_for if op == "tap_start" else edge.taps.stop_for
            return await act(str(request["tap_ref"]), str(request["charger"]), int(request["connector"]))
        if op == "health":
            return edge.health()
        if op == "metrics":
            return edge.metrics.render()
        if op == "ready":
            self.on_ready(int(request["port"]))
            return None
        raise ValueError(f"unknown request {op!r}")

    async def _events(self, writer: asyncio.StreamWriter) -> None:
        with self.edge.events.listening() as queue:
            while True:
                writer.write(_line(await queue.get()))
                await writer.drain()


class Bridge:
    """The web process's end, on the socket at `path`."""

    def __init__(self, path: str):
        self.path = path
        self._local = threading.local()  # each thread its own connection for `ask`

    def ask(self, op: str, **args: Any) -> Any:
        """A quick question, answered before this returns (the daemon answers it at once, without awaiting)."""
        for attempt in (1, 2):
            stream = getattr(self._local, "stream", None)
            try:
                if stream is None:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    sock.connect(self.path)
                    stream = self._local.stream = sock.makefile("rwb")
                stream.write(_line({"op": op, **args}))
                stream.flush()
                line = stream.readline(LIMIT)
                if not line:
                    raise ConnectionError("the daemon closed the bridge")
                return _result(json.loads(line))
            except OSError:
                self._local.stream = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def call(self, op: str, **args: Any) -> Any:
        """A request whose answer takes a while (a charger's, a tap's), on a connection of its own."""
        reader, writer = await asyncio.open_unix_connection(self.path, limit=LIMIT)
        try:
            writer.write(_line({"op": op, **args}))
            await writer.drain()
            line = await reader.readline()
            if not line:
                raise ConnectionError("the daemon closed the bridge")
            return _result(json.loads(line))
        finally:
            writer.close()

    async def events(self) -> AsyncIterator[dict]:
        """The daemon's live events, as they are published, until the bridge closes."""
        reader, writer = await asyncio.open_unix_connection(self.path, limit=LIMIT)
        try:
            writer.write(_line({"op": "events"}))
            await writer.drain()
            while line := await reader.readline():
                yield json.loads(line)
        finally:
            writer.close()
