"""The local controller's part for upstream's return: replaying Boot, Status and the durable queue in
order, and answers that come late. Its state is the link's `ReplayQueue` (below); the replay steps are a
part of `ChargerLink` (a mixin: they move the link's upstream state and its calls in flight), kept apart so
that the protocol core reads on its own. The 1.6 id rewriting is `edge.controller.transactions`.

A replayed 1.6 start that upstream refuses (transactionId 0, or a status other than Accepted) is never
dropped in silence: the session's meter values and stop still go up, with the id upstream gave, so that the
cloud has the energy and can reconcile; a `Notice` logs and counts it, and the session keeps upstream's
status for the owner (`sitekeeper sessions list --upstream-refused`). One refusal is retried: a start refused
with ConcurrentTx right after the same card's replayed stop (the cloud had not closed that session yet) goes
again once, after `RETRY_PAUSE`, with a new message id.
"""

from __future__ import annotations

import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
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
from edge.controller.wire import Call, CallError, CallResult, FrameError, call_text, parse

RETRY_PAUSE = 2.0  # seconds before a start refused with ConcurrentTx right after its card's stop goes again
RETRY_WINDOW = 10.0  # "right after": the stop's answer came at most this long before the refusal


@dataclass
class ReplayQueue:
    """What one charger has for upstream's return, declared in one place (`ChargerLink.replay`): the durable
    queue's copy in order, the latest Boot and Status per connector (`latest`: key → (frame, still to send)),
    how many queued frames each transaction has, and the bookkeeping of the one retry. Plain data, no I/O."""

    items: deque[QueueItem] = field(default_factory=deque)
    latest: dict[str, tuple[str, bool]] = field(default_factory=dict)
    next_seq: int = 1
    queued: Counter[str] = field(default_factory=Counter)  # transaction key → frames of it in `items`
    retry_at: float | None = None  # when to send the head again (a start refused with ConcurrentTx)
    retried: set[int] = field(default_factory=set)  # seqs already retried once
    last_replayed: tuple[str, str | None, float] | None = None  # (action, idTag, when)

    @classmethod
    def load(cls, items: list[QueueItem], latest: dict[str, tuple[str, bool]]) -> ReplayQueue:
        q = cls(deque(sorted(items, key=lambda i: i.seq)), dict(latest))
        q.next_seq = (q.items[-1].seq + 1) if q.items else 1
        q.queued = Counter(tx_key_of(i) for i in q.items)
        return q

    def push(self, msg_id: str, action: str, frame: str, tx_id: int | None) -> QueueItem:
        item = QueueItem(self.next_seq, msg_id, action, frame, tx_id)
        self.next_seq += 1
        self.items.append(item)
        self.queued[tx_key_of(item)] += 1
        return item

    def pop(self, item: QueueItem) -> None:
        """`item` is upstream's now."""
        if self.items and self.items[0] is item:
            self.items.popleft()
        self.queued[tx_key_of(item)] -= 1

    def holds(self, tx_key: str | None) -> bool:
        """Frames still queued (of transaction `tx_key`, or at all)."""
        return bool(self.items) if tx_key is None else self.queued.get(tx_key, 0) > 0

    def next_latest(self) -> str | None:
        """The Boot, then each connector's Status, still to send (before the queue)."""
        if self.latest.get("boot", ("", False))[1]:
            return "boot"
        for key, (_, pending) in sorted(self.latest.items()):
            if pending and key.startswith("status:"):
                return key
        return None

    def remember(self, call: Call) -> str:
        """Keep a Boot or Status (the latest of each kind goes up before the queue); its key."""
        if call.action == "BootNotification":
            key = "boot"
            # A new boot makes earlier statuses stale: the charger will send fresh ones.
            for k in [k for k in self.latest if k.startswith("status:")]:
                self.latest[k] = (self.latest[k][0], False)
        else:
            evse, connector = observe.status_key(call.payload)
            key = f"status:{evse}:{connector}"
        self.latest[key] = (call.text, True)
        return key

    def sent_latest(self, key: str, text: str) -> None:
        """Upstream has the Boot or Status `text` (still the latest of its key, unless a newer one came)."""
        if self.latest[key][0] == text:
            self.latest[key] = (text, False)

    def may_retry(self, item: QueueItem, call: Call, now: float) -> bool:
        """A start refused with ConcurrentTx just after the same card's stop was replayed (the cloud had not
        closed that session yet), and not retried before."""
        last = self.last_replayed
        return (item.seq not in self.retried and last is not None and last[0] == "StopTransaction"
                and last[1] in (None, call.payload.get("idTag")) and now - last[2] <= RETRY_WINDOW)


