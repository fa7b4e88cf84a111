"""The edge's live event stream (taps, decisions), for the kiosk and anyone on localhost.

An in-process publish/subscribe: each subscriber gets its own bounded queue (a slow reader loses its oldest
events, never slows the edge). `/api/events` serves it as Server-Sent Events. Publishers and subscribers may
be on different loops (the chargers' and the web app's): an event reaches each queue on the queue's own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator

from edge.clock import now_iso


class EventBus:
    def __init__(self, depth: int = 100):
        self.depth = depth
        self._subscribers: dict[asyncio.Queue, asyncio.AbstractEventLoop] = {}
        self._ids = itertools.count(1)

    def publish(self, event: dict) -> dict:
        event = {"id": next(self._ids), "ts": now_iso(), **event}
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for q, loop in list(self._subscribers.items()):
            if loop is here:
                _put(q, event)
            else:
                with contextlib.suppress(RuntimeError):  # that loop is closed: its reader is gone
                    loop.call_soon_threadsafe(_put, q, event)
        return event

    async def stream(self, keepalive: float = 15.0) -> AsyncIterator[str]:
        """Server-Sent Events text: one `data:` line per event, a comment every `keepalive` seconds."""
        q: asyncio.Queue = asyncio.Queue(self.depth)
        self._subscribers[q] = asyncio.get_running_loop()
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
            self._subscribers.pop(q, None)


def _put(q: asyncio.Queue, event: dict) -> None:
    """Into a subscriber's queue, its oldest event dropped when it is full."""
    if q.full():
        q.get_nowait()
    q.put_nowait(event)
