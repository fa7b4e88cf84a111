"""Queues of chargers that are away, replayed upstream on their behalf (`upstream.replay_without_charger`).

A charger that left while upstream was away leaves messages in its queue that the cloud has not seen. Every
few seconds the daemon calls `start_due()`: for each such charger that is not connected (nor connecting), a
headless session (`ChargerSession.replay_only`) opens an upstream link in the charger's name, replays its
Boot, statuses and queue, and closes. One that fails waits out its own backoff. The charger coming back
stops its replay first (`stop`), so that the cloud never sees two links for one charger.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from edge.backoff import Backoff
from edge.controller.wire import VERSION_SUBPROTOCOL
from edge.store import reads

log = logging.getLogger(__name__)


class QueueReplays:
    def __init__(self, server: Any, headless_session: Callable[[str], Any]):
        self.server = server  # edge.ocpp.server.ChargerServer
        self.headless_session = headless_session
        self.running: dict[str, Any] = {}  # charger id → its headless ChargerSession
        self._retry: dict[str, tuple[Backoff, float]] = {}  # charger id → (its backoff, not before)

    def start_due(self) -> None:
        """Start replaying the queues of chargers that are away, unless one is waiting out its backoff."""
        server = self.server
        now = asyncio.get_running_loop().time()
        for charger_id, version in reads.queued_chargers(server.site.store.db.conn):
            if charger_id in server.sessions or charger_id in server.arriving or charger_id in self.running:
                continue
            if self._retry.get(charger_id, (None, 0.0))[1] > now:
                continue
            session = self.headless_session(charger_id)
            session.version = version if version in VERSION_SUBPROTOCOL else "1.6"
            self.running[charger_id] = session
            session.task = asyncio.create_task(self._run(session))

    async def _run(self, session: Any) -> None:
        charger_id, site = session.charger_id, self.server.site
        try:
            done = await session.replay_only()
        except Exception:
            log.exception("replaying the queue of %s failed", charger_id)
            done = False
        finally:
            if self.running.get(charger_id) is session:
                del self.running[charger_id]
        if done:
            self._retry.pop(charger_id, None)
            site.metrics.counts["sitekeeper_replays_without_charger_total"] += 1
            log.info("queue of %s replayed upstream without the charger", charger_id)
            return
        ucfg = site.cfg.upstream
        backoff = self._retry.get(charger_id, (Backoff(ucfg.reconnect_min, ucfg.reconnect_max), 0.0))[0]
        self._retry[charger_id] = (backoff, asyncio.get_running_loop().time() + backoff.next())

    async def stop(self, charger_id: str) -> None:
        """End the replay for `charger_id`, if one runs, and wait until its upstream link is closed."""
        session = self.running.pop(charger_id, None)
        if session is not None and session.task is not None:
            session.task.cancel()
            await asyncio.wait([session.task])

    async def stop_all(self) -> None:
        for charger_id in list(self.running):
            await self.stop(charger_id)