def tx_key_of(item: QueueItem) -> str:
    """The transaction a queued frame belongs to ("" for none)."""
    if item.tx_id is not None:
        return str(item.tx_id)
    if item.action == "TransactionEvent":
        try:
            return parse(item.frame).payload["transactionInfo"]["transactionId"]  # type: ignore[union-attr]
        except (FrameError, KeyError, TypeError):
            return ""
    return ""


class ReplayPart:
    def _replay_next(self) -> list[Action]:
        if self.state != REPLAYING or self.up_pending:
            return []
        retry = False
        rq = self.replay
        if rq.retry_at is not None:
            if rq.retry_at > self.clock():
                return []  # `tick` comes back when it is time
            rq.retry_at, retry = None, True
        key = rq.next_latest()
        if key is not None:
            frame = parse(rq.latest[key][0])
            assert isinstance(frame, Call)
            return self._send_replay(frame, key, frame.text)
        if not rq.items:
            self.state = LIVE
            return []
        item = rq.items[0]
        frame = parse(item.frame)
        assert isinstance(frame, Call)
        if retry:  # a new CALL: it needs an id of its own on this connection
            frame = parse(call_text(str(uuid.uuid4()), frame.action, frame.payload))
            assert isinstance(frame, Call)
        return self._send_replay(frame, item, self.tx.to_upstream_text(frame))

    def _send_replay(self, frame: Call, item: Any, text: str) -> list[Action]:
        now = self.clock()
        self.up_pending[frame.msg_id] = UpPending(Sent.REPLAY, frame, now + self.settings.call_timeout,
                                                   now + self.settings.stall_timeout, item=item, sent_text=text)
        return [SendUpstream(text)]

    def _replay_reply(self, pending: UpPending, frame: CallResult | CallError) -> list[Action]:
        item = pending.item
        if isinstance(item, str):  # a boot or status frame
            self.replay.sent_latest(item, pending.call.text)
            return [Persist([ReplayDone(self.charger_id, item, pending.call.text)])]
        ops: list[StoreOp] = []
        notices: list[Action] = []
        p = frame.payload if isinstance(frame, CallResult) else {}
        if self.version == "1.6" and item.action == "StartTransaction" and item.tx_id is not None:
            upstream_id = p.get("transactionId")
            status = (p.get("idTagInfo") or {}).get("status")
            upstream_id = upstream_id if isinstance(upstream_id, int) else 0
            if status == "ConcurrentTx" and self.replay.may_retry(item, pending.call, self.clock()):
                self.replay.retried.add(item.seq)
                self.replay.retry_at = self.clock() + RETRY_PAUSE
                return [Notice("replay_retried", (
                    f"upstream refused replayed StartTransaction {item.msg_id} with ConcurrentTx right after"
                    f" that card's stop; sending it once more in {RETRY_PAUSE:g} s"))]
            self.tx.id_map[item.tx_id] = upstream_id
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
        self.replay.last_replayed = (item.action, pending.call.payload.get("idTag"), self.clock())
        return notices + self._dequeue(item, ops)

    def _refused(self, what: str, *why: str) -> Notice:
        return Notice("upstream_refused_replay", (
            f"upstream refused replayed {what} ({', '.join(why)}): its later frames still go up,"
            " with upstream's id, for the cloud to reconcile"))

    def _dequeue(self, item: QueueItem, ops: list[StoreOp] | None = None) -> list[Action]:
        self.replay.pop(item)
        if item.action == "StopTransaction" and item.tx_id is not None:
            self.tx.forget(item.tx_id)
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
        head = self.replay.items[0] if self.replay.items else None
        if head is None or head.msg_id != pending.call.msg_id or head.action != pending.call.action:
            return actions  # nothing was queued for it (a Heartbeat, an Authorize)
        pending.item = head
        return actions + self._replay_reply(pending, frame)

    def _remember_for_replay(self, call: Call) -> list[StoreOp]:
        """Keep a Boot or Status for upstream's return, durably."""
        return [ReplaySet(self.charger_id, self.replay.remember(call), call.text)]
