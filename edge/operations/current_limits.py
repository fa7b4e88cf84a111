"""Smart charging basics: the current the site's supply (`site.max_current_a`) and each charger's
(`max_current_a` under `[ocpp.chargers."<id>"]`) give, shared among the sessions running, and never more than
an EV said it can take (2.0.1 NotifyEVChargingNeeds, ISO 15118; K15).

Each running session gets a TxProfile (`intents.session_limit`) with its share, as soon as it starts, again
whenever the shares move (a session starts or ends, an EV says what it needs: its charger then expects a
profile, K15/K16), and in both modes: the supply is a physical limit, whoever the CSMS is. A share is equal
for every session under a limit, in amps per phase rounded down to 0.1 A; when the equal share would fall
below the 6 A an EV charges on, the sessions that started first get a share of at least 6 A and the later
ones 0 A (they wait) until one ends. The daemon runs `CurrentLimits.run`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from itertools import groupby
from typing import Any

from edge.config import MIN_CURRENT_A, Config
from edge.operations import intents
from edge.store import reads

log = logging.getLogger(__name__)


def enabled(cfg: Config) -> bool:
    """A limit is set (then an EV's charging needs are Accepted and sessions get profiles)."""
    return cfg.site.max_current_a > 0 or any(c.max_current_a > 0 for c in cfg.ocpp.chargers.values())


def _share_out(out: dict[int, float], sessions: list[dict], total: float) -> None:
    if total <= 0 or not sessions:
        return
    fit = min(len(sessions), int(total // MIN_CURRENT_A))
    each = math.floor(total / fit * 10) / 10 if fit else 0.0
    for i, s in enumerate(sessions):
        amps = each if i < fit else 0.0
        out[s["id"]] = min(out.get(s["id"], amps), amps)


def shares(sessions: list[dict], site_max: float, charger_max: Mapping[str, float]) -> dict[int, float]:
    """Session id → its limit in amps, for the running `sessions` (oldest first; `reads.open_for_limits`)."""
    out: dict[int, float] = {}
    _share_out(out, sessions, site_max)
    for charger, group in groupby(sorted(sessions, key=lambda s: (s["charger_id"], s["id"])),
                                  key=lambda s: s["charger_id"]):
        _share_out(out, list(group), charger_max.get(charger, 0.0))
    for s in sessions:
        if s.get("ev_max_a"):
            out[s["id"]] = min(out.get(s["id"], s["ev_max_a"]), math.floor(s["ev_max_a"] * 10) / 10)
    return out


class CurrentLimits:
    """Keeps every running session's charging profile at its share. `server.sessions`: the connected chargers
    (each with `call(action, payload, timeout)`, `version` and its link)."""

    def __init__(self, cfg: Config, store: Any, server: Any):
        self.cfg = cfg
        self.store = store
        self.server = server
        self.sent: dict[int, tuple[float, str | None]] = {}  # session id → (amps, the EV's needs it saw)

    async def tick(self) -> None:
        if not enabled(self.cfg):
            return
        rows = [r for r in reads.open_for_limits(self.store.db.conn) if r["connector"]]
        want = shares(rows, self.cfg.site.max_current_a,
                      {cid: c.max_current_a for cid, c in self.cfg.ocpp.chargers.items()})
        due = []
        for row in rows:
            amps, session = want.get(row["id"]), self.server.sessions.get(row["charger_id"])
            if amps is None or session is None or session.link is None or not session.link.accepted:
                continue
            if self.sent.get(row["id"]) != (amps, row["ev_said"]):
                due.append(self._send(session, row, amps))
        await asyncio.gather(*due)
        for gone in set(self.sent) - {r["id"] for r in rows}:
            del self.sent[gone]

    async def _send(self, session: Any, row: dict, amps: float) -> None:
        self.sent[row["id"]] = (amps, row["ev_said"])  # told once, whatever comes back (no retry each second)
        action, payload = intents.session_limit(row["ocpp_version"], row["connector"], row["tx_key"], amps)
        try:
            answer = await session.call(action, payload, timeout=15)
            said = answer.get("status")
        except (RuntimeError, TimeoutError, ConnectionError) as e:
            said = str(e)
        log.info("charger %s: session %s's share is %.1f A; its charging profile: %s", row["charger_id"],
                 row["tx_key"], amps, said)

    async def run(self, every: float = 1.0) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("current limits")
            await asyncio.sleep(every)
