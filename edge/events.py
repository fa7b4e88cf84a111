"""The edge's live event stream (taps, decisions), for the kiosk and anyone on localhost.

An in-process publish/subscribe: each subscriber gets its own bounded queue (a slow reader loses its oldest
events, never slows the edge). `/api/events` serves it as Server-Sent Events.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator

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

    async def stream(self, keepalive: float = 15.0) -> AsyncIterator[str]:
        """Server-Sent Events text: one `data:` line per event, a comment every `keepalive` seconds."""
        q: asyncio.Queue = asyncio.Queue(self.depth)
        self._subscribers.add(q)
        try:
            yield ": connected\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(q.get(), keepalive)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                yield f"id: {event['id']}\nevent: {event.get('type', 'message')}\ndata: {json.dumps(event)}\n\n"
        finally:
            self._subscribers.discard(q)
