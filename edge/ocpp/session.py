"""One charger's connection (`ChargerSession`): it feeds the charger's link (`edge.controller`) and carries
out its actions, one event at a time; it keeps the charger's upstream link, reconnecting with backoff, and
replays a queue on a charger's behalf when the charger is away (`replay_only`).

Events (a frame from either side, upstream up/down, a tick, the edge's own CALL) go to the link one at a time,
in arrival order. Most frames are carried out on the spot, inside the transport's callback: sends and
background writes need no waiting. When an action must wait (a commit before an answer, a billing decision),
a task carries out the rest, and events arriving meanwhile queue behind it (`_backlog`), so order is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, assert_never

from edge.backoff import STABLE_AFTER, Backoff, RateLimit
from edge.billing import price_text
from edge.clock import now_iso
from edge.config import Config
from edge.controller.actions import (
    LIVE,
    Action,
    Ask,
    CloseCharger,
    Decide,
    Decision,
    EdgeCallDone,
    Learned,
    LinkSettings,
    LinkState,
    Notice,
    Persist,
    QueueItem,
    Register,
    Registered,
    ResetUpstream,
    Running,
    RunningCost,
    SendCharger,
    SendUpstream,
)
from edge.controller.answers import with_total_cost
from edge.controller.authorize import Authorizer
from edge.controller.link import ChargerLink
from edge.controller.records import AuthCache, ChargerConnected, ChargerDisconnected
from edge.controller.wire import VERSION_SUBPROTOCOL, Call, CallResult, FrameError, call_error_text, parse
from edge.metrics import NOTICES, Metrics
from edge.ocpp import persist
from edge.ocpp.persist import ask_billing
from edge.ocpp.transport import Link
from edge.operations import current_limits, local_list, registrations
from edge.operations.local_list import ListWatch
from edge.store import reads
from edge.store.journal import Journal
from edge.store.sqlite import Store

log = logging.getLogger(__name__)


@dataclass
class Site:
    """What the charger server works with, made by the daemon: the config, the store and the journal, the
    counters, the authorization cache, the card-list version (for the chargers' local lists) and the first
    transaction id to give."""

    cfg: Config
    store: Store
    journal: Journal
    metrics: Metrics
    authorizer: Authorizer
    lists: ListWatch
    next_tx_id: int = 1



class Host(Protocol):
    """What a session needs of its server (`edge.ocpp.server.ChargerServer`)."""

    site: Site
    connect_limit: RateLimit
    upstream_links: int

    def new_tx_id(self, prefer: int | None = None) -> int: ...

    async def open_upstream(self, charger_id: str, subprotocols: list[str], link: Link) -> str | None: ...

    def left(self, session: ChargerSession) -> None: ...


def _text(data: bytes) -> str | bytes:
    """A received message as text (the very object the journal and the link then share); bytes if it is not
    UTF-8, for the link to refuse."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data


class ChargerSession:
    """One charger's connection: feeds its link and carries out the actions, one event at a time."""

    def __init__(self, server: Host, charger_id: str, headless: bool = False):
        self.server = server
        self.site = server.site
        self.charger_id = charger_id
        self.headless = headless  # no charger: replaying its queue on its behalf (`replay_only`)
        self.version = "1.6"
        self.ws = Link(self._from_charger, None)
        self.up: Link | None = None
        self.pending_up: Link | None = None
        self.connecting: asyncio.Task | None = None  # the handshake's upstream connect, still under way
        self.task: asyncio.Task | None = None
        self.calls: dict[str, asyncio.Future] = {}
        self.link: ChargerLink | None = None
        self.done = asyncio.Event()
        self._busy = True  # until `run` has built the link; events wait in the backlog meanwhile
        self._backlog: deque[tuple[Callable[..., list], tuple]] = deque()
        self._drainer: asyncio.Task | None = None
        self._tasks: list[asyncio.Task] = []

    def upstream_link(self) -> Link:
        self.pending_up = Link(self._from_upstream, None)
        return self.pending_up

    def abandon(self) -> None:
        """The charger went away during the handshake."""
        self.server.left(self)
        if self.task is not None:
            self.task.cancel()
        if self.connecting is not None:
            self.connecting.cancel()
        if self.pending_up is not None:
            self.pending_up.close()

    def load_state(self) -> LinkState:
        rows = reads.link_rows(self.site.store.db.conn, self.charger_id)
        tx = rows["transactions_16"]
        return LinkState(
            queue=[QueueItem(r["seq"], r["msg_id"], r["action"], r["frame"], r["tx_id"]) for r in rows["queue"]],
            replay={r["key"]: (r["frame"], bool(r["pending"])) for r in rows["replay"]},
            tx_map={r["id"]: r["upstream_tx_id"] for r in tx}, stopped_tx={r["id"] for r in tx if r["stopped"]},
            open_tx_keys=set(rows["open_201"]), billed_tx=set(rows["billed"]),
            accepted=rows["registration"] == "accepted" or self.charger_id in self.site.cfg.ocpp.chargers)

    def _cost_messages(self) -> bool:
        """Tell this charger the cost: set so under [ocpp.chargers.<id>], or (2.0.1) its device model says so."""
        listed = self.site.cfg.ocpp.chargers.get(self.charger_id)
        return bool(listed and listed.cost_messages) or \
            (self.version != "1.6" and reads.shows_cost(self.site.store.db.conn, self.charger_id))

    async def _new_link(self) -> ChargerLink:
        site = self.site
        await site.store.flush()  # what an earlier connection of this charger queued must be visible
        cfg = site.cfg
        settings = LinkSettings(standalone=cfg.upstream.mode == "standalone", strict=cfg.upstream.strict,
                                heartbeat_interval=cfg.ocpp.heartbeat_interval,
                                call_timeout=cfg.upstream.call_timeout, stall_timeout=cfg.upstream.stall_timeout,
                                new_chargers=cfg.ocpp.new_chargers, cost_messages=self._cost_messages(),
                                smart_charging=current_limits.enabled(cfg))
        return ChargerLink(self.charger_id, self.version, settings, site.authorizer, self.server.new_tx_id,
                           self.load_state())

    async def run(self) -> None:
        site = self.site
        cfg = site.cfg
        self.link = await self._new_link()
        settings = self.link.settings
        seen = [ChargerConnected(self.charger_id, self.version, now_iso())]
        site.store.write_soon(lambda c: persist.apply(c, seen))
        log.info("charger %s connected (OCPP %s)", self.charger_id, self.version)
        if cfg.billing.push_local_list and (settings.standalone or cfg.billing.authority == "edge"):
            self._tasks.append(asyncio.create_task(local_list.follow(self, self.site.store.db.conn, self.site.lists)))
        try:
            if not settings.standalone:
                if self.up is not None:
                    # Up before the charger's first frame is handled, so that frame goes upstream.
                    self._attached(self.up, first=True)
                self._tasks.append(asyncio.create_task(self._upstream_loop()))
            self._drainer = asyncio.create_task(self._drain([]))  # what arrived meanwhile, then live
            await self.ws.wait_closed()
            if self._drainer is not None:
                await asyncio.wait([self._drainer], timeout=30)
        finally:
            # First what must happen even if this task is cancelled meanwhile (nothing here awaits) ...
            links = self._let_go()
            for fut in self.calls.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("charger disconnected"))
            gone = [ChargerDisconnected(self.charger_id, now_iso())]
            site.store.write_soon(lambda c: persist.apply(c, gone))
            log.info("charger %s disconnected", self.charger_id)
            self.done.set()
            # ... then wait for the upstream side to be gone.
            await self._closed(links)

    def _let_go(self) -> list[Link]:
        """Stop this session's tasks and start closing its upstream links; the links, to wait for."""
        for task in self._tasks:
            task.cancel()
        links = [link for link in (self.up, self.pending_up) if link is not None]
        for link in links:
            link.close(1000, "charger disconnected" if not self.headless else "queue replayed")
        return links

    async def _closed(self, links: list[Link]) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        for link in links:
            await link.aclose()

    async def replay_only(self) -> bool:
        """No charger: connect upstream on its behalf, replay its queue, close. True if it all went up."""
        self.link = await self._new_link()
        self._drainer = asyncio.create_task(self._drain([]))
        await asyncio.sleep(self.server.connect_limit.delay())
        link = self.upstream_link()
        if await self.server.open_upstream(self.charger_id, [VERSION_SUBPROTOCOL[self.version]], link) is None:
            return False
        log.info("replaying the queue of %s upstream (the charger is not connected)", self.charger_id)
        self._attached(link)
        try:
            while not link.is_closed and not (self.link.state == LIVE and not self._busy):
                await asyncio.sleep(0.1)
            return self.link.state == LIVE
        finally:
            self.up = None
            self.server.upstream_links -= 1
            if self._drainer is not None:
                await asyncio.wait([self._drainer], timeout=10)
            await self._closed(self._let_go() + [link])

    async def close(self, reason: str) -> None:
        self.ws.close(1000, reason)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), 10)

    # -- events ------------------------------------------------------------------------------------------
    def _from_charger(self, data: bytes) -> None:
        message = _text(data)
        if b'"idTag"' in data or b'"idToken"' in data:  # it may name a card: the link's snapshot must be fresh
            self.site.lists.refresh(self.site.store.db.conn)
        self.site.metrics.frames["c>e"] += 1
        self.site.journal.add(self.charger_id, "c>e", message)
        self.submit(ChargerLink.from_charger, message)

    def _from_upstream(self, data: bytes) -> None:
        message = _text(data)
        self.site.metrics.frames["u>e"] += 1
        self.site.journal.add(self.charger_id, "u>e", message)
        if self.headless and self._refused_for_absent_charger(message):
            return
        self.submit(ChargerLink.from_upstream, message)

    def _refused_for_absent_charger(self, message: str | bytes) -> bool:
        """Replaying without the charger: upstream's own CALLs get an error at once, not silence."""
        try:
            frame = parse(message)
        except FrameError:
            return False
        if not isinstance(frame, Call) or self.up is None:
            return False
        text = call_error_text(frame.msg_id, "GenericError", "the charger is not connected to the site now")
        self.site.journal.add(self.charger_id, "e>u", text)
        self.up.send(text)
        return True

    def submit(self, fn: Callable[..., list], *args: Any) -> None:
        """Feed the link `fn(link, *args)` and carry out its actions, after every event before it."""
        if self._busy:
            self._backlog.append((fn, args))
            return
        actions = self._event(fn, args)
        i = 0
        try:
            for i, a in enumerate(actions):
                if not self._act(a):
                    self._busy = True
                    self._drainer = asyncio.create_task(self._drain(actions[i:]))
                    return
        except Exception:
            log.exception("charger %s: carrying out actions failed", self.charger_id)
            self._failed(actions[i:])

    def _event(self, fn: Callable[..., list], args: tuple) -> list:
        """The link's actions for one event; none if the link failed on it (see `_failed`)."""
        try:
            return fn(self.link, *args)
        except Exception:
            log.exception("charger %s: event %s failed", self.charger_id, getattr(fn, "__name__", fn))
            self._failed([], args[0] if fn is ChargerLink.from_charger and args else None)
            return []

    def _failed(self, left: list[Action], message: str | bytes | None = None) -> None:
        """Carrying out an event failed (the store refused a write, a bug): the charger still gets an answer to
        each CALL it waits on (CALLERROR InternalError, never silence), and its connection is closed, so that
        it reconnects to a link rebuilt from the store."""
        self.site.metrics.errors["internal"] += 1
        waiting = []
        for a in left:
            if isinstance(a, SendCharger):
                with contextlib.suppress(FrameError):
                    frame = parse(a.text)
                    if isinstance(frame, CallResult):
                        waiting.append(frame.msg_id)
        if message is not None:
            with contextlib.suppress(FrameError):
                frame = parse(message)
                if isinstance(frame, Call):
                    waiting.append(frame.msg_id)
        for msg_id in waiting:
            text = call_error_text(msg_id, "InternalError", "the site could not record this message; send it again")
            self.site.journal.add(self.charger_id, "e>c", text)
            self.ws.send(text)
        log.error("charger %s: closing its connection after an internal error (it will reconnect)", self.charger_id)
        self.ws.close(1011, "internal error")

    async def _drain(self, actions: list) -> None:
        """Carry out `actions` (the first needs waiting), then the events that queued meanwhile."""
        try:
            while True:
                await self._execute(actions)
                if not self._backlog:
                    return
                actions = self._event(*self._backlog.popleft())
        finally:
            self._busy = False

    async def call(self, action: str, payload: dict, timeout: float = 30.0) -> dict:
        """Send a CALL of the edge's own to this charger and return its answer (raises on CALLERROR)."""
        result, error = await self.exchange(action, payload, timeout)
        if error is not None:
            raise RuntimeError(f"{action}: {error['code']}: {error['description']}")
        return result or {}

    async def exchange(self, action: str, payload: dict, timeout: float = 30.0) -> tuple[dict | None, dict | None]:
        """Send a CALL of the edge's own to this charger: (its answer, None) or (None, its CALLERROR's code,
        description and details). Raises TimeoutError, or ConnectionError if the charger goes away."""
        fut = asyncio.get_running_loop().create_future()

        def start(link: ChargerLink) -> list:
            msg_id, actions = link.call(action, payload)
            self.calls[msg_id] = fut
            return actions

        self.submit(start)
        done = await asyncio.wait_for(fut, timeout)
        if done.error is not None:
            return None, {"code": done.error.code, "description": done.error.description,
                          "details": done.error.details}
        return done.result, None

    # -- actions -----------------------------------------------------------------------------------------
    def _act(self, a: Action) -> bool:
        """Carry out an action on the spot; False if it must be awaited (`_execute`): a Persist with wait, an Ask.
        One `match` over every kind of action (`edge.controller.actions.Action`)."""
        site = self.site
        match a:
            case SendCharger(text=text, total_cost_of=tx_key):
                cost = None if tx_key is None else reads.total_cost(site.store.db.conn, self.charger_id, tx_key,
                                                                    site.cfg.billing.currency_exponent)
                if tx_key is not None and self.version != "1.6":
                    text = with_total_cost(text, cost)
                site.metrics.frames["e>c"] += 1
                if not site.journal.passed_through(self.charger_id, text, "u>c"):
                    site.journal.add(self.charger_id, "e>c", text)
                self.ws.send(text)
                if tx_key is not None and self.version == "1.6" and cost is not None:  # a charger that hears it
                    self._tell_final(tx_key, cost)
            case SendUpstream(text=text):
                if self.up is not None:
                    site.metrics.frames["e>u"] += 1
                    if not site.journal.passed_through(self.charger_id, text, "c>u"):
                        site.journal.add(self.charger_id, "e>u", text)
                    self.up.send(text)
            case Persist(ops=ops, wait=False, later=later):
                site.store.write_soon(lambda c: persist.apply(c, ops), later)
            case Persist() | Ask():
                return False
            case EdgeCallDone(msg_id=msg_id):
                fut = self.calls.pop(msg_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(a)
            case CloseCharger(reason=reason):
                log.warning("closing charger %s: %s", self.charger_id, reason)
                self.ws.close(1011, reason)
            case ResetUpstream(reason=reason):
                log.warning("upstream link of %s reset: %s", self.charger_id, reason)
                if self.up is not None:
                    self.up.close(1011, reason)
            case Learned(row=row):
                site.authorizer.remember(row)
                learned = [AuthCache(row)]
                site.store.write_soon(lambda c: persist.apply(c, learned))
            case Notice(counter=counter, text=text):
                counted = NOTICES[counter]
                if isinstance(counted, tuple):
                    site.metrics.errors[counted[1]] += 1
                else:
                    site.metrics.counts[counted] += 1
                if text:
                    log.warning("charger %s: %s", self.charger_id, text)
            case _:
                assert_never(a)
        return True

    async def _execute(self, actions: list[Action]) -> None:
        """Carry out `actions` in order, awaiting those that must be (a commit before what follows, billing)."""
        site = self.site
        for i, a in enumerate(actions):
            try:
                if self._act(a):
                    continue
                if isinstance(a, Persist):
                    await site.store.write(lambda c, ops=a.ops: persist.apply(c, ops))
            except Exception:
                log.exception("charger %s: carrying out actions failed", self.charger_id)
                self._failed(actions[i:])
                return
            match a:
                case Ask(ask_id=ask_id, question=question):
                    try:
                        if isinstance(question, Register):
                            result = Registered(await site.store.write(functools.partial(
                                registrations.decide, charger_id=question.charger_id, policy=question.policy,
                                listed=question.charger_id in site.cfg.ocpp.chargers)))
                        elif isinstance(question, RunningCost) and (within := persist.running_within_hold(
                                site.store.db.conn, question)) is not None:
                            result = within
                        else:
                            result = await site.store.write(lambda c, q=question: ask_billing(c, q))
                    except Exception:
                        log.exception("billing failed for %s (%s)", self.charger_id, question)
                        site.metrics.errors["billing"] += 1
                        result = (Decision(known=False) if isinstance(question, Decide) else Registered("Pending")
                                  if isinstance(question, Register) else Running(stop=False))
                    await self._execute(self.link.answered(ask_id, result))  # type: ignore[union-attr]

    def _tell_final(self, tx_key: str, cost: float) -> None:
        """A 1.6 session billed: its FinalCost for the display, with its receipt's address as a QR code when
        phones can reach it (`pay.public_url`)."""
        texts, receipt = price_text.final_texts(self.site.store.db.conn, self.charger_id, tx_key)
        base = self.site.cfg.pay.public_url.rstrip("/")
        qr = f"{base}/receipt/{receipt}" if base and receipt else None
        # after the actions under way (this runs while they are carried out): fed to the link as an event of its own
        asyncio.get_running_loop().call_soon(self.submit, lambda link: link.tell_final(tx_key, cost, texts, qr))

    def _attached(self, link: Link, first: bool = False) -> None:
        """`link` is up: replay starts. `first`: ahead of whatever the charger sent during the handshake."""
        self.up = link
        self.server.upstream_links += 1
        log.info("upstream link of %s up", self.charger_id)
        if first:
            self._backlog.appendleft((ChargerLink.upstream_up, ()))
        else:
            self.submit(ChargerLink.upstream_up)

    async def _upstream_loop(self) -> None:
        """Watch the upstream link (attached already if the handshake opened it); reconnect with backoff,
        within the site's rate of new connections."""
        ucfg = self.site.cfg.upstream
        loop = asyncio.get_running_loop()
        backoff = Backoff(ucfg.reconnect_min, ucfg.reconnect_max)
        subprotocol = VERSION_SUBPROTOCOL[self.version]
        if self.connecting is not None:  # the handshake's attempt: attach it if it comes with our subprotocol
            attempt, self.connecting = self.connecting, None
            chosen = await attempt
            if chosen is not None and chosen == subprotocol:
                assert self.pending_up is not None
                self._attached(self.pending_up)
            elif chosen is not None:
                log.warning("upstream for %s answered with %s after the charger had %s: reconnecting",
                            self.charger_id, chosen, subprotocol)
                assert self.pending_up is not None
                self.pending_up.close(1000, "subprotocol mismatch")
            else:
                await asyncio.sleep(backoff.next())
        while True:
            if self.up is None:
                await asyncio.sleep(self.server.connect_limit.delay())
                link = self.upstream_link()
                if await self.server.open_upstream(self.charger_id, [subprotocol], link) is None:
                    if ucfg.strict:
                        await self.close("upstream CSMS unreachable (strict mode)")
                        return
                    await asyncio.sleep(backoff.next())
                    continue
                self._attached(link)
            up = self.up
            assert up is not None
            since = loop.time()
            try:
                await up.wait_closed()
            finally:
                self.up = None
                self.server.upstream_links -= 1
            log.info("upstream link of %s down", self.charger_id)
            answered = self.link is not None and self.link.answers > 0
            self.submit(ChargerLink.upstream_down)
            if answered and loop.time() - since >= STABLE_AFTER:
                backoff.reset()  # it worked for a while: the next failure starts again from the shortest pause
            await asyncio.sleep(backoff.next())
