"""The transactions one charger has in play, as its local controller keeps them (`ChargerLink.tx`).

All per-transaction state lives here, declared in one place: the 1.6 id map between the edge's transaction
ids and upstream's (and rewriting frames with it), the 2.0.1 transactions the store has, the sessions on a
hold whose cost is watched, and those the edge has asked the charger to stop. Plain data, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge.controller.wire import Call, call_text


@dataclass
class Transactions:
    version: str
    # 1.6 transactions still in play: open, or stopped but with frames still to replay, edge id → upstream id
    # (None: not yet; 0: upstream refused). An entry goes once upstream has its Stop, so that an id a
    # restarted upstream hands out again maps to the live one.
    id_map: dict[int, int | None] = field(default_factory=dict)
    stopped: set[int] = field(default_factory=set)  # 1.6: of those, the ones whose Stop the edge has seen
    open_keys: set[str] = field(default_factory=set)  # 2.0.1 transactions the store already has
    billed: set[str] = field(default_factory=set)  # sessions on a hold (their running cost is watched)
    stop_requested: set[str] = field(default_factory=set)  # the edge asked the charger to stop these

    def forget(self, local: Any) -> None:
        """Upstream has (or will never have) the Stop of `local`: drop its mapping."""
        self.id_map.pop(local, None)
        self.stopped.discard(local)

    def local_of(self, upstream_id: Any) -> int | None:
        """The edge's id for upstream's: the newest open transaction with it, else the newest at all."""
        if not isinstance(upstream_id, int) or upstream_id == 0:
            return None
        matches = sorted((local for local, up in self.id_map.items() if up == upstream_id), reverse=True)
        open_ones = [local for local in matches if local not in self.stopped]
        return (open_ones or matches or [None])[0]

    def to_upstream_text(self, call: Call) -> str:
        """The text to send upstream for a charger's CALL: its own, or with the edge's transaction id
        replaced by upstream's (0 too, if upstream refused the start with 0: the cloud still gets the frames)."""
        if self.version != "1.6" or call.action not in ("MeterValues", "StopTransaction"):
            return call.text
        local = call.payload.get("transactionId")
        if local not in self.id_map:
            return call.text  # not a transaction the edge numbered: pass it on as it is
        upstream_id = self.id_map[local]
        if upstream_id is None or upstream_id == local:
            return call.text  # start not replayed yet (cannot happen in order), or upstream's own id
        return call_text(call.msg_id, call.action, {**call.payload, "transactionId": upstream_id})

    def from_upstream_text(self, call: Call) -> str:
        """The text to give the charger for upstream's CALL: 1.6 ids that name a transaction, the edge's."""
        p = call.payload
        if self.version != "1.6":
            return call.text
        if call.action == "RemoteStopTransaction":
            local = self.local_of(p.get("transactionId"))
            if local is not None and local != p.get("transactionId"):
                return call_text(call.msg_id, call.action, {**p, "transactionId": local})
        elif call.action == "SetChargingProfile":
            profile = p.get("csChargingProfiles") or {}
            local = self.local_of(profile.get("transactionId"))
            if local is not None and local != profile.get("transactionId"):
                return call_text(call.msg_id, call.action,
                                 {**p, "csChargingProfiles": {**profile, "transactionId": local}})
        return call.text
