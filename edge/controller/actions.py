"""What the local controller asks its shell to do (actions), and the small records it keeps.

Shared by `edge.controller` and its parts (`edge.controller.site_cards`, `edge.controller.replay`); the shell
(`edge.ocpp.session`) carries the actions out in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from edge.controller.records import StoreOp, TxStart
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
    # the end of a session answered by the edge: the session (its tx key) whose final cost the shell reads once
    # the Persist before this action is committed, and adds as `totalCost` (2.0.1 TransactionEvent Ended,
    # I03.FR.02) or tells after (1.6 StopTransaction: FinalCost, `edge.controller.costs`)
    total_cost_of: str | None = None


@dataclass(slots=True)
class SendUpstream:
    text: str


@dataclass(slots=True)
class Persist:
    ops: list[StoreOp]
    wait: bool = True  # the following actions must not happen before these are durable
    later: bool = False  # (not waited for) may share a commit with others for `store.background_delay` s


@dataclass(slots=True)
class CloseCharger:
    reason: str


@dataclass(slots=True)
class ResetUpstream:
    reason: str


@dataclass(slots=True)
class Decide:
    """Billing's decision for a card the site knows (`edge.billing.decide`); for `kind` "start", with the
    session's start record `tx`, which billing writes with its hold. `upstream_status`: upstream decided
    already (authority "upstream"): record and hold, do not overrule."""

    uid: str
    charger_id: str
    version: str
    kind: str  # "authorize" or "start"
    tx: TxStart | None = None
    upstream_status: str | None = None
    price_texts: bool = False  # the charger shows the price: an accepted priced card's tariff texts with it


@dataclass(slots=True)
class RunningCost:
    """What a session on a hold has cost so far (`edge.billing.running`): stop it at the hold?"""

    charger_id: str
    tx_key: str
    pending: tuple = ()  # the meter rows that asked, perhaps not committed yet (they wait to share a commit)


@dataclass(slots=True)
class Register:
    """May this charger work here (standalone, `ocpp.new_chargers` not "accept")? Asked at its BootNotification:
    a charger listed in the config or approved by the owner is; a new one waits for the owner (`policy`
    "pending": answered Pending, "reject": Rejected) and is recorded as waiting."""

    charger_id: str
    policy: str


@dataclass(slots=True)
class Registered:
    """The answer to `Register`: the BootNotification's status (Accepted, Pending, Rejected)."""

    status: str


@dataclass(slots=True)
class Decision:
    """The answer to `Decide`. `known` False: the card went away meanwhile (treated as any unknown card)."""

    known: bool
    status: str = "Invalid"
    tx_id: int | None = None  # start: the session's id (1.6: the transactionId the charger gets)
    hold_minor: int = 0  # start: the amount held for the session (0: nothing to watch)
    repeat: bool = False  # the same start seen again: answer with the first one's decision
    expiry: str | None = None  # the card's validity end (1.6 expiryDate, 2.0.1 cacheExpiryDateTime)
    group: str | None = None  # the card's group (1.6 parentIdTag, 2.0.1 groupIdToken; edge.billing.groups)
    # a priced card accepted: the tariff for its display, ((language, text), ...), the display's own first
    price_texts: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class Running:
    """The answer to `RunningCost`: whether the hold is used up (the edge stops the session), and the cost so
    far (major units) at the latest meter reading (Wh), for the charger's display."""

    stop: bool
    cost: float | None = None
    meter_wh: int | None = None


@dataclass(slots=True)
class Ask:
    """Run `question` in its own store transaction; feed its answer (`Decision` for `Decide`, `Running` for
    `RunningCost`) to `answered(ask_id, answer)`."""

    ask_id: int
    question: Decide | RunningCost | Register


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


class Sent(Enum):
    """Why a CALL sent upstream is awaited (`UpPending.kind`)."""

    LIVE = "live"  # the charger waits for the answer
    LATE = "late"  # it did not come in time: the charger was answered locally; the answer is still used
    REPLAY = "replay"  # queued or replayed: nobody waits


@dataclass(slots=True)
class UpPending:
    """A CALL sent upstream and not answered yet. `deadline`: when a live one goes late; `stall_at`: when
    the link is taken for failed and reset."""

    kind: Sent
    call: Call
    deadline: float
    stall_at: float = float("inf")
    item: Any = None  # replay: QueueItem or the replay_state key
    sent_text: str = ""
    decided: Decision | None = None  # the edge's own decision for a card it knows (authority "edge")


class Waits(Enum):
    """What a call waits on billing for (`Asked.kind`)."""

    AUTHORIZE = "authorize"  # an Authorize of a known card: answer with billing's status
    START = "start"  # a start of a known card: the edge decides, records and holds
    UPSTREAM_START = "upstream_start"  # upstream decided a known card's start: record and hold
    RUNNING = "running"  # meter values of a session on a hold: stop it there?
    REGISTER = "register"  # a BootNotification of a charger not accepted yet: may it work here?


@dataclass(slots=True)
class Asked:
    call: Call
    kind: Waits
    upstream_reply: CallResult | None = None
    tx_key: str | None = None
    sent: bool = False  # the call went upstream already (its answer is late, or the link went down)


class Origin(Enum):
    """Who made a CALL toward the charger."""

    UPSTREAM = "upstream"  # upstream's: its answer goes back up
    EDGE = "edge"  # the edge's own: its answer ends in `EdgeCallDone`


@dataclass(slots=True)
class ChargerPending:
    origin: Origin
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
    new_chargers: str = "accept"  # standalone: "accept", or "pending" / "reject" until the owner approves
    cost_messages: bool = False  # tell the charger the cost (edge.controller.costs) when the edge answers
    # current limits are set (`edge.operations.current_limits`): an EV's charging needs and schedule (ISO 15118)
    # are Accepted, and its session gets a charging profile within them
    smart_charging: bool = False


@dataclass
class LinkState:
    """What the shell loads from the store when a charger connects (empty for a new charger)."""

    queue: list[QueueItem] = field(default_factory=list)
    replay: dict[str, tuple[str, bool]] = field(default_factory=dict)  # key → (frame, pending)
    tx_map: dict[int, int | None] = field(default_factory=dict)  # 1.6: edge id → upstream id (None: not yet)
    stopped_tx: set[int] = field(default_factory=set)  # 1.6: of those, the ones whose Stop the edge has seen
    open_tx_keys: set[str] = field(default_factory=set)  # 2.0.1 transactions the store already has
    billed_tx: set[str] = field(default_factory=set)  # open sessions on a hold (their cost is watched)
    accepted: bool = False  # the site has accepted this charger before (listed, approved or let in)
