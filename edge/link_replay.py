"""The local controller's part for upstream's return: replaying Boot, Status and the durable queue in
order, and rewriting OCPP 1.6 transaction ids between the edge's and upstream's. A mixin of `ChargerLink`
(it shares the link's state); kept apart so that the protocol core reads on its own.
"""

from __future__ import annotations

from typing import Any

from edge.actions import LIVE, REPLAYING, Action, Persist, QueueItem, SendUpstream, UpPending
from edge.wire import Call, CallError, CallResult, call_text, parse


class ReplayPart:
    def _replay_next(self) -> list[Action]:
        if self.state != REPLAYING or self.up_pending:
            return []
        while True:
            key = self._next_replay_key()
            if key is not None:
                frame = parse(self.replay[key][0])
                assert isinstance(frame, Call)
                return self._send_replay(frame, key, frame.text)
            if not self.queue:
                self.state = LIVE
                return []
            item = self.queue[0]
            frame = parse(item.frame)
            assert isinstance(frame, Call)
            text = self._to_upstream_text(frame)
            if text is None:  # upstream refused this transaction: it must not see the rest of it
                return self._dequeue(item) + self._replay_next()
            return self._send_replay(frame, item, text)

    def _next_replay_key(self) -> str | None:
        if self.replay.get("boot", ("", False))[1]:
            return "boot"
        for key, (_, pending) in sorted(self.replay.items()):
            if pending and key.startswith("status:"):
                return key
        return None

    def _send_replay(self, frame: Call, item: Any, text: str) -> list[Action]:
        self.up_pending[frame.msg_id] = UpPending("replay", frame, self.clock() + self.settings.call_timeout,
                                                   item=item, sent_text=text)
        return [SendUpstream(text)]

    def _replay_reply(self, pending: UpPending, frame: CallResult | CallError) -> list[Action]:
        item = pending.item
        if isinstance(item, str):  # a boot or status frame
            text, _ = self.replay[item]
            if text == pending.call.text:
                self.replay[item] = (text, False)
            return [Persist([("replay_done", {"charger_id": self.charger_id, "key": item,
                                              "frame": pending.call.text})])]
        ops: list[tuple[str, dict]] = []
        if self.version == "1.6" and item.action == "StartTransaction" and item.tx_id is not None:
            p = frame.payload if isinstance(frame, CallResult) else {}
            upstream_id = p.get("transactionId")
            status = (p.get("idTagInfo") or {}).get("status")
            upstream_id = upstream_id if isinstance(upstream_id, int) else 0
            self.tx_map[item.tx_id] = upstream_id
            ops.append(("tx_map", {"id": item.tx_id, "upstream_tx_id": upstream_id, "upstream_status": status}))
        return self._dequeue(item, ops)

    def _dequeue(self, item: QueueItem, ops: list | None = None) -> list[Action]:
        if self.queue and self.queue[0] is item:
            self.queue.popleft()
        if item.action == "StopTransaction" and item.tx_id is not None:
            self._forget_tx(item.tx_id)
        self.queued_tx[self._item_tx_key(item)] -= 1
        ops = (ops or []) + [("dequeue", {"charger_id": self.charger_id, "seq": item.seq})]
        return [Persist(ops)]

    # -- 1.6 transaction id rewriting --------------------------------------------------------------------
    def _to_upstream_text(self, call: Call) -> str | None:
        """The text to send upstream for a charger's CALL: its own, or with the edge's transaction id
        replaced by upstream's; None if upstream refused that transaction (id 0)."""
        if self.version != "1.6" or call.action not in ("MeterValues", "StopTransaction"):
            return call.text
        local = call.payload.get("transactionId")
        if local not in self.tx_map:
            return call.text  # not a transaction the edge numbered: pass it on as it is
        upstream_id = self.tx_map[local]
        if upstream_id is None:
            return call.text  # start not yet replayed (cannot happen in order; keep the text)
        if upstream_id == 0:
            return None
        if upstream_id == local:
            return call.text  # the edge gave the charger upstream's own id
        return call_text(call.msg_id, call.action, {**call.payload, "transactionId": upstream_id})

    def _from_upstream_text(self, call: Call) -> str:
        p = call.payload
        if call.action == "RemoteStopTransaction":
            local = self._u2l(p.get("transactionId"))
            if local is not None and local != p.get("transactionId"):
                return call_text(call.msg_id, call.action, {**p, "transactionId": local})
        elif call.action == "SetChargingProfile":
            profile = p.get("csChargingProfiles") or {}
            local = self._u2l(profile.get("transactionId"))
            if local is not None and local != profile.get("transactionId"):
                return call_text(call.msg_id, call.action,
                                 {**p, "csChargingProfiles": {**profile, "transactionId": local}})
        return call.text


    def _u2l(self, upstream_id: Any) -> int | None:
        """The edge's id for upstream's: the newest open transaction with it, else the newest at all."""
        if not isinstance(upstream_id, int) or upstream_id == 0:
            return None
        matches = sorted((local for local, up in self.tx_map.items() if up == upstream_id), reverse=True)
        open_ones = [local for local in matches if local not in self.stopped_tx]
        return (open_ones or matches or [None])[0]

    def _forget_tx(self, local: Any) -> None:
        """Upstream has (or will never have) the Stop of `local`: drop its mapping."""
        self.tx_map.pop(local, None)
        self.stopped_tx.discard(local)
