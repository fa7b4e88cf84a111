"""The asyncio shell around `ChargerLink`: the chargers' WebSocket server and one upstream link per charger.

Handshake (`ChargerServer.prepare`, run by `edge.ocpp.transport` before the upgrade): the charger id is the last
path segment, percent-decoded; security profiles 1 and 2 check HTTP Basic credentials against the stored hash
(401 otherwise); unknown ids are refused unless allowed. In proxy mode the upstream link is opened during the
handshake so that the upstream's subprotocol choice can be mirrored to the charger; if upstream is away the
charger is still served (answered locally) unless strict.

Upstream connections back off (`edge.backoff`): exponential with jitter per charger, reset only once a link
has answered a call and stayed up; and the whole site opens at most `upstream.max_connects_per_second`. A
charger that is away but has a queue gets it replayed all the same (`replay_only`, `upstream.replay_without_charger`):
the edge connects on its behalf, replays, and closes; the charger coming back ends that first.

Events (a frame from either side, upstream up/down, a tick, the edge's own CALL) go to the link one at a time,
in arrival order. Most frames are carried out on the spot, inside the transport's callback: sends and
background writes need no waiting. When an action must wait (a commit before an answer, a billing decision),
a task carries out the rest, and events arriving meanwhile queue behind it (`_backlog`), so order is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, assert_never
from urllib.parse import quote, unquote

from edge.backoff import STABLE_AFTER, Backoff, RateLimit
from edge.billing import sessions as billing
from edge.clock import now_iso
from edge.config import Config
from edge.controller.actions import (
    LIVE,
    Action,
    Ask,
    CloseCharger,
    EdgeCallDone,
    Learned,
    LinkSettings,
    LinkState,
    Notice,
    Persist,
    QueueItem,
    ResetUpstream,
    SendCharger,
    SendUpstream,
)
from edge.controller.authorize import Authorizer
from edge.controller.link import ChargerLink
from edge.controller.wire import SUBPROTOCOLS, VERSION_SUBPROTOCOL, Call, FrameError, call_error_text, parse
from edge.metrics import NOTICES, Metrics
from edge.ocpp import persist
from edge.ocpp.queue_replay import QueueReplays
from edge.ocpp.transport import Accept, Link, Refusal, Request, connect
from edge.operations import local_list
from edge.operations.local_list import ListWatch
from edge.security import basic_auth_header, certificate_problem, check_password, parse_basic_auth
from edge.store import reads
from edge.store.journal import Journal
from edge.store.sqlite import Store

log = logging.getLogger(__name__)

PREFERRED_ID_LIMIT = 2**30  # upstream ids above this are not followed (chargers keep 1.6 ids in 32 bits)


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


def charger_id_from_path(path: str) -> str:
    """The charger identity: the last non-empty path segment, percent-decoded (query string ignored)."""
    segments = [s for s in path.split("?", 1)[0].split("/") if s]
    return unquote(segments[-1]) if segments else ""


def offered_subprotocols(header: str | None) -> list[str]:
    return [p.strip() for p in (header or "").split(",") if p.strip()]


def _text(data: bytes) -> str | bytes:
    """A received message as text (the very object the journal and the link then share); bytes if it is not
    UTF-8, for the link to refuse."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data


