"""The edge's live event stream (taps, decisions), for the kiosk and anyone on localhost.

An in-process publish/subscribe: each subscriber gets its own bounded queue (a slow reader loses its oldest
events, never slows the edge). `/api/events` serves it as Server-Sent Events. The web process gets the daemon's
events through `edge.web.bridge` and publishes them again on a bus of its own (ids and times kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Iterator

from edge.clock import now_iso


class EventBus:
    def __init__(self, depth: int = 100):
        self.depth = depth
        self._subscribers: set[asyncio.Queue] = set()
        self._ids = itertools.count(1)

    def publish(self, event: dict) -> dict:
        event = {"id": next(self._ids), "ts": now_iso(), **event}
        for q in list(self._subscribers):
            if q.full():
                q.get_nowait()
            q.put_nowait(event)
        return event

    @contextlib.contextmanager
    def listening(self) -> Iterator[asyncio.Queue]:
        """A queue of its own that gets every event published while the block runs."""
        q: asyncio.Queue = asyncio.Queue(self.depth)
        self._subscribers.add(q)
        try:
            yield q
        finally:
            self._subscribers.discard(q)

    async def stream(self, keepalive: float = 15.0) -> AsyncIterator[str]:
        """Server-Sent Events text: one `data:` line per event, a comment every `keepalive` seconds."""
        with self.listening() as q:
            yield ": connected\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(q.get(), keepalive)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                yield f"id: {event['id']}\nevent: {event.get('type', 'message')}\ndata: {json.dumps(event)}\n\n"

