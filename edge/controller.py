"""The per-charger local controller: OCPP proxy and local CSMS as a plain object fed events (sans-I/O).

`ChargerLink` takes what happened and returns what to do::

    link.from_charger(text)    a frame from the charger
    link.from_upstream(text)   a frame from the upstream CSMS
    link.upstream_up()         the upstream link is open (start replay)
    link.upstream_down()       the upstream link closed
    link.tick(now)             time passed (timeouts)
    link.call(action, payload) the edge itself wants to send a CALL to the charger

Each returns a list of actions for the asyncio shell (`edge.server`) to carry out in order: `Persist` (commit
these store ops; if `wait`, before doing anything that follows), `SendCharger`, `SendUpstream`, `CloseCharger`,
`ResetUpstream` and `EdgeCallDone`.

Upstream state, in proxy mode::

    DOWN ──upstream_up──► REPLAYING ──queue empty──► LIVE
      ▲                        │                       │
      └─────upstream_down──────┴───────────────────────┘

DOWN and REPLAYING: the edge answers the charger itself and first commits what upstream must see to the
durable queue. REPLAYING sends, one at a time: the Boot the charger made while away, the latest Status per
connector, then the queue in order. LIVE: frames are forwarded with their own text and id. In standalone
mode the edge is the CSMS and the upstream state does not matter.

Message ids: CALLs the charger and upstream make keep their ids; the edge's own CALLs use UUIDs and their
replies are never forwarded. At most one CALL is outstanding toward the charger: upstream's go first, the
edge's wait behind them.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from edge import observe
from edge.authorize import Authorizer, id_token_of
from edge.local_csms import answer, is_queued
from edge.money import lookup_key
from edge.wire import (
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

DOWN, REPLAYING, LIVE = "down", "replaying", "live"
# Forwarded messages whose record the edge makes durable before the charger gets upstream's answer.
_SESSION_ACTIONS = {"StopTransaction", "TransactionEvent"}


# -- actions ---------------------------------------------------------------------------------------------
@dataclass(slots=True)
class SendCharger:
    text: str


@dataclass(slots=True)
class SendUpstream:
    text: str


@dataclass(slots=True)
class Persist:
    ops: list[tuple[str, dict]]
    wait: bool = True  # the following actions must not happen before these are durable


@dataclass(slots=True)
class CloseCharger:
    reason: str


@dataclass(slots=True)
class ResetUpstream:
    reason: str


@dataclass(slots=True)
class Ask:
    """Run a billing function in its own store transaction; feed its result to `answered(ask_id, ...)`."""

    ask_id: int
    kind: str  # "decide" (edge.billing.decide) or "running" (edge.billing.running)
    data: dict


@dataclass(slots=True)
class EdgeCallDone:
    msg_id: str
    result: dict | None = None
    error: CallError | None = None


Action = SendCharger | SendUpstream | Persist | CloseCharger | ResetUpstream | EdgeCallDone | Ask


@dataclass(slots=True)
class QueueItem:
    seq: int
    msg_id: str
    action: str
    frame: str
    tx_id: int | None = None  # 1.6: the edge's transaction id the frame refers to


@dataclass(slots=True)
class _UpPending:
    kind: str  # "live" (the charger waits for the answer) or "replay"
    call: Call
    deadline: float
    item: Any = None  # replay: QueueItem or the replay_state key
    sent_text: str = ""
    decided: dict | None = None  # the edge's own decision for a card it knows (authority "edge")


@dataclass(slots=True)
class _Asked:
    call: Call
    kind: str  # "authorize", "start", "upstream_start" (upstream decided; record and hold), "running"
    upstream_reply: CallResult | None = None
    tx_key: str | None = None


@dataclass(slots=True)
class _ChargerPending:
    origin: str  # "upstream" or "edge"
    action: str
    deadline: float
    epoch: int = 0
    tx_key: str | None = None


@dataclass
class LinkSettings:
    standalone: bool = True
    strict: bool = False
    heartbeat_interval: int = 300
    call_timeout: float = 10.0
    charger_call_timeout: float = 30.0


@dataclass
class LinkState:
    """What the shell loads from the store when a charger connects (empty for a new charger)."""

    queue: list[QueueItem] = field(default_factory=list)
    replay: dict[str, tuple[str, bool]] = field(default_factory=dict)  # key → (frame, pending)
    tx_map: dict[int, int | None] = field(default_factory=dict)  # 1.6: edge id → upstream id (None: not yet)
    stopped_tx: set[int] = field(default_factory=set)  # 1.6: of those, the ones whose Stop the edge has seen
    open_tx_keys: set[str] = field(default_factory=set)  # 2.0.1 transactions the store already has
    billed_tx: set[str] = field(default_factory=set)  # open sessions on a hold (their cost is watched)


class ChargerLink:
    def __init__(self, charger_id: str, version: str, settings: LinkSettings, authorizer: Authorizer,
                 new_tx_id: Any, state: LinkState | None = None, clock: Any = time.monotonic):
        self.charger_id = charger_id
        self.version = version
        self.settings = settings
        self.authorizer = authorizer
        self.new_tx_id = new_tx_id
        self.clock = clock
        state = state or LinkState()
        self.queue: deque[QueueItem] = deque(sorted(state.queue, key=lambda q: q.seq))
        self.next_seq = (self.queue[-1].seq + 1) if self.queue else 1
        self.replay = dict(state.replay)
        # 1.6 transactions still in play: open, or stopped but with frames still to replay. An entry goes
        # once upstream has its Stop, so that an id a restarted upstream hands out again maps to the live one.
        self.tx_map = dict(state.tx_map)
        self.stopped_tx = set(state.stopped_tx)
        self.open_tx_keys = set(state.open_tx_keys)
        self.queued_tx: Counter[str] = Counter(self._item_tx_key(q) for q in self.queue)
        self.billed_tx = set(state.billed_tx)
        self.stop_requested: set[str] = set()
        self.asks: dict[int, _Asked] = {}
        self._ask_ids = itertools.count(1)
        self.state = DOWN
        self.epoch = 0  # bumps on every upstream connection
        self.up_pending: dict[str, _UpPending] = {}
        self.to_charger: dict[str, _ChargerPending] = {}
        self.upstream_calls: deque[tuple[str, str, str, str | None]] = deque()  # (id, action, text, tx)
        self.edge_calls: deque[tuple[str, str, str, str | None]] = deque()
        self.errors = 0

    # -- helpers ---------------------------------------------------------------------------------------
    @property
    def proxy_live(self) -> bool:
        return not self.settings.standalone and self.state == LIVE

    def _item_tx_key(self, item: QueueItem) -> str:
        if item.tx_id is not None:
            return str(item.tx_id)
        if item.action == "TransactionEvent":
            try:
                return parse(item.frame).payload["transactionInfo"]["transactionId"]  # type: ignore[union-attr]
            except (FrameError, KeyError, TypeError):
                return ""
        return ""

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

    # -- events ----------------------------------------------------------------------------------------
    def from_charger(self, text: str | bytes) -> list[Action]:
        try:
            frame = parse(text)
            if isinstance(frame, Call):
                validate_call(frame, self.version)
        except FrameError as e:
            self.errors += 1
            return [SendCharger(e.reply(self.version))] if e.is_call else []
        if isinstance(frame, Call):
            return self._charger_call(frame)
        return self._charger_reply(frame)

    def from_upstream(self, text: str | bytes) -> list[Action]:
        try:
            frame = parse(text)
        except FrameError as e:
            self.errors += 1
            return [SendUpstream(e.reply(self.version))] if e.is_call else []
        if isinstance(frame, Call):
            return self._upstream_call(frame)
        pending = self.up_pending.pop(frame.msg_id, None)
        if pending is None:
            return []  # an answer to nothing we sent (late, or a duplicate): nothing to do
        if pending.kind == "live":
            return self._live_reply(pending, frame)
        return self._replay_reply(pending, frame) + self._replay_next()

    def upstream_up(self) -> list[Action]:
        if self.settings.standalone:
            return []
        self.epoch += 1
        self.state = REPLAYING
        return self._replay_next()

    def upstream_down(self) -> list[Action]:
        if self.settings.standalone or self.state == DOWN:
            return []
        self.state = DOWN
        actions: list[Action] = []
        pending, self.up_pending = self.up_pending, {}
        if self.settings.strict:
            return [CloseCharger("upstream connection lost (strict mode)")]
        for p in pending.values():
            if p.kind == "live":
                actions += self._answer_locally(p.call, offline=True)
        return actions

    def tick(self, now: float | None = None) -> list[Action]:
        now = self.clock() if now is None else now
        actions: list[Action] = []
        late = [m for m, p in self.up_pending.items() if p.deadline <= now]
        if late:
            for msg_id in late:
                p = self.up_pending.pop(msg_id)
                if p.kind == "live" and not self.settings.strict:
                    actions += self._answer_locally(p.call, offline=True)
            self.state = DOWN
            actions.append(ResetUpstream("upstream did not answer in time"))
        for msg_id in [m for m, p in self.to_charger.items() if p.deadline <= now]:
            p = self.to_charger.pop(msg_id)
            if p.origin == "edge":
                actions.append(EdgeCallDone(msg_id, error=CallError(msg_id, "Timeout", "charger did not answer",
                                                                    {})))
            actions += self._next_to_charger()
        return actions

    def answered(self, ask_id: int, result: dict) -> list[Action]:
        """The result of an `Ask`: finish what was waiting for it."""
        asked = self.asks.pop(ask_id, None)
        if asked is None:
            return []
        if asked.kind == "running":
            return self._stop_if_exhausted(asked.tx_key, result)
        call = asked.call
        if not result.get("known"):  # the card went away meanwhile: as for any unknown card
            return self._route_call(call)
        if asked.kind == "upstream_start":
            return self._after_upstream_start(asked, result)
        if asked.kind == "start" and result.get("hold_minor"):
            self.billed_tx.add(self._tx_key_of(call, result))
        if asked.kind == "authorize" or result.get("repeat"):
            return self._answer_locally(call, offline=False, decided=result, record=False)
        if self.settings.standalone or self.state != LIVE:
            return self._answer_locally(call, offline=not self.settings.standalone, decided=result)
        return self._forward(call, decided=result)

    def call(self, action: str, payload: dict) -> tuple[str, list[Action]]:
        """Queue a CALL of the edge's own to the charger; its answer comes back as `EdgeCallDone`."""
        msg_id = str(uuid.uuid4())
        self.edge_calls.append((msg_id, action, call_text(msg_id, action, payload), None))
        return msg_id, self._next_to_charger()

    # -- charger → edge ------------------------------------------------------------------------------
    def _charger_call(self, call: Call) -> list[Action]:
        return self._ask_decision(call) or self._route_call(call)

    def _route_call(self, call: Call) -> list[Action]:
        if self.settings.standalone:
            return self._answer_locally(call, offline=False)
        if self.state != LIVE:
            if self.settings.strict:
                return [CloseCharger("upstream is not connected (strict mode)")]
            return self._answer_locally(call, offline=True)
        return self._forward(call)

    def _forward(self, call: Call, decided: dict | None = None) -> list[Action]:
        text = self._to_upstream_text(call)
        if text is None:  # refers to a transaction upstream refused: the edge keeps it to itself
            return self._answer_locally(call, offline=False)
        self.up_pending[call.msg_id] = _UpPending("live", call, self.clock() + self.settings.call_timeout,
                                                  sent_text=text, decided=decided)
        actions: list[Action] = []
        ops = self._observe_ops(call)
        if ops:
            actions.append(Persist(ops, wait=False))
        actions.append(SendUpstream(text))
        actions += self._watch_cost(call)
        return actions

    def _observe_ops(self, call: Call) -> list[tuple[str, dict]]:
        """What the edge records of a CALL it forwards (the answer's part is recorded with the answer)."""
        a, p, cid = call.action, call.payload, self.charger_id
        if a == "BootNotification":
            return observe.boot_ops(cid, self.version, p)
        if a == "StatusNotification":
            return observe.status_ops(cid, p)
        if a == "MeterValues":
            return observe.meter_ops_16(cid, p) if self.version == "1.6" else observe.meter_ops_201(cid, p)
        if a == "StopTransaction":
            return observe.stop_ops_16(cid, p)
        if a == "TransactionEvent":
            return observe.tx_event_ops(cid, self.version, p, self._tx_event_id(p))
        return []

    def _tx_event_id(self, payload: dict) -> int | None:
        key = (payload.get("transactionInfo") or {}).get("transactionId")
        if key is None or key in self.open_tx_keys:
            return None
        self.open_tx_keys.add(key)
        return self.new_tx_id()

    def _answer_locally(self, call: Call, *, offline: bool, decided: dict | None = None,
                        record: bool = True) -> list[Action]:
        """Answer `call` as the CSMS. `decided`: the billing decision for a known card (its session row is
        written already); `record=False`: answer only (a repeated start, an Authorize)."""
        a, p, cid = call.action, call.payload, self.charger_id
        standalone = self.settings.standalone
        ops: list[tuple[str, dict]] = []
        status = "Accepted"
        tx_id: int | None = None
        queue_tx: int | None = None
        id_tag = id_token_of(p)
        if decided is not None:
            status = decided["status"]
        elif a in ("Authorize", "StartTransaction", "TransactionEvent") or (a == "StopTransaction" and id_tag):
            status = self.authorizer.decide(cid, id_tag, standalone=standalone)
        if not record:
            tx_id = decided.get("tx_id") if decided else None
            payload = answer(call, self.version, heartbeat_interval=self.settings.heartbeat_interval,
                             auth_status=status, transaction_id=tx_id, offline=offline)
            return [SendCharger(result_text(call.msg_id, payload or {}))]
        if a == "BootNotification":
            ops += observe.boot_ops(cid, self.version, p)
            if offline:
                ops.append(("replay_set", {"charger_id": cid, "key": "boot", "frame": call.text}))
                self.replay["boot"] = (call.text, True)
                # A new boot makes earlier statuses stale: the charger will send fresh ones.
                for key in [k for k in self.replay if k.startswith("status:")]:
                    self.replay[key] = (self.replay[key][0], False)
        elif a == "StatusNotification":
            ops += observe.status_ops(cid, p)
            if offline:
                evse, connector = observe.status_key(p)
                key = f"status:{evse}:{connector}"
                ops.append(("replay_set", {"charger_id": cid, "key": key, "frame": call.text}))
                self.replay[key] = (call.text, True)
        elif a == "StartTransaction":
            if decided is not None:
                tx_id = queue_tx = decided["tx_id"]
            else:
                tx_id = queue_tx = self.new_tx_id()
                ops.append(observe.start_op_16(cid, tx_id, p, offline=offline))
            self.tx_map[tx_id] = None
        else:
            ops += self._observe_ops(call)
            if a in ("StopTransaction", "MeterValues") and isinstance(p.get("transactionId"), int):
                queue_tx = p["transactionId"]
            if a == "StopTransaction" and queue_tx in self.tx_map:
                if offline and is_queued(self.version, a):
                    self.stopped_tx.add(queue_tx)
                else:
                    self._forget_tx(queue_tx)  # answered locally for good (refused by upstream)
        payload = answer(call, self.version, heartbeat_interval=self.settings.heartbeat_interval,
                         auth_status=status, transaction_id=tx_id, offline=offline)
        actions: list[Action] = []
        if offline and is_queued(self.version, a):
            item = QueueItem(self.next_seq, call.msg_id, a, call.text, queue_tx)
            self.next_seq += 1
            self.queue.append(item)
            self.queued_tx[self._item_tx_key(item)] += 1
            ops.append(("enqueue", {"charger_id": cid, "seq": item.seq, "msg_id": item.msg_id, "action": a,
                                    "frame": item.frame, "tx_id": item.tx_id}))
        if ops:
            actions.append(Persist(ops))
        if payload is None:
            actions.append(SendCharger(call_error_text(call.msg_id, "NotSupported",
                                                       f"{a} is not supported by this CSMS")))
        else:
            actions.append(SendCharger(result_text(call.msg_id, payload)))
        return actions + self._watch_cost(call)

    def _charger_reply(self, frame: CallResult | CallError) -> list[Action]:
        pending = self.to_charger.pop(frame.msg_id, None)
        if pending is None:
            return []
        actions: list[Action] = []
        if pending.origin == "edge":
            if isinstance(frame, CallResult):
                actions.append(EdgeCallDone(frame.msg_id, result=frame.payload))
            else:
                actions.append(EdgeCallDone(frame.msg_id, error=frame))
        elif pending.epoch == self.epoch and self.state != DOWN:
            text = frame.text
            if (pending.action == "GetTransactionStatus" and isinstance(frame, CallResult)
                    and self._edge_holds(pending.tx_key)):
                text = result_text(frame.msg_id, {**frame.payload, "messagesInQueue": True})
            actions.append(SendUpstream(text))
        return actions + self._next_to_charger()

    def _edge_holds(self, tx_key: str | None) -> bool:
        if tx_key is None:
            return bool(self.queue)
        return self.queued_tx.get(tx_key, 0) > 0

    # -- the edge's own cards (edge.billing) -------------------------------------------------------------
    def _card_of(self, call: Call) -> str | None:
        """The known card in an Authorize / StartTransaction / TransactionEvent that starts or authorizes."""
        a, p = call.action, call.payload
        if a not in ("Authorize", "StartTransaction", "TransactionEvent"):
            return None
        if a == "TransactionEvent" and p.get("eventType") == "Ended":
            return None
        token = id_token_of(p)
        if not token:
            return None
        uid = lookup_key(token)
        return uid if self.authorizer.knows(uid) else None

    def _ask(self, asked: _Asked, kind: str, data: dict) -> list[Action]:
        ask_id = next(self._ask_ids)
        self.asks[ask_id] = asked
        return [Ask(ask_id, kind, data)]

    def _ask_decision(self, call: Call) -> list[Action]:
        uid = self._card_of(call)
        if uid is None:
            return []
        if not self.settings.standalone:
            if self.state == LIVE and self.authorizer.authority == "upstream":
                return []  # upstream decides; a start is recorded and held when its answer comes
            if self.state != LIVE and self.settings.strict:
                return []
        kind = "authorize" if call.action == "Authorize" else "start"
        tx = self._start_record(call, uid) if kind == "start" else None
        return self._ask(_Asked(call, kind), "decide", {"uid": uid, "charger_id": self.charger_id,
                                                        "version": self.version, "kind": kind, "tx": tx})

    def _start_record(self, call: Call, uid: str, upstream_id: int | None = None,
                      upstream_status: str | None = None) -> dict:
        offline = not self.settings.standalone and self.state != LIVE
        p = call.payload
        if call.action == "StartTransaction":
            tx_id = self.new_tx_id()
            _, tx = observe.start_op_16(self.charger_id, tx_id, p, offline=offline, upstream_tx_id=upstream_id,
                                        upstream_status=upstream_status)
            return tx
        key = (p.get("transactionInfo") or {}).get("transactionId")
        self.open_tx_keys.add(key)
        evse = p.get("evse") or {}
        return {"id": self.new_tx_id(), "charger_id": self.charger_id, "tx_key": key, "version": self.version,
                "evse_id": evse.get("id"), "connector_id": evse.get("connectorId"), "id_tag": uid,
                "meter_start": observe.energy_wh(p.get("meterValue")), "started_at": p.get("timestamp"),
                "started_offline": int(offline), "upstream_tx_id": None, "upstream_status": None}

    def _tx_key_of(self, call: Call, result: dict) -> str:
        if call.action == "StartTransaction":
            return str(result["tx_id"])
        return (call.payload.get("transactionInfo") or {}).get("transactionId")

    def _after_upstream_start(self, asked: _Asked, result: dict) -> list[Action]:
        """Authority "upstream": upstream's answer to a start of a known card, now recorded and held."""
        reply = asked.upstream_reply
        assert reply is not None
        if result.get("hold_minor"):
            self.billed_tx.add(self._tx_key_of(asked.call, result))
        if asked.call.action == "StartTransaction":
            local = result["tx_id"]
            upstream_id = reply.payload.get("transactionId")
            self.tx_map[local] = upstream_id if isinstance(upstream_id, int) else 0
            return [SendCharger(result_text(reply.msg_id, {**reply.payload, "transactionId": local}))]
        return [SendCharger(reply.text)]

    def _watch_cost(self, call: Call) -> list[Action]:
        """After meter values of a session on a hold: ask for its running cost (to stop it at the hold)."""
        p = call.payload
        if call.action == "MeterValues" and self.version == "1.6":
            key = p.get("transactionId")
        elif call.action == "TransactionEvent" and p.get("eventType") == "Updated":
            key = (p.get("transactionInfo") or {}).get("transactionId")
        else:
            return []
        key = None if key is None else str(key)
        if key not in self.billed_tx or key in self.stop_requested or not p.get("meterValue"):
            return []
        return self._ask(_Asked(call, "running", tx_key=key), "running",
                         {"charger_id": self.charger_id, "tx_key": key})

    def _stop_if_exhausted(self, tx_key: str | None, result: dict) -> list[Action]:
        if not result.get("stop") or tx_key is None or tx_key in self.stop_requested:
            return []
        self.stop_requested.add(tx_key)
        if self.version == "1.6":
            _, actions = self.call("RemoteStopTransaction", {"transactionId": int(tx_key)})
        else:
            _, actions = self.call("RequestStopTransaction", {"transactionId": tx_key})
        return actions

    # -- upstream → edge -----------------------------------------------------------------------------
    def _upstream_call(self, call: Call) -> list[Action]:
        text, tx_key = call.text, None
        if self.version == "1.6":
            text = self._from_upstream_text(call)
        elif call.action == "GetTransactionStatus":
            tx_key = call.payload.get("transactionId")
        self.upstream_calls.append((call.msg_id, call.action, text, tx_key))
        return self._next_to_charger()

    def _next_to_charger(self) -> list[Action]:
        if self.to_charger:
            return []
        if self.upstream_calls:
            msg_id, action, text, tx_key = self.upstream_calls.popleft()
            origin = "upstream"
        elif self.edge_calls:
            msg_id, action, text, tx_key = self.edge_calls.popleft()
            origin = "edge"
        else:
            return []
        self.to_charger[msg_id] = _ChargerPending(origin, action, self.clock() + self.settings.charger_call_timeout,
                                                  self.epoch, tx_key)
        return [SendCharger(text)]

    def _live_reply(self, pending: _UpPending, frame: CallResult | CallError) -> list[Action]:
        call = pending.call
        if isinstance(frame, CallError):
            return [SendCharger(frame.text)]
        actions: list[Action] = []
        p = frame.payload
        info = p.get("idTagInfo") or p.get("idTokenInfo")
        id_tag = id_token_of(call.payload)
        if isinstance(info, dict) and id_tag:
            row = self.authorizer.learn(id_tag, info)
            if row:
                actions.append(Persist([("auth_cache", row)], wait=False))
        decided = pending.decided
        if decided is not None:
            return actions + self._decided_reply(call, frame, decided)
        uid = self._card_of(call) if call.action in ("StartTransaction", "TransactionEvent") else None
        if uid is not None and (call.action == "StartTransaction" or call.payload.get("eventType") == "Started"):
            # authority "upstream": upstream has decided; record the session and hold for a known card
            status = (info or {}).get("status", "Accepted")
            upstream_id = p.get("transactionId") if call.action == "StartTransaction" else None
            tx = self._start_record(call, uid, upstream_id if isinstance(upstream_id, int) else 0, status)
            return actions + self._ask(_Asked(call, "upstream_start", upstream_reply=frame), "decide", {
                "uid": uid, "charger_id": self.charger_id, "version": self.version, "kind": "start", "tx": tx,
                "upstream_status": status})
        if self.version == "1.6" and call.action == "StartTransaction":
            upstream_id = p.get("transactionId")
            local = self.new_tx_id()
            status = (info or {}).get("status")
            self.tx_map[local] = upstream_id if isinstance(upstream_id, int) else 0
            actions.append(Persist([observe.start_op_16(self.charger_id, local, call.payload, offline=False,
                                                        upstream_tx_id=self.tx_map[local],
                                                        upstream_status=status)]))
            actions.append(SendCharger(result_text(frame.msg_id, {**p, "transactionId": local})))
            return actions
        if self.version == "1.6" and call.action == "StopTransaction":
            self._forget_tx(call.payload.get("transactionId"))
        if call.action in _SESSION_ACTIONS:
            actions.append(Persist([]))  # what was recorded on the way up is durable before the charger hears
        actions.append(SendCharger(frame.text))
        return actions

    def _decided_reply(self, call: Call, frame: CallResult, decided: dict) -> list[Action]:
        """Upstream's answer to a forwarded start of a card the edge decided: upstream's ids, the edge's status."""
        p = frame.payload
        if call.action == "StartTransaction":
            local = decided["tx_id"]
            upstream_id = p.get("transactionId")
            upstream_id = upstream_id if isinstance(upstream_id, int) else 0
            self.tx_map[local] = upstream_id
            info = {**(p.get("idTagInfo") or {}), "status": decided["status"]}
            return [Persist([("tx_map", {"id": local, "upstream_tx_id": upstream_id,
                                         "upstream_status": (p.get("idTagInfo") or {}).get("status")})]),
                    SendCharger(result_text(frame.msg_id, {**p, "transactionId": local, "idTagInfo": info}))]
        if "idTokenInfo" in p or call.payload.get("idToken"):
            info = {**(p.get("idTokenInfo") or {}), "status": decided["status"]}
            return [Persist([]), SendCharger(result_text(frame.msg_id, {**p, "idTokenInfo": info}))]
        return [Persist([]), SendCharger(frame.text)]

    # -- replay ----------------------------------------------------------------------------------------
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
        self.up_pending[frame.msg_id] = _UpPending("replay", frame, self.clock() + self.settings.call_timeout,
                                                   item=item, sent_text=text)
        return [SendUpstream(text)]

    def _replay_reply(self, pending: _UpPending, frame: CallResult | CallError) -> list[Action]:
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
        return call_text(call.msg_id, call.action, {**call.payload, "transactionId": upstream_id})

    def _from_upstream_text(self, call: Call) -> str:
        p = call.payload
        if call.action == "RemoteStopTransaction":
            local = self._u2l(p.get("transactionId"))
            if local is not None:
                return call_text(call.msg_id, call.action, {**p, "transactionId": local})
        elif call.action == "SetChargingProfile":
            profile = p.get("csChargingProfiles") or {}
            local = self._u2l(profile.get("transactionId"))
            if local is not None:
                return call_text(call.msg_id, call.action,
                                 {**p, "csChargingProfiles": {**profile, "transactionId": local}})
        return call.text


__all__ = ["ChargerLink", "LinkSettings", "LinkState", "QueueItem", "SendCharger", "SendUpstream", "Persist",
           "CloseCharger", "ResetUpstream", "EdgeCallDone", "Action", "DOWN", "REPLAYING", "LIVE", "dumps"]
