"""The asyncio shell around `ChargerLink`: the chargers' WebSocket server and one upstream link per charger.

Handshake: the charger id is the last path segment, percent-decoded; security profiles 1 and 2 check HTTP
Basic credentials against the stored hash (401 otherwise); unknown ids are refused unless allowed. In proxy
mode the upstream link is opened during the handshake so that the upstream's subprotocol choice can be
mirrored to the charger; if upstream is away the charger is still served (answered locally) unless strict.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from edge import billing, local_list, store_ops
from edge.actions import (
    Ask,
    CloseCharger,
    EdgeCallDone,
    LinkSettings,
    LinkState,
    Persist,
    QueueItem,
    ResetUpstream,
    SendCharger,
    SendUpstream,
)
from edge.controller import ChargerLink
from edge.security import basic_auth_header, check_password, parse_basic_auth
from edge.wire import SUBPROTOCOLS, VERSION_SUBPROTOCOL

if TYPE_CHECKING:
    from edge.daemon import Edge

log = logging.getLogger(__name__)


def charger_id_from_path(path: str) -> str:
    """The charger identity: the last non-empty path segment, percent-decoded (query string ignored)."""
    segments = [s for s in path.split("?", 1)[0].split("/") if s]
    return unquote(segments[-1]) if segments else ""


def offered_subprotocols(headers: Headers) -> list[str]:
    return [p.strip() for value in headers.get_all("Sec-WebSocket-Protocol") for p in value.split(",") if p.strip()]


def _refuse(status: HTTPStatus, text: str, headers: dict[str, str] | None = None) -> Response:
    h = Headers({"Content-Type": "text/plain; charset=utf-8", "Connection": "close"})
    for k, v in (headers or {}).items():
        h[k] = v
    body = (text + "\n").encode()
    h["Content-Length"] = str(len(body))
    return Response(status.value, status.phrase, h, body)


class ChargerServer:
    """Serves chargers for one `Edge`."""

    def __init__(self, edge: Edge):
        self.edge = edge
        self.cfg = edge.cfg
        self.sessions: dict[str, ChargerSession] = {}

    # -- handshake -------------------------------------------------------------------------------------
    async def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        charger_id = charger_id_from_path(request.path)
        if not charger_id:
            return _refuse(HTTPStatus.NOT_FOUND, "connect to /ocpp/<charger-id>")
        known = self.cfg.ocpp.chargers.get(charger_id)
        if self.cfg.ocpp.security_profile >= 1:
            creds = parse_basic_auth(request.headers.get("Authorization"))
            stored = known.password_hash if known is not None else ""
            ok = (creds is not None and check_password(creds[1], stored) and creds[0] == charger_id)
            if not ok:
                self.edge.metrics.errors["auth"] += 1
                log.warning("charger %r refused: wrong or missing password", charger_id)
                return _refuse(HTTPStatus.UNAUTHORIZED, "wrong or missing credentials",
                               {"WWW-Authenticate": 'Basic realm="sitekeeper", charset="UTF-8"'})
        elif known is None and not self.cfg.ocpp.allow_unknown_chargers:
            self.edge.metrics.errors["unknown_charger"] += 1
            return _refuse(HTTPStatus.FORBIDDEN, f"unknown charger {charger_id!r}")
        offered = [p for p in offered_subprotocols(request.headers) if p in SUBPROTOCOLS]
        if offered_subprotocols(request.headers) and not offered:
            return _refuse(HTTPStatus.BAD_REQUEST, "no supported OCPP subprotocol (ocpp1.6, ocpp2.0.1)")
        conn.sk_charger_id = charger_id  # type: ignore[attr-defined]
        conn.sk_upstream = None  # type: ignore[attr-defined]
        conn.sk_subprotocol = offered[0] if offered else "ocpp1.6"  # type: ignore[attr-defined]
        if self.cfg.upstream.mode == "proxy":
            up = await self.open_upstream(charger_id, offered or ["ocpp1.6"])
            if up is None and self.cfg.upstream.strict:
                return _refuse(HTTPStatus.BAD_GATEWAY, "upstream CSMS unreachable (strict mode)")
            if up is not None:
                conn.sk_upstream = up  # type: ignore[attr-defined]
                conn.sk_subprotocol = up.subprotocol or conn.sk_subprotocol  # type: ignore[attr-defined]
        return None

    def select_subprotocol(self, conn: ServerConnection, subprotocols: list[str]) -> str | None:
        chosen = getattr(conn, "sk_subprotocol", None)
        return chosen if chosen in subprotocols else None

    async def open_upstream(self, charger_id: str, subprotocols: list[str]) -> ClientConnection | None:
        ucfg = self.cfg.upstream
        url = ucfg.url.rstrip("/") + "/" + quote(charger_id, safe="")
        headers = {}
        creds = ucfg.chargers.get(charger_id)
        if creds and creds.password:
            headers["Authorization"] = basic_auth_header(charger_id, creds.password)
        ssl_ctx = None
        if url.startswith("wss://"):
            ssl_ctx = ssl.create_default_context(cafile=ucfg.ca_file or None)
        try:
            ws = await connect(url, subprotocols=subprotocols, additional_headers=headers,  # type: ignore[arg-type]
                               ssl=ssl_ctx, proxy=None, open_timeout=min(5.0, ucfg.call_timeout),
                               max_size=2**20, ping_interval=20, user_agent_header="sitekeeper")
        except Exception as e:  # refused, unreachable, TLS, HTTP status: all mean 'not now'
            log.info("upstream for %s unreachable: %s", charger_id, e)
            return None
        if ws.subprotocol not in subprotocols:
            log.warning("upstream for %s chose subprotocol %r, not one of %s", charger_id, ws.subprotocol,
                        subprotocols)
            await ws.close()
            return None
        return ws

    # -- connection ------------------------------------------------------------------------------------
    async def handler(self, conn: ServerConnection) -> None:
        charger_id: str = conn.sk_charger_id  # type: ignore[attr-defined]
        version = SUBPROTOCOLS[conn.sk_subprotocol]  # type: ignore[attr-defined]
        old = self.sessions.get(charger_id)
        if old is not None:
            log.info("charger %s reconnected: closing its previous connection", charger_id)
            await old.close("replaced by a new connection")
        session = ChargerSession(self, conn, charger_id, version, conn.sk_upstream)  # type: ignore[attr-defined]
        self.sessions[charger_id] = session
        try:
            await session.run()
        finally:
            if self.sessions.get(charger_id) is session:
                del self.sessions[charger_id]


class ChargerSession:
    """One charger's connection: feeds its link and carries out the actions, one event at a time."""

    def __init__(self, server: ChargerServer, ws: ServerConnection, charger_id: str, version: str,
                 upstream: ClientConnection | None):
        self.server = server
        self.edge = server.edge
        self.ws = ws
        self.charger_id = charger_id
        self.version = version
        self.up: ClientConnection | None = None
        self._initial_upstream = upstream
        self.lock = asyncio.Lock()
        self.calls: dict[str, asyncio.Future] = {}
        self.link: ChargerLink | None = None
        self._tasks: list[asyncio.Task] = []

    def load_state(self) -> LinkState:
        db, cid = self.edge.store.db, self.charger_id
        state = LinkState()
        state.queue = [QueueItem(r["seq"], r["msg_id"], r["action"], r["frame"], r["tx_id"]) for r in db.query(
            "SELECT seq, msg_id, action, frame, tx_id FROM upstream_queue WHERE charger_id = ? ORDER BY seq",
            [cid])]
        state.replay = {r["key"]: (r["frame"], bool(r["pending"])) for r in db.query(
            "SELECT key, frame, pending FROM replay_state WHERE charger_id = ?", [cid])}
        rows = list(db.query(
            "SELECT id, upstream_tx_id, stopped_at IS NOT NULL AS stopped FROM transactions WHERE charger_id = ?"
            " AND ocpp_version = '1.6' AND (stopped_at IS NULL OR id IN"
            " (SELECT tx_id FROM upstream_queue WHERE charger_id = ? AND tx_id IS NOT NULL))", [cid, cid]))
        state.tx_map = {r["id"]: r["upstream_tx_id"] for r in rows}
        state.stopped_tx = {r["id"] for r in rows if r["stopped"]}
        state.billed_tx = {r["tx_key"] for r in db.query(
            "SELECT tx_key FROM transactions WHERE charger_id = ? AND stopped_at IS NULL"
            " AND card_kind = 'commercial' AND hold_minor > 0", [cid])}
        state.open_tx_keys = {r["tx_key"] for r in db.query(
            "SELECT tx_key FROM transactions WHERE charger_id = ? AND ocpp_version != '1.6'"
            " AND stopped_at IS NULL", [cid])}
        return state

    async def run(self) -> None:
        edge = self.edge
        await edge.store.flush()  # what an earlier connection of this charger queued must be visible
        cfg = edge.cfg
        settings = LinkSettings(standalone=cfg.upstream.mode == "standalone", strict=cfg.upstream.strict,
                                heartbeat_interval=cfg.ocpp.heartbeat_interval,
                                call_timeout=cfg.upstream.call_timeout)
        self.link = ChargerLink(self.charger_id, self.version, settings, edge.authorizer, edge.new_tx_id,
                                self.load_state())
        edge.store.write_soon(lambda c: c.execute(
            "INSERT INTO chargers (id, ocpp_version, first_seen, last_seen, connected) VALUES (?, ?, ?, ?, 1)"
            " ON CONFLICT (id) DO UPDATE SET connected = 1, ocpp_version = excluded.ocpp_version,"
            " last_seen = excluded.last_seen", (self.charger_id, self.version, *[edge.now()] * 2)))
        log.info("charger %s connected (OCPP %s)", self.charger_id, self.version)
        if cfg.billing.push_local_list and (settings.standalone or cfg.billing.authority == "edge"):
            self._tasks.append(asyncio.create_task(self._local_list_loop()))
        if not settings.standalone:
            if self._initial_upstream is not None:
                # Up before the charger's first frame is read, so that frame goes upstream, not answered here.
                await self._attach_upstream(self._initial_upstream)
            self._tasks.append(asyncio.create_task(self._upstream_loop()))
        try:
            async for message in self.ws:
                edge.metrics.frames["c>e"] += 1
                edge.journal.add(self.charger_id, "c>e", message)
                await self.feed(self.link.from_charger, message)
        except ConnectionClosed:
            pass
        finally:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(BaseException):
                    await task
            if self.up is not None:
                await self.up.close()
            for fut in self.calls.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("charger disconnected"))
            edge.store.write_soon(lambda c: c.execute(
                "UPDATE chargers SET connected = 0, last_seen = ? WHERE id = ?", (edge.now(), self.charger_id)))
            log.info("charger %s disconnected", self.charger_id)

    async def close(self, reason: str) -> None:
        await self.ws.close(1000, reason[:120])

    async def feed(self, fn: Any, *args: Any) -> None:
        async with self.lock:
            await self.execute(fn(*args))

    async def call(self, action: str, payload: dict, timeout: float = 30.0) -> dict:
        """Send a CALL of the edge's own to this charger and return its answer (raises on CALLERROR)."""
        assert self.link is not None
        fut = asyncio.get_running_loop().create_future()
        async with self.lock:
            msg_id, actions = self.link.call(action, payload)
            self.calls[msg_id] = fut
            await self.execute(actions)
        done = await asyncio.wait_for(fut, timeout)
        if done.error is not None:
            raise RuntimeError(f"{action}: {done.error.code}: {done.error.description}")
        return done.result

    async def execute(self, actions: list) -> None:
        edge = self.edge
        for a in actions:
            if isinstance(a, SendCharger):
                edge.metrics.frames["e>c"] += 1
                if not edge.journal.passed_through(self.charger_id, a.text, "u>c"):
                    edge.journal.add(self.charger_id, "e>c", a.text)
                with contextlib.suppress(ConnectionClosed):
                    await self.ws.send(a.text)
            elif isinstance(a, SendUpstream):
                if self.up is None:
                    continue
                edge.metrics.frames["e>u"] += 1
                if not edge.journal.passed_through(self.charger_id, a.text, "c>u"):
                    edge.journal.add(self.charger_id, "e>u", a.text)
                with contextlib.suppress(ConnectionClosed):
                    await self.up.send(a.text)
            elif isinstance(a, Persist):
                ops = a.ops
                if a.wait:
                    await edge.store.write(lambda c, ops=ops: store_ops.apply(c, ops))
                else:
                    edge.store.write_soon(lambda c, ops=ops: store_ops.apply(c, ops))
            elif isinstance(a, CloseCharger):
                log.warning("closing charger %s: %s", self.charger_id, a.reason)
                await self.ws.close(1011, a.reason[:120])
            elif isinstance(a, ResetUpstream):
                log.warning("upstream link of %s reset: %s", self.charger_id, a.reason)
                if self.up is not None:
                    await self.up.close(1011, a.reason[:120])
            elif isinstance(a, Ask):
                fn = billing.decide if a.kind == "decide" else billing.running
                try:
                    result = await edge.store.write(lambda c, fn=fn, data=a.data: fn(c, **data))
                except Exception:
                    log.exception("billing %s failed for %s", a.kind, self.charger_id)
                    edge.metrics.errors["billing"] += 1
                    result = {"known": False, "stop": False}
                await self.execute(self.link.answered(a.ask_id, result))  # type: ignore[union-attr]
            elif isinstance(a, EdgeCallDone):
                fut = self.calls.pop(a.msg_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(a)

    async def _local_list_loop(self) -> None:
        """Keep the charger's local authorization list at the site's version (see `edge.local_list`)."""
        await asyncio.sleep(1.0)  # after the charger's BootNotification
        known: int | None = None
        first = True
        while True:
            if first or known != self.edge.list_version:
                known = await local_list.sync(self, None if first else known)
                first = False
                if known is None:
                    return  # the charger has no local list
            async with self.edge.list_changed:
                await self.edge.list_changed.wait()

    async def _attach_upstream(self, ws: ClientConnection) -> None:
        self.up = ws
        self.edge.upstream_links += 1
        log.info("upstream link of %s up", self.charger_id)
        await self.feed(self.link.upstream_up)  # type: ignore[union-attr]

    async def _upstream_loop(self) -> None:
        """Read the upstream link (already attached if the handshake opened it); reconnect with backoff."""
        assert self.link is not None
        ucfg = self.edge.cfg.upstream
        delay = ucfg.reconnect_min
        subprotocol = VERSION_SUBPROTOCOL[self.version]
        while True:
            if self.up is None:
                ws = await self.server.open_upstream(self.charger_id, [subprotocol])
                if ws is None:
                    if ucfg.strict:
                        await self.close("upstream CSMS unreachable (strict mode)")
                        return
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, ucfg.reconnect_max)
                    continue
                delay = ucfg.reconnect_min
                await self._attach_upstream(ws)
            ws = self.up
            try:
                async for message in ws:
                    self.edge.metrics.frames["u>e"] += 1
                    self.edge.journal.add(self.charger_id, "u>e", message)
                    await self.feed(self.link.from_upstream, message)
            except ConnectionClosed:
                pass
            finally:
                self.up = None
                self.edge.upstream_links -= 1
            log.info("upstream link of %s down", self.charger_id)
            await self.feed(self.link.upstream_down)
