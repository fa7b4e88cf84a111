"""What the local controller asks its shell to do (actions), and the small records it keeps.

Shared by `edge.controller` and its parts (`edge.controller.site_cards`, `edge.controller.replay`); the shell
(`edge.ocpp.session`) carries the actions out in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from edge.controller.wire import Call, CallError, CallResult


class Upstream(Enum):
    """The upstream link's state, as the controller sees it (proxy mode; see `edge.controller.link`)."""

    DOWN = "down"  # no link: the edge answers and queues
    REPLAYING = "replaying"  # a link: sending what was queued, one at a time; the edge still answers
    LIVE = "live"  # a link and nothing queued: frames pass through


DOWN, REPLAYING, LIVE = Upstream.DOWN, Upstream.REPLAYING, Upstream.LIVE


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


@dataclass(slots=True)
class Notice:
    """Something the owner or the operator should know: count it under `counter` (/metrics) and, if `text`,
    log it as a warning."""

    counter: str
    text: str = ""


@dataclass(slots=True)
class Learned:
    """Upstream's word on a card (`Authorizer.learn`'s row): remember it in the site's authorization cache,
    in memory and in the store. The controller never changes that shared cache itself."""

    row: dict


Action = SendCharger | SendUpstream | Persist | CloseCharger | ResetUpstream | EdgeCallDone | Ask | Notice | Learned


@dataclass(slots=True)
class QueueItem:
    seq: int
    msg_id: str
    action: str
    frame: str
    tx_id: int | None = None  # 1.6: the edge's transaction id the frame refers to


@dataclass(slots=True)
class UpPending:
    """A CALL sent upstream and not answered yet. `kind`: "live" (the charger waits for the answer), "late"
    (it did not come in time: the charger was answered locally, the answer is still awaited and used), or
    "replay" (queued or replayed; nobody waits). `deadline`: when a live one goes late; `stall_at`: when
    the link is taken for failed and reset."""

    kind: str
    call: Call
    deadline: float
    stall_at: float = float("inf")
    item: Any = None  # replay: QueueItem or the replay_state key
    sent_text: str = ""
    decided: dict | None = None  # the edge's own decision for a card it knows (authority "edge")


@dataclass(slots=True)
class Asked:
    call: Call
    kind: str  # "authorize", "start", "upstream_start" (upstream decided; record and hold), "running"
    upstream_reply: CallResult | None = None
    tx_key: str | None = None
    sent: bool = False  # the call went upstream already (its answer is late, or the link went down)


@dataclass(slots=True)
class ChargerPending:
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
    call_timeout: float = 10.0  # an answer later than this: the charger is answered locally
    stall_timeout: float = 60.0  # no answer to an outstanding CALL for this long: the link has failed
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