class ChargerServer:
    """Serves chargers for one `Edge`."""

    def __init__(self, site: Site):
        self.site = site
        self.cfg = site.cfg
        self.upstream_links = 0  # open upstream links (the gauge and /healthz)
        self.connect_limit = RateLimit(site.cfg.upstream.max_connects_per_second)  # new upstream links, site-wide
        self._next_tx = site.next_tx_id
        self.sessions: dict[str, ChargerSession] = {}
        self.arriving: dict[str, ChargerSession] = {}  # in the handshake, not yet in `sessions`
        self.replays = QueueReplays(self, lambda charger_id: ChargerSession(self, charger_id, headless=True))

    # -- handshake -------------------------------------------------------------------------------------
    async def prepare(self, request: Request) -> Accept | Refusal:
        charger_id = charger_id_from_path(request.path)
        if not charger_id:
            return Refusal(HTTPStatus.NOT_FOUND, "connect to /ocpp/<charger-id>")
        known = self.cfg.ocpp.chargers.get(charger_id)
        if self.cfg.ocpp.security_profile == 3:
            serial = known.serial if known is not None and known.serial else charger_id
            problem = certificate_problem(request.peer_cert, serial, self.cfg.ocpp.cpo_name)
            if problem:
                self.site.metrics.errors["auth"] += 1
                log.warning("charger %r refused: %s", charger_id, problem)
                return Refusal(HTTPStatus.FORBIDDEN, "the client certificate is not this charger's")
            if known is None and not self.cfg.ocpp.allow_unknown_chargers:
                self.site.metrics.errors["unknown_charger"] += 1
                log.warning("charger %r refused: not listed under [ocpp.chargers]", charger_id)
                return Refusal(HTTPStatus.FORBIDDEN, f"unknown charger {charger_id!r}")
        elif self.cfg.ocpp.security_profile >= 1:
            creds = parse_basic_auth(request.headers.get("authorization"))
            stored = known.password_hash if known is not None else ""
            ok = (creds is not None and check_password(creds[1], stored) and creds[0] == charger_id)
            if not ok:
                self.site.metrics.errors["auth"] += 1
                log.warning("charger %r refused: wrong or missing password", charger_id)
                return Refusal(HTTPStatus.UNAUTHORIZED, "wrong or missing credentials",
                               {"WWW-Authenticate": 'Basic realm="sitekeeper", charset="UTF-8"'})
        elif known is None and not self.cfg.ocpp.allow_unknown_chargers:
            self.site.metrics.errors["unknown_charger"] += 1
            return Refusal(HTTPStatus.FORBIDDEN, f"unknown charger {charger_id!r}")
        asked = offered_subprotocols(request.headers.get("sec-websocket-protocol"))
        offered = [p for p in asked if p in SUBPROTOCOLS]
        if asked and not offered:
            return Refusal(HTTPStatus.BAD_REQUEST, "no supported OCPP subprotocol (ocpp1.6, ocpp2.0.1)")
        subprotocol = offered[0] if offered else "ocpp1.6"
        session = ChargerSession(self, charger_id)
        self.arriving[charger_id] = session  # no replay on its behalf from now on
        await self.replays.stop(charger_id)  # before its new upstream link: the cloud must not see two at once
        if self.cfg.upstream.mode == "proxy" and self.connect_limit.try_take():
            # else the site is opening connections as fast as it may: the session's loop opens it in turn
            chosen = await self.open_upstream(charger_id, offered or ["ocpp1.6"], session.upstream_link())
            if chosen is None and self.cfg.upstream.strict:
                self.left(session)
                return Refusal(HTTPStatus.BAD_GATEWAY, "upstream CSMS unreachable (strict mode)")
            if chosen is not None:
                session.up = session.pending_up
                subprotocol = chosen
        session.version = SUBPROTOCOLS[subprotocol]
        session.task = asyncio.create_task(self.handler(session))  # runs once the upgrade is answered
        return Accept(session.ws, subprotocol if offered else None, abandon=session.abandon)

    async def open_upstream(self, charger_id: str, subprotocols: list[str], link: Link) -> str | None:
        """Connect `link` to upstream for this charger; the subprotocol chosen, or None (not now)."""
        ucfg = self.cfg.upstream
        url = ucfg.url.rstrip("/") + "/" + quote(charger_id, safe="")
        headers = {}
        creds = ucfg.chargers.get(charger_id)
        if creds and creds.password:
            headers["Authorization"] = basic_auth_header(charger_id, creds.password)
        ssl_ctx = None
        if url.startswith("wss://"):
            ssl_ctx = ssl.create_default_context(cafile=ucfg.ca_file or None)
            cert, key = (creds.cert_file, creds.key_file) if creds and creds.cert_file else (ucfg.cert_file,
                                                                                              ucfg.key_file)
            if cert:
                ssl_ctx.load_cert_chain(cert, key or None)
        try:
            chosen = await connect(url, link, subprotocols=subprotocols, headers=headers, ssl_context=ssl_ctx,
                                   timeout=min(5.0, ucfg.call_timeout), compression=ucfg.compression)
        except Exception as e:  # refused, unreachable, TLS, HTTP status: all mean 'not now'
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # the connector turned our cancellation into an error
                raise asyncio.CancelledError from e
            self.site.metrics.counts['sitekeeper_upstream_connects_total{result="failed"}'] += 1
            why = "no answer in time" if isinstance(e, TimeoutError) else (str(e) or type(e).__name__)
            log.info("upstream for %s unreachable: %s", charger_id, why)
            return None
        self.site.metrics.counts['sitekeeper_upstream_connects_total{result="ok"}'] += 1
        if chosen not in subprotocols:
            log.warning("upstream for %s chose subprotocol %r, not one of %s", charger_id, chosen, subprotocols)
            link.close()
            return None
        return chosen

    # -- connection ------------------------------------------------------------------------------------
    async def handler(self, session: ChargerSession) -> None:
        charger_id = session.charger_id
        old = self.sessions.get(charger_id)
        if old is not None:
            log.info("charger %s reconnected: closing its previous connection", charger_id)
            await old.close("replaced by a new connection")
        self.sessions[charger_id] = session
        self.left(session)
        try:
            await session.run()
        finally:
            if self.sessions.get(charger_id) is session:
                del self.sessions[charger_id]

    def new_tx_id(self, prefer: int | None = None) -> int:
        """A transaction id no session of this site has had. `prefer` (upstream's id for a live 1.6 start) is
        taken when it is above every id given so far, so that charger and cloud show the same number and
        frames need no rewriting; ids given later stay above it."""
        if prefer is not None and self._next_tx <= prefer < PREFERRED_ID_LIMIT:
            self._next_tx = prefer
        tx_id = self._next_tx
        self._next_tx += 1
        return tx_id

    def connected(self, charger_id: str) -> ChargerSession | None:
        """The charger's session if it is connected now (`edge.operations.chargers.Chargers`)."""
        return self.sessions.get(charger_id)

    def left(self, session: ChargerSession) -> None:
        """`session` is past its handshake (registered, refused or abandoned)."""
        if self.arriving.get(session.charger_id) is session:
            del self.arriving[session.charger_id]

    async def close_all(self, timeout: float = 10.0) -> None:
        await self.replays.stop_all()
        sessions = list(self.sessions.values())
        for s in sessions:
            s.ws.close(1001, "edge shutting down")
        if sessions:
            await asyncio.wait([asyncio.ensure_future(s.done.wait()) for s in sessions], timeout=timeout)


