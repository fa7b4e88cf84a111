"""The per-charger local controller: OCPP proxy and local CSMS as a plain object fed events (sans-I/O).

`ChargerLink` takes what happened and returns what to do::

    link.from_charger(text)    a frame from the charger
    link.from_upstream(text)   a frame from the upstream CSMS
    link.upstream_up()         the upstream link is open (start replay)
    link.upstream_down()       the upstream link closed
    link.tick(now)             time passed (timeouts)
    link.call(action, payload) the edge itself wants to send a CALL to the charger

    link.answered(ask_id, r)   the result of an `Ask` (a billing decision or running cost)

Each returns a list of actions (`edge.controller.actions`) for the asyncio shell (`edge.ocpp.session`) to carry out in order:
`Persist` (commit these store ops; if `wait`, before doing anything that follows), `SendCharger`,
`SendUpstream`, `CloseCharger`, `ResetUpstream`, `EdgeCallDone`, `Ask`, `Notice` and `Learned`.

Its state is declared in owned parts: `tx` (`edge.controller.transactions.Transactions`: the 1.6 id map, the
sessions on a hold, ...) and `replay` (`edge.controller.replay.ReplayQueue`: the durable queue's copy, the
latest Boot and Status); the link itself keeps only the upstream state and the calls in flight. The steps
for the site's own cards (`edge.controller.site_cards`) and for replay (`edge.controller.replay`) are mixins
of the same object: they drive that state, and live apart so that the protocol core reads on its own.

Upstream state, in proxy mode::

    DOWN ──upstream_up──► REPLAYING ──queue empty──► LIVE
      ▲                        │                       │
      └─────upstream_down──────┴───────────────────────┘

      ▲                        ▲                       │
      │                        └────answer is late─────┘
      └── no answer for stall_timeout (ResetUpstream) ─┘

DOWN and REPLAYING: the edge answers the charger itself and first commits what upstream must see to the
durable queue. REPLAYING sends, one at a time: the Boot the charger made while away, the latest Status per
connector, then the queue in order. LIVE: frames are forwarded with their own text and id. In standalone
mode the edge is the CSMS and the upstream state does not matter.

Late is not lost: a forwarded CALL upstream has not answered within `call_timeout` is answered locally and
queued, but stays outstanding on the same link ("late"); the link goes to REPLAYING, so what the charger sends
next queues behind it in order. When the answer comes it is used as a replay answer (a 1.6 start's id is
mapped, the queued copy dropped). Only a link that fails (closed, or silent for `stall_timeout`) replays the
in-flight frame again, with its original message id: at least once, at most that one frame twice.

Message ids: CALLs the charger and upstream make keep their ids; the edge's own CALLs use UUIDs and their
replies are never forwarded. At most one CALL is outstanding toward the charger: upstream's go first, the
edge's wait behind them.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import deque
from typing import Any

from edge.controller import observe
from edge.controller.actions import (
    DOWN,
    LIVE,
    REPLAYING,
    Action,
    Asked,
    ChargerPending,
    CloseCharger,
    Decide,
    Decision,
    EdgeCallDone,
    Learned,
    LinkSettings,
    LinkState,
    Notice,
    Origin,
    Persist,
    QueueItem,
    Registered,
    ResetUpstream,
    Running,
    SendCharger,
    SendUpstream,
    Sent,
    UpPending,
    Upstream,
    Waits,
)
from edge.controller.answers import answer, is_queued
from edge.controller.authorize import Authorizer, id_token_of
from edge.controller.costs import CostPart, personal_message
from edge.controller.records import Enqueue, StoreOp
from edge.controller.registration import RegistrationPart
from edge.controller.replay import ReplayPart, ReplayQueue
from edge.controller.site_cards import BillingPart
from edge.controller.transactions import Transactions
from edge.controller.wire import (
    Call,
    CallError,
    CallResult,
    FrameError,
    call_error_text,
    call_text,
    dumps,
    parse,
    result_text,
    validate_call,
)
from edge.money import lookup_key

# Forwarded messages whose record the edge makes durable before the charger gets upstream's answer.
_SESSION_ACTIONS = {"StopTransaction", "TransactionEvent"}


# what the edge answers as the CSMS and records behind the answer, unless it must also reach upstream
BEHIND = ("MeterValues", "Heartbeat")

class ChargerLink(BillingPart, ReplayPart, RegistrationPart, CostPart):
    """One charger's OCPP connection, proxy and local CSMS, as a state machine without I/O.

    Feed it each thing that happens with one event method: `from_charger`, `from_upstream`, `upstream_up`,
    `upstream_down`, `tick`, `call`, `answered`. Each returns the actions to carry out, **in order, before the
    next event is fed**: a `Persist` with `wait` must be committed before anything after it is done; an
    `Ask` must be run and its result fed back with `answered(ask_id, result)`, whose actions then take its
    place; a `Learned` updates the site's authorization cache. The link keeps its own state (the durable
    queue's copy in `replay`, the transactions in play in `tx`, what waits on a deadline) and reads no
    socket, no database and no clock but the two it is given.
    """

    def __init__(self, charger_id: str, version: str, settings: LinkSettings, authorizer: Authorizer,
                 new_tx_id: Any, state: LinkState | None = None, clock: Any = time.monotonic,
                 wall: Any = time.time):
        """`clock()`: monotonic seconds (deadlines); `wall()`: unix time (the currentTime the edge answers,
        the authorization cache's expiry, times it records). The link reads time through these only, so a
        test can give it its own."""
        self.charger_id = charger_id
        self.version = version
        self.settings = settings
        self.authorizer = authorizer
        self.new_tx_id = new_tx_id
        self.clock = clock
        self.wall = wall
        state = state or LinkState()
        self.replay = ReplayQueue.load(state.queue, state.replay)  # what waits for upstream's return
        self.tx = Transactions(version, dict(state.tx_map), set(state.stopped_tx), set(state.open_tx_keys),
                               set(state.billed_tx))
        self.asks: dict[int, Asked] = {}
        self.told_cost: dict[str, float] = {}  # tx key → the running cost the charger was last told
        self._ask_ids = itertools.count(1)
        self.state: Upstream = DOWN
        self.epoch = 0  # bumps on every upstream connection
        self.answers = 0  # answers upstream gave on this connection (the shell's backoff trusts a link that answers)
        self.up_pending: dict[str, UpPending] = {}
        self.to_charger: dict[str, ChargerPending] = {}
        self.upstream_calls: deque[tuple[str, str, str, str | None]] = deque()  # (id, action, text, tx)
        self.edge_calls: deque[tuple[str, str, str, str | None]] = deque()
        self._init_registration(settings, state)

    # -- helpers ---------------------------------------------------------------------------------------
    @property
    def waiting(self) -> bool:
        """Something waits on a deadline: `tick` has work to do."""
        return bool(self.up_pending or self.to_charger or self.replay.retry_at is not None)

    # -- events ----------------------------------------------------------------------------------------
    def from_charger(self, text: str | bytes) -> list[Action]:
        """A frame from the charger. A CALL is answered (by upstream, forwarded; or by the edge), a reply to a
        CALL toward the charger is forwarded or ends the edge's own call; a bad frame gets its CALLERROR."""
        try:
            frame = parse(text)
            if isinstance(frame, Call):
                validate_call(frame, self.version)
        except FrameError as e:
            return [Notice("bad_frame"), *([SendCharger(e.reply(self.version))] if e.is_call else [])]
        if isinstance(frame, Call):
            return self._charger_call(frame)
        return self._charger_reply(frame)

    def from_upstream(self, text: str | bytes) -> list[Action]:
        """A frame from upstream: its CALL goes to the charger (ids rewritten for 1.6), its answer goes back
        to the charger (live), is used (late) or moves the replay on."""
        try:
            frame = parse(text)
        except FrameError as e:
            return [Notice("bad_frame"), *([SendUpstream(e.reply(self.version))] if e.is_call else [])]
        if isinstance(frame, Call):
            return self._upstream_call(frame)
        pending = self.up_pending.pop(frame.msg_id, None)
        if pending is None:
            return []  # an answer to nothing we sent (a duplicate, or from before a reset): nothing to do
        self.answers += 1
        if pending.kind is Sent.LIVE:
            return self._live_reply(pending, frame)
        if pending.kind is Sent.LATE:
            return self._late_reply(pending, frame) + self._replay_next()
        return self._replay_reply(pending, frame) + self._replay_next()

    def upstream_up(self) -> list[Action]:
        """The upstream link is open: replay starts (Boot, statuses, the queue), then LIVE."""
        if self.settings.standalone:
            return []
        self.epoch += 1
        self.answers = 0
        self.replay.retry_at, self.replay.last_replayed = None, None
        self.state = REPLAYING
        return self._replay_next()

    def upstream_down(self) -> list[Action]:
        """The upstream link closed: what was in flight is answered locally (strict: the charger is closed)."""
        if self.settings.standalone or self.state == DOWN:
            return []
        return self._lose_link()

    def _lose_link(self) -> list[Action]:
        """The link is gone, or given up on: what was in flight is answered locally and kept for replay."""
        self.state = DOWN
        pending, self.up_pending = self.up_pending, {}
        if self.settings.strict:
            return [CloseCharger("upstream connection lost (strict mode)")]
        actions: list[Action] = []
        for p in pending.values():
            if p.kind is Sent.LIVE:
                actions += self._answer_sent(p)
            elif p.kind is Sent.LATE and p.call.action in ("BootNotification", "StatusNotification"):
                actions.append(Persist(self._remember_for_replay(p.call)))
        return actions

    def tick(self, now: float | None = None) -> list[Action]:
        """Time passed (`now` on the monotonic clock): late answers, a stalled link, a retry due, a charger
        that did not answer the edge's call. The shell ticks while `waiting`."""
        now = self.clock() if now is None else now
        actions: list[Action] = []
        if any(p.stall_at <= now for p in self.up_pending.values()):
            stall = self.settings.stall_timeout
            actions += self._lose_link()
            actions.append(ResetUpstream(f"upstream has not answered a call for {stall:g} s"))
        elif not self.settings.strict:  # strict: never answered locally; the charger waits for upstream
            for p in [p for p in self.up_pending.values() if p.kind is Sent.LIVE and p.deadline <= now]:
                actions += self._went_late(p)
        if self.replay.retry_at is not None and self.replay.retry_at <= now:
            actions += self._replay_next()
        for msg_id in [m for m, p in self.to_charger.items() if p.deadline <= now]:
            p = self.to_charger.pop(msg_id)
            if p.origin is Origin.EDGE:
                actions.append(EdgeCallDone(msg_id, error=CallError(msg_id, "Timeout", "charger did not answer",
                                                                    {})))
            actions += self._next_to_charger()
        return actions

    def answered(self, ask_id: int, result: Decision | Running | Registered) -> list[Action]:
        """The answer to an `Ask`: finish what was waiting for it."""
        asked = self.asks.pop(ask_id, None)
        if asked is None:
            return []
        if isinstance(result, Registered):
            return self._registered(asked.call, result)
        if isinstance(result, Running):
            return self._stop_if_exhausted(asked.tx_key, result) + self._tell_running(asked.tx_key, result)
        call = asked.call
        if not result.known:  # the card went away meanwhile: as for any unknown card
            return self._route_call(call)
        if asked.kind is Waits.UPSTREAM_START:
            return self._after_upstream_start(asked, result)
        if asked.kind is Waits.START and result.hold_minor:
            self.tx.billed.add(self._tx_key_of(call, result))
        if asked.kind is Waits.AUTHORIZE or result.repeat:
            return self._answer_locally(call, offline=False, decided=result, record=False) + \
                self._tell_user_price(call, result)
        if asked.sent or self.settings.standalone or self.state != LIVE:
            return self._answer_locally(call, offline=not self.settings.standalone, decided=result,
                                        sent=asked.sent)
        return self._forward(call, decided=result)

    def call(self, action: str, payload: dict) -> tuple[str, list[Action]]:
        """Queue a CALL of the edge's own to the charger; its answer comes back as `EdgeCallDone`."""
        msg_id = str(uuid.uuid4())
        if action == "TriggerMessage" and isinstance(payload.get("requestedMessage"), str):
            self.triggered.add(payload["requestedMessage"])
        self.edge_calls.append((msg_id, action, call_text(msg_id, action, payload), None))
        return msg_id, self._next_to_charger()

    # -- charger → edge ------------------------------------------------------------------------------
    def _charger_call(self, call: Call) -> list[Action]:
        if not self.accepted:
            return self._not_accepted(call)
        return self._ask_decision(call) or self._route_call(call)

    def _route_call(self, call: Call) -> list[Action]:
        if self.settings.standalone:
            return self._answer_locally(call, offline=False)
        if self.state != LIVE:
            if self.settings.strict:
                return [CloseCharger("upstream is not connected (strict mode)")]
            return self._answer_locally(call, offline=True)
        return self._forward(call)

    def _forward(self, call: Call, decided: Decision | None = None) -> list[Action]:
        text = self.tx.to_upstream_text(call)
        now = self.clock()
        self.up_pending[call.msg_id] = UpPending(Sent.LIVE, call, now + self.settings.call_timeout,
                                                  now + self.settings.stall_timeout, sent_text=text,
                                                  decided=decided)
        actions: list[Action] = []
        ops = self._observe_ops(call)
        if ops:
            actions.append(Persist(ops, wait=False, later=call.action in BEHIND))
        actions.append(SendUpstream(text))
        actions += self._watch_cost(call)
        return actions

    def _observe_ops(self, call: Call) -> list[StoreOp]:
        """What the edge records of a CALL it forwards (the answer's part is recorded with the answer)."""
        a, p, cid = call.action, call.payload, self.charger_id
        if a == "BootNotification":
            return observe.boot_ops(cid, self.version, p, self.wall(), accepted=self.accepted)
        if a == "StatusNotification":
            return observe.status_ops(cid, p, self.wall())
        if a == "MeterValues":
            return observe.meter_ops_16(cid, p) if self.version == "1.6" else observe.meter_ops_201(cid, p)
        if a == "StopTransaction":
            return observe.stop_ops_16(cid, p)
        if a == "TransactionEvent":
            return observe.tx_event_ops(cid, self.version, p, self._tx_event_id(p))
        if a in observe.TRANSFER_KINDS:
            return observe.transfer_ops(cid, a, p, self.wall())
        if a == "NotifyReport":
            return observe.report_ops(cid, p, self.wall())
        if a == "NotifyEVChargingNeeds":
            return observe.ev_needs_ops(cid, p, self.wall())
        return []

    def _tx_event_id(self, payload: dict) -> int | None:
        key = (payload.get("transactionInfo") or {}).get("transactionId")
        if key is None or key in self.tx.open_keys:
            return None
        self.tx.open_keys.add(key)
        return self.new_tx_id()

    def _learn(self, call: Call, frame: CallResult | CallError) -> list[Action]:
        """Upstream's word on a card (idTagInfo / idTokenInfo), for the authorization cache."""
        if not isinstance(frame, CallResult):
            return []
        info = frame.payload.get("idTagInfo") or frame.payload.get("idTokenInfo")
        id_tag = id_token_of(call.payload)
        if isinstance(info, dict) and id_tag:
            row = self.authorizer.learn(id_tag, info, now=self.wall())
            if row:
                return [Learned(row)]
        return []

    def _answer_locally(self, call: Call, *, offline: bool, decided: Decision | None = None,
                        record: bool = True, sent: bool = False, boot: str = "Accepted") -> list[Action]:
        """Answer `call` as the CSMS: record what it tells, queue it for upstream if `offline`, reply.

        `decided`: the billing decision for a known card (its session row is written already);
        `record=False`: reply only (a repeated start, an Authorize); `sent`: the call went upstream already
        (what it recorded on the way up is not recorded again, and it is queued as the cloud may have it);
        `boot`: a BootNotification's status."""
        status = self._local_status(call, decided)
        if not record:
            return [self._reply(call, status, decided.tx_id if decided else None, offline, decided)]
        ops, tx_id, queue_tx = self._record(call, offline=offline, decided=decided, sent=sent)
        actions: list[Action] = []
        if offline and self.state != DOWN:
            actions.append(Notice("answered_while_up"))
        queued = offline and is_queued(self.version, call.action)
        if queued:
            ops.append(self._enqueue(call, queue_tx, sent))
        if ops:  # what carries money, or must reach upstream, is durable before the charger hears; a meter
            # sample or a heartbeat is written behind (sharing commits: what wears an SD card)
            behind = not queued and call.action in BEHIND
            actions.append(Persist(ops, wait=not behind, later=behind))
        actions.append(self._reply(call, status, tx_id, offline, decided, boot))
        return actions + self._watch_cost(call)

    def _local_status(self, call: Call, decided: Decision | None) -> str:
        """The authorization status the edge answers with: billing's for a known card, else the offline or
        standalone rule (`Authorizer.decide`) for actions that carry a card."""
        if decided is not None:
            return decided.status
        a, id_tag = call.action, id_token_of(call.payload)
        ends = a == "StopTransaction" or (a == "TransactionEvent" and call.payload.get("eventType") == "Ended")
        if ends and id_tag and self.authorizer.knows(uid := lookup_key(id_tag)):
            return self.authorizer.at_end(uid, self.charger_id, self.version)
        if a in ("Authorize", "StartTransaction", "TransactionEvent") or (a == "StopTransaction" and id_tag):
            return self.authorizer.decide(self.charger_id, id_tag, standalone=self.settings.standalone,
                                          now=self.wall())
        return "Accepted"

    def _reply(self, call: Call, status: str, tx_id: int | None, offline: bool,
               decided: Decision | None = None, boot: str = "Accepted") -> SendCharger:
        """The edge's answer; a card's validity end and group from billing's decision, or (a session's end)
        from the site's cards."""
        group = decided.group if decided else self.authorizer.group_of(id_token_of(call.payload))
        message = personal_message(decided.price_texts) if decided and decided.price_texts and \
            self._telling() else None  # 2.0.1 (a 1.6 charger hears SetUserPrice after)
        payload = answer(call, self.version, heartbeat_interval=self.settings.heartbeat_interval,
                         auth_status=status, transaction_id=tx_id, offline=offline, now=self.wall(),
                         expiry=decided.expiry if decided else None, group=group, message=message, boot_status=boot)
        if payload is None:
            return SendCharger(call_error_text(call.msg_id, "NotSupported",
                                               f"{call.action} is not supported by this CSMS"))
        if self.settings.smart_charging and call.action in ("NotifyEVChargingNeeds", "NotifyEVChargingSchedule"):
            payload = {"status": "Accepted"}  # the profile follows (edge.operations.current_limits)
        ended = call.action == "TransactionEvent" and call.payload.get("eventType") == "Ended"
        key = (call.payload.get("transactionInfo") or {}).get("transactionId") if ended else \
            str(call.payload.get("transactionId")) if call.action == "StopTransaction" and self._telling() else None
        return SendCharger(result_text(call.msg_id, payload), total_cost_of=key)

    def _record(self, call: Call, *, offline: bool, decided: Decision | None,
                sent: bool) -> tuple[list[StoreOp], int | None, int | None]:
        """What the edge records of a CALL it answers: (store ops, the 1.6 transaction id it gives, the 1.6
        transaction id the frame is queued under)."""
        a, p = call.action, call.payload
        if a == "StartTransaction":  # the edge gives the id (billing has, for a known card)
            if decided is not None:
                tx_id, ops = decided.tx_id, []
            else:
                tx_id = self.new_tx_id()
                ops: list[StoreOp] = [observe.start_op_16(self.charger_id, tx_id, p, offline=offline)]
            self.tx.id_map[tx_id] = None
            return ops, tx_id, tx_id
        ops = [] if sent else self._observe_ops(call)  # a sent one was recorded on its way up
        if a in ("BootNotification", "StatusNotification"):
            if offline and (not sent or self.state == DOWN):  # a late one is still on its way up
                ops += self._remember_for_replay(call)
            return ops, None, None
        queue_tx = p["transactionId"] if a in ("StopTransaction", "MeterValues") and \
            isinstance(p.get("transactionId"), int) else None
        if a == "StopTransaction" and queue_tx in self.tx.id_map:
            if offline and is_queued(self.version, a):
                self.tx.stopped.add(queue_tx)  # its mapping stays until upstream has the Stop
            else:
                self.tx.forget(queue_tx)
        return ops, None, queue_tx

    def _enqueue(self, call: Call, queue_tx: int | None, sent: bool) -> Enqueue:
        """Queue `call` for upstream, in order; the store op that makes it durable."""
        text = call.text
        if call.action == "TransactionEvent" and not sent:  # the cloud must know it did not get this one live
            text = call_text(call.msg_id, call.action, {**call.payload, "offline": True})
        item = self.replay.push(call.msg_id, call.action, text, queue_tx)
        return Enqueue(self.charger_id, item.seq, item.msg_id, item.action, item.frame, item.tx_id)

    def _charger_reply(self, frame: CallResult | CallError) -> list[Action]:
        pending = self.to_charger.pop(frame.msg_id, None)
        if pending is None:
            return []
        actions: list[Action] = []
        if pending.origin is Origin.EDGE:
            if isinstance(frame, CallResult):
                actions.append(EdgeCallDone(frame.msg_id, result=frame.payload))
            else:
                actions.append(EdgeCallDone(frame.msg_id, error=frame))
        elif pending.epoch == self.epoch and self.state != DOWN:
            text = frame.text
            if (pending.action == "GetTransactionStatus" and isinstance(frame, CallResult)
                    and self.replay.holds(pending.tx_key)):
                text = result_text(frame.msg_id, {**frame.payload, "messagesInQueue": True})
            actions.append(SendUpstream(text))
        return actions + self._next_to_charger()

    # -- upstream → edge -----------------------------------------------------------------------------
    def _upstream_call(self, call: Call) -> list[Action]:
        text, tx_key = self.tx.from_upstream_text(call), None
        if self.version != "1.6" and call.action == "GetTransactionStatus":
            tx_key = call.payload.get("transactionId")
        self.upstream_calls.append((call.msg_id, call.action, text, tx_key))
        return self._next_to_charger()

    def _next_to_charger(self) -> list[Action]:
        if self.to_charger:
            return []
        if self.upstream_calls:
            msg_id, action, text, tx_key = self.upstream_calls.popleft()
            origin = Origin.UPSTREAM
        elif self.edge_calls:
            msg_id, action, text, tx_key = self.edge_calls.popleft()
            origin = Origin.EDGE
        else:
            return []
        self.to_charger[msg_id] = ChargerPending(origin, action, self.clock() + self.settings.charger_call_timeout,
                                                  self.epoch, tx_key)
        return [SendCharger(text)]

    def _live_reply(self, pending: UpPending, frame: CallResult | CallError) -> list[Action]:
        call = pending.call
        if isinstance(frame, CallError):
            return [SendCharger(frame.text)]
        actions = self._learn(call, frame)
        p = frame.payload
        info = p.get("idTagInfo") or p.get("idTokenInfo")
        decided = pending.decided
        if decided is not None:
            return actions + self._decided_reply(call, frame, decided)
        uid = self._card_of(call) if call.action in ("StartTransaction", "TransactionEvent") else None
        if uid is not None and (call.action == "StartTransaction" or call.payload.get("eventType") == "Started"):
            # authority "upstream": upstream has decided; record the session and hold for a known card
            status = (info or {}).get("status", "Accepted")
            upstream_id = p.get("transactionId") if call.action == "StartTransaction" else None
            tx = self._start_record(call, uid, upstream_id if isinstance(upstream_id, int) else 0, status)
            return actions + self._ask(Asked(call, Waits.UPSTREAM_START, upstream_reply=frame),
                                       Decide(uid, self.charger_id, self.version, "start", tx, status))
        if self.version == "1.6" and call.action == "StartTransaction":
            upstream_id = p.get("transactionId")
            local = self.new_tx_id(upstream_id) if type(upstream_id) is int and upstream_id > 0 else self.new_tx_id()
            status = (info or {}).get("status")
            self.tx.id_map[local] = upstream_id if isinstance(upstream_id, int) else 0
            actions.append(Persist([observe.start_op_16(self.charger_id, local, call.payload, offline=False,
                                                        upstream_tx_id=self.tx.id_map[local],
                                                        upstream_status=status)]))
            actions.append(SendCharger(result_text(frame.msg_id, {**p, "transactionId": local})))
            return actions
        if self.version == "1.6" and call.action == "StopTransaction":
            self.tx.forget(call.payload.get("transactionId"))
        if call.action in _SESSION_ACTIONS:
            actions.append(Persist([]))  # what was recorded on the way up is durable before the charger hears
        actions.append(SendCharger(frame.text))
        return actions


__all__ = ["ChargerLink", "LinkSettings", "LinkState", "QueueItem", "SendCharger", "SendUpstream", "Persist",
           "CloseCharger", "ResetUpstream", "EdgeCallDone", "Action", "DOWN", "REPLAYING", "LIVE", "dumps"]
