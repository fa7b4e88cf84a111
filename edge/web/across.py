"""The web app runs on a thread and a loop of its own, so that page work (queries, templates, HTTP parsing)
never holds up the chargers' loop. What the web app asks of the chargers' side crosses over here: a call to a
charger and a tap are run on the chargers' loop, and awaited from the web's.

`SiteView(edge, loop)` is the daemon as the web app sees it: the same attributes, with `chargers`,
`connected()` and `taps` made safe to use from the web's thread. Reads of the store need nothing: each
thread has its own read connection (`Store.db`), and writes are awaited on the caller's own loop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class Across:
    """Runs coroutines on `loop` (the chargers') and awaits them from the calling loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop

    async def run(self, coro: Coroutine) -> Any:
        if asyncio.get_running_loop() is self.loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))


class ChargerView:
    """A connected charger, its calls made on the chargers' loop."""

    def __init__(self, charger: Any, across: Across):
        self._charger, self._across = charger, across
        self.charger_id: str = charger.charger_id
        self.version: str = charger.version

    async def call(self, action: str, payload: dict, timeout: float = 30.0) -> dict:
        return await self._across.run(self._charger.call(action, payload, timeout))

    async def exchange(self, action: str, payload: dict, timeout: float = 30.0) -> tuple[dict | None, dict | None]:
        return await self._across.run(self._charger.exchange(action, payload, timeout))


class ChargersView:
    """The site's chargers (`edge.operations.chargers.Chargers`) seen from the web's thread."""

    def __init__(self, chargers: Any, across: Across):
        self._chargers, self._across = chargers, across

    def connected(self, charger_id: str) -> ChargerView | None:
        charger = self._chargers.connected(charger_id)
        return None if charger is None else ChargerView(charger, self._across)

    def __getattr__(self, name: str) -> Any:  # sessions, upstream_links: read as they are
        return getattr(self._chargers, name)


class TapsView:
    """The tap service seen from the web's thread: a tap is decided on the chargers' loop."""

    def __init__(self, taps: Any, across: Across):
        self._taps, self._across = taps, across

    async def handle(self, tap: Any) -> dict:
        return await self._across.run(self._taps.handle(tap))


class SiteView:
    """The running daemon as the web app sees it from its own thread."""

    def __init__(self, edge: Any, loop: asyncio.AbstractEventLoop):
        across = Across(loop)
        self._edge = edge
        self.chargers = ChargersView(edge.chargers, across)
        self.taps = TapsView(edge.taps, across)

    def connected(self, charger_id: str) -> ChargerView | None:
        return self.chargers.connected(charger_id)

    def __getattr__(self, name: str) -> Any:  # cfg, store, metrics, events, health(), web_port, ...
        return getattr(self._edge, name)