class ChargerSession:
    """One charger's connection: feeds its link and carries out the actions, one event at a time."""

    def __init__(self, server: ChargerServer, charger_id: str, headless: bool = False):
        self.server = server
        self.site = server.site
        self.charger_id = charger_id
        self.headless = headless  # no charger: replaying its queue on its behalf (`replay_only`)
        self.version = "1.6"
        self.ws = Link(self._from_charger, None)
        self.up: Link | None = None
        self.pending_up: Link | None = None
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
        if self.pending_up is not None:
            self.pending_up.close()

    def load_state(self) -> LinkState:
        rows = reads.link_rows(self.site.store.db.conn, self.charger_id)
        tx = rows["transactions_16"]
        return LinkState(
            queue=[QueueItem(r["seq"], r["msg_id"], r["action"], r["frame"], r["tx_id"]) for r in rows["queue"]],
            replay={r["key"]: (r["frame"], bool(r["pending"])) for r in rows["replay"]},
            tx_map={r["id"]: r["upstream_tx_id"] for r in tx}, stopped_tx={r["id"] for r in tx if r["stopped"]},
            open_tx_keys=set(rows["open_201"]), billed_tx=set(rows["billed"]))

    async def _new_link(self) -> ChargerLink:
        site = self.site
        await site.store.flush()  # what an earlier connection of this charger queued must be visible
        cfg = site.cfg
        settings = LinkSettings(standalone=cfg.upstream.mode == "standalone", strict=cfg.upstream.strict,
                                heartbeat_interval=cfg.ocpp.heartbeat_interval,
                                call_timeout=cfg.upstream.call_timeout, stall_timeout=cfg.upstream.stall_timeout)
        return ChargerLink(self.charger_id, self.version, settings, site.authorizer, self.server.new_tx_id,
                           self.load_state())

    async def run(self) -> None:
        site = self.site
        cfg = site.cfg
        self.link = await self._new_link()
        settings = self.link.settings
        seen = [("charger_connected", {"charger_id": self.charger_id, "version": self.version, "ts": now_iso()})]
        site.store.write_soon(lambda c: persist.apply(c, seen))
        log.info("charger %s connected (OCPP %s)", self.charger_id, self.version)
        if cfg.billing.push_local_list and (settings.standalone or cfg.billing.authority == "edge"):
            self._tasks.append(asyncio.create_task(self._local_list_loop()))
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
            gone = [("charger_disconnected", {"charger_id": self.charger_id, "ts": now_iso()})]
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
        try:
            for i, a in enumerate(actions):
                if not self._act(a):
                    self._busy = True
                    self._drainer = asyncio.create_task(self._drain(actions[i:]))
                    return
        except Exception:
            log.exception("charger %s: carrying out actions failed", self.charger_id)
            self.site.metrics.errors["internal"] += 1

    def _event(self, fn: Callable[..., list], args: tuple) -> list:
        """The link's actions for one event; none (logged, counted) if the link failed on it."""
        try:
            return fn(self.link, *args)
        except Exception:
            log.exception("charger %s: event %s failed", self.charger_id, getattr(fn, "__name__", fn))
            self.site.metrics.errors["internal"] += 1
            return []

    async def _drain(self, actions: list) -> None:
        """Carry out `actions` (the first needs waiting), then the events that queued meanwhile."""
        try:
            while True:
                try:
                    await self._execute(actions)
                except Exception:
                    log.exception("charger %s: carrying out actions failed", self.charger_id)
                    self.site.metrics.errors["internal"] += 1
                if not self._backlog:
                    return
                actions = self._event(*self._backlog.popleft())
        finally:
            self._busy = False

    async def call(self, action: str, payload: dict, timeout: float = 30.0) -> dict:
        """Send a CALL of the edge's own to this charger and return its answer (raises on CALLERROR)."""
        fut = asyncio.get_running_loop().create_future()

        def start(link: ChargerLink) -> list:
            msg_id, actions = link.call(action, payload)
            self.calls[msg_id] = fut
            return actions

        self.submit(start)
        done = await asyncio.wait_for(fut, timeout)
        if done.error is not None:
            raise RuntimeError(f"{action}: {done.error.code}: {done.error.description}")
        return done.result

    # -- actions -----------------------------------------------------------------------------------------
    def _act(self, a: Action) -> bool:
        """Carry out an action on the spot; False if it must be awaited (`_execute`): a Persist with wait, an Ask.
        One `match` over every kind of action (`edge.controller.actions.Action`)."""
        site = self.site
        match a:
            case SendCharger(text=text):
                site.metrics.frames["e>c"] += 1
                if not site.journal.passed_through(self.charger_id, text, "u>c"):
                    site.journal.add(self.charger_id, "e>c", text)
                self.ws.send(text)
            case SendUpstream(text=text):
                if self.up is not None:
                    site.metrics.frames["e>u"] += 1
                    if not site.journal.passed_through(self.charger_id, text, "c>u"):
                        site.journal.add(self.charger_id, "e>u", text)
                    self.up.send(text)
            case Persist(ops=ops, wait=False):
                site.store.write_soon(lambda c: persist.apply(c, ops))
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
                learned = [("auth_cache", row)]
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
        for a in actions:
            if self._act(a):
                continue
            match a:
                case Persist(ops=ops):
                    await site.store.write(lambda c, ops=ops: persist.apply(c, ops))
                case Ask(ask_id=ask_id, kind=kind, data=data):
                    fn = billing.decide if kind == "decide" else billing.running
                    try:
                        result = await site.store.write(lambda c, fn=fn, data=data: fn(c, **data))
                    except Exception:
                        log.exception("billing %s failed for %s", kind, self.charger_id)
                        site.metrics.errors["billing"] += 1
                        result = {"known": False, "stop": False}
                    await self._execute(self.link.answered(ask_id, result))  # type: ignore[union-attr]

    async def _local_list_loop(self) -> None:
        """Keep the charger's local authorization list at the site's version (see `edge.operations.local_list`)."""
        await asyncio.sleep(1.0)  # after the charger's BootNotification
        known: int | None = None
        first = True
        while True:
            if first or known != self.site.lists.version:
                known = await local_list.sync(self, self.site.store.db.conn, None if first else known)
                first = False
                if known is None:
                    return  # the charger has no local list
            await self.site.lists.wait_changed()

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
