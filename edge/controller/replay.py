"""The local controller's part for upstream's return: replaying Boot, Status and the durable queue in
order, answers that come late, and rewriting OCPP 1.6 transaction ids between the edge's and upstream's. A
mixin of `ChargerLink` (it shares the link's state); kept apart so that the protocol core reads on its own.

A replayed 1.6 start that upstream refuses (transactionId 0, or a status other than Accepted) is never
dropped in silence: the session's meter values and stop still go up, with the id upstream gave, so that the
cloud has the energy and can reconcile; a `Notice` logs and counts it, and the session keeps upstream's
status for the owner (`sitekeeper sessions list --upstream-refused`). One refusal is retried: a start refused
with ConcurrentTx right after the same card's replayed stop (the cloud had not closed that session yet) goes
again once, after `RETRY_PAUSE`, with a new message id.
"""

from __future__ import annotations

import uuid
from typing import Any

from edge.controller import observe
from edge.controller.actions import (
    LIVE,
    REPLAYING,
    Action,
    Notice,
    Persist,
    QueueItem,
    SendUpstream,
    Sent,
    UpPending,
)
from edge.controller.records import Dequeue, ReplayDone, ReplaySet, StoreOp, TxMap, TxUpstreamStatus
from edge.controller.wire import Call, CallError, CallResult, call_text, parse

RETRY_PAUSE = 2.0  # seconds before a start refused with ConcurrentTx right after its card's stop goes again
RETRY_WINDOW = 10.0  # "right after": the stop's answer came at most this long before the refusal


class ReplayPart:
    def _replay_next(self) -> list[Action]:
        if self.state != REPLAYING or self.up_pending:
            return []
        retry = False
        if self.retry_at is not None:
            if self.retry_at > self.clock():
                return []  # `tick` comes back when it is time
            self.retry_at, retry = None, True
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
        if retry:  # a new CALL: it needs an id of its own on this connection
            frame = parse(call_text(str(uuid.uuid4()), frame.action, frame.payload))
            assert isinstance(frame, Call)
        return self._send_replay(frame, item, self._to_upstream_text(frame))

    def _next_replay_key(self) -> str | None:
        if self.replay.get("boot", ("", False))[1]:
            return "boot"
        for key, (_, pending) in sorted(self.replay.items()):
            if pending and key.startswith("status:"):
                return key
        return None

    def _send_replay(self, frame: Call, item: Any, text: str) -> list[Action]:
        now = self.clock()
        self.up_pending[frame.msg_id] = UpPending(Sent.REPLAY, frame, now + self.settings.call_timeout,
                                                   now + self.settings.stall_timeout, item=item, sent_text=text)
        return [SendUpstream(text)]

    def _replay_reply(self, pending: UpPending, frame: CallResult | CallError) -> list[Action]:
        item = pending.item
        if isinstance(item, str):  # a boot or status frame
            text, _ = self.replay[item]
            if text == pending.call.text:
                self.replay[item] = (text, False)
            return [Persist([ReplayDone(self.charger_id, item, pending.call.text)])]
        ops: list[StoreOp] = []
        notices: list[Action] = []
        p = frame.payload if isinstance(frame, CallResult) else {}
        if self.version == "1.6" and item.action == "StartTransaction" and item.tx_id is not None:
            upstream_id = p.get("transactionId")
            status = (p.get("idTagInfo") or {}).get("status")
            upstream_id = upstream_id if isinstance(upstream_id, int) else 0
            if status == "ConcurrentTx" and self._may_retry(item, pending.call):
                self._retried.add(item.seq)
                self.retry_at = self.clock() + RETRY_PAUSE
                return [Notice("replay_retried", (
                    f"upstream refused replayed StartTransaction {item.msg_id} with ConcurrentTx right after"
                    f" that card's stop; sending it once more in {RETRY_PAUSE:g} s"))]
            self.tx_map[item.tx_id] = upstream_id
            ops.append(TxMap(item.tx_id, upstream_id, status))
            if upstream_id <= 0 or status != "Accepted":
                notices.append(self._refused(f"transaction {item.tx_id}", f"transactionId {upstream_id}",
                                             f"status {status}"))
        elif item.action == "TransactionEvent" and pending.call.payload.get("eventType") == "Started":
            status = (p.get("idTokenInfo") or {}).get("status")
            tx_key = (pending.call.payload.get("transactionInfo") or {}).get("transactionId")
            if status is not None:
                ops.append(TxUpstreamStatus(self.charger_id, tx_key, status))
            if isinstance(frame, CallError) or status not in (None, "Accepted"):
                notices.append(self._refused(f"transaction {tx_key}", f"status {status or frame.code}"))
        self._last_replayed = (item.action, pending.call.payload.get("idTag"), self.clock())
        return notices + self._dequeue(item, ops)

    def _refused(self, what: str, *why: str) -> Notice:
        return Notice("upstream_refused_replay", (
            f"upstream refused replayed {what} ({', '.join(why)}): its later frames still go up,"
            " with upstream's id, for the cloud to reconcile"))

    def _may_retry(self, item: QueueItem, call: Call) -> bool:
        """A start refused with ConcurrentTx just after the same card's stop was replayed (the cloud had not
        closed that session yet), and not retried before."""
        last = self._last_replayed
        return (item.seq not in self._retried and last is not None and last[0] == "StopTransaction"
                and last[1] in (None, call.payload.get("idTag")) and self.clock() - last[2] <= RETRY_WINDOW)

    def _dequeue(self, item: QueueItem, ops: list[StoreOp] | None = None) -> list[Action]:
        if self.queue and self.queue[0] is item:
            self.queue.popleft()
        if item.action == "StopTransaction" and item.tx_id is not None:
            self._forget_tx(item.tx_id)
        self.queued_tx[self._item_tx_key(item)] -= 1
        ops = (ops or []) + [Dequeue(self.charger_id, item.seq)]
        return [Persist(ops)]

    # -- late answers --------------------------------------------------------------------------------------
    def _went_late(self, p: UpPending) -> list[Action]:
        """A forwarded CALL upstream has not answered in time: answer the charger as if upstream were away, and
        keep waiting for upstream's answer (`_late_reply`); what the charger sends meanwhile queues behind."""
        p.kind = Sent.LATE
        self.state = REPLAYING
        return self._answer_sent(p)

    def _answer_sent(self, p: UpPending) -> list[Action]:
        """Answer locally a CALL that went upstream and got no answer (late, or the link went down), as if it
        had come now: a card the site knows goes through billing, unless it was decided already."""
        if p.decided is None and (asked := self._ask_decision(p.call, sent=True)):
            return asked
        return self._answer_locally(p.call, offline=True, decided=p.decided, sent=True)

    def _late_reply(self, pending: UpPending, frame: CallResult | CallError) -> list[Action]:
        """Upstream's answer to a CALL that went late: the charger has its answer; upstream now has the frame,
        so its queued copy goes (a 1.6 start's id is mapped) as for a replayed one."""
        actions = self._learn(pending.call, frame)
        head = self.queue[0] if self.queue else None
        if head is None or head.msg_id != pending.call.msg_id or head.action != pending.call.action:
            return actions  # nothing was queued for it (a Heartbeat, an Authorize)
        pending.item = head
        return actions + self._replay_reply(pending, frame)

    def _remember_for_replay(self, call: Call) -> list[StoreOp]:
        """Keep a Boot or Status for upstream's return (the latest of each kind goes up before the queue)."""
        cid = self.charger_id
        if call.action == "BootNotification":
            key = "boot"
            # A new boot makes earlier statuses stale: the charger will send fresh ones.
            for k in [k for k in self.replay if k.startswith("status:")]:
                self.replay[k] = (self.replay[k][0], False)
        else:
            evse, connector = observe.status_key(call.payload)
            key = f"status:{evse}:{connector}"
        self.replay[key] = (call.text, True)
        return [ReplaySet(cid, key, call.text)]

    # -- 1.6 transaction id rewriting --------------------------------------------------------------------
    def _to_upstream_text(self, call: Call) -> str:
        """The text to send upstream for a charger's CALL: its own, or with the edge's transaction id
        replaced by upstream's (0 too, if upstream refused the start with 0: the cloud still gets the frames)."""
        if self.version != "1.6" or call.action not in ("MeterValues", "StopTransaction"):
            return call.text
        local = call.payload.get("transactionId")
        if local not in self.tx_map:
            return call.text  # not a transaction the edge numbered: pass it on as it is
        upstream_id = self.tx_map[local]
        if upstream_id is None:
            return call.text  # start not yet replayed (cannot happen in order; keep the text)
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
