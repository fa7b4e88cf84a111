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

Each charger's connection is a `ChargerSession` (`edge.ocpp.session`), which feeds the charger's link.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from http import HTTPStatus
from urllib.parse import quote, unquote

from edge.backoff import RateLimit
from edge.config import ChargerAuth
from edge.controller.wire import SUBPROTOCOLS
from edge.ocpp.queue_replay import QueueReplays
from edge.ocpp.session import ChargerSession, Site
from edge.ocpp.transport import Accept, Link, Refusal, Request, connect
from edge.operations import security_profiles
from edge.security import basic_auth_header, certificate_problem, check_password, parse_basic_auth

__all__ = ["ChargerServer", "ChargerSession", "Site", "charger_id_from_path"]

log = logging.getLogger(__name__)

HANDSHAKE_WAIT = 0.5  # seconds a charger's handshake waits for upstream's before it is answered locally
SERVED = ("ocpp1.6", "ocpp2.0.1")  # the subprotocols a charger may get (2.1 is parsed, not served)
PREFERRED_ID_LIMIT = 2**30  # upstream ids above this are not followed (chargers keep 1.6 ids in 32 bits)


def charger_id_from_path(path: str) -> str:
    """The charger identity: the last non-empty path segment, percent-decoded (query string ignored); ""
    for a path that names none (``/``, ``/ocpp``: a charger must not be called "ocpp")."""
    segments = [s for s in path.split("?", 1)[0].split("/") if s]
    if not segments or (len(segments) == 1 and segments[0].lower() == "ocpp"):
        return ""
    return unquote(segments[-1])


def offered_subprotocols(header: str | None) -> list[str]:
    return [p.strip() for p in (header or "").split(",") if p.strip()]


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
        refused = self._authenticate(request, charger_id, known)
        if isinstance(refused, Refusal):
            return refused
        asked = offered_subprotocols(request.headers.get("sec-websocket-protocol"))
        offered = [p for p in asked if p in SERVED]
        if asked and not offered:
            return Refusal(HTTPStatus.BAD_REQUEST, "no supported OCPP subprotocol (ocpp1.6, ocpp2.0.1)")
        subprotocol = offered[0] if offered else "ocpp1.6"
        session = ChargerSession(self, charger_id)
        self.arriving[charger_id] = session  # no replay on its behalf from now on
        await self.replays.stop(charger_id)  # before its new upstream link: the cloud must not see two at once
        if self.cfg.upstream.mode == "proxy" and self.connect_limit.try_take():
            # else the site is opening connections as fast as it may: the session's loop opens it in turn
            attempt = asyncio.create_task(self.open_upstream(charger_id, offered or ["ocpp1.6"],
                                                             session.upstream_link()))
            strict = self.cfg.upstream.strict
            # upstream's choice of subprotocol is mirrored only if it answers in time: a stalled uplink must
            # not hold the charger's own handshake (some give up after 5 s); strict mode waits, as it must
            await asyncio.wait({attempt}, timeout=None if strict else HANDSHAKE_WAIT)
            if not attempt.done():
                session.connecting = attempt  # the session attaches it when it comes
            elif attempt.result() is None and strict:
                self.left(session)
                return Refusal(HTTPStatus.BAD_GATEWAY, "upstream CSMS unreachable (strict mode)")
            elif attempt.result() is not None:
                session.up = session.pending_up
                subprotocol = attempt.result()
        session.version = SUBPROTOCOLS[subprotocol]
        session.task = asyncio.create_task(self.handler(session))  # runs once the upgrade is answered
        return Accept(session.ws, subprotocol if offered else None, abandon=session.abandon)

    def _authenticate(self, request: Request, charger_id: str, known: ChargerAuth | None) -> Refusal | int:
        """The profile the handshake shows (`security_profiles.of_connection`), or why it is refused: below the
        site's `ocpp.security_profile` or the charger's own, a client certificate not of this charger, an
        unknown charger where they are not let in. A connection at a profile the owner asked the charger to
        move to makes that its minimum."""
        site_profile = self.cfg.ocpp.security_profile
        own, upgrade = security_profiles.standing(self.site.store.db.conn, charger_id)
        need = max(site_profile, own)
        cert_ok = False
        if request.peer_cert is not None:
            serial = known.serial if known is not None and known.serial else charger_id
            problem = certificate_problem(request.peer_cert, serial, self.cfg.ocpp.cpo_name)
            if problem:
                self.site.metrics.errors["auth"] += 1
                log.warning("charger %r refused: %s", charger_id, problem)
                return Refusal(HTTPStatus.FORBIDDEN, "the client certificate is not this charger's")
            cert_ok = True
        creds = parse_basic_auth(request.headers.get("authorization"))
        stored = known.password_hash if known is not None else ""
        password_ok = creds is not None and check_password(creds[1], stored) and creds[0] == charger_id
        have = security_profiles.of_connection(request.tls, cert_ok, password_ok)
        if have < need:
            self.site.metrics.errors["auth"] += 1
            if need == 3 or (need == 2 and not request.tls):
                why = (f"security profile {need}: " + ("its client certificate is needed" if need == 3
                                                        else "connect over TLS (wss://)"))
                log.warning("charger %r refused: %s (it connected at profile %d)", charger_id, why, have)
                return Refusal(HTTPStatus.FORBIDDEN, why)
            why = ("not listed under [ocpp.chargers] (security profile 1/2 needs its password there)"
                   if known is None else "no password sent" if creds is None
                   else f"sent the user name {creds[0]!r}, not its own id" if creds[0] != charger_id
                   else "wrong password")
            log.warning("charger %r refused: %s", charger_id, why)
            return Refusal(HTTPStatus.UNAUTHORIZED, "wrong or missing credentials",
                           {"WWW-Authenticate": 'Basic realm="sitekeeper", charset="UTF-8"'})
        if known is None and not self.cfg.ocpp.allow_unknown_chargers and need in (0, 3):
            self.site.metrics.errors["unknown_charger"] += 1
            log.warning("charger %r refused: not listed under [ocpp.chargers]", charger_id)
            return Refusal(HTTPStatus.FORBIDDEN, f"unknown charger {charger_id!r}")
        if upgrade is not None and have >= upgrade:
            self.site.store.write_soon(lambda c: security_profiles.seen(c, charger_id, have))
            log.warning("charger %r connected at security profile %d, as asked: lower ones are refused from now"
                        " on", charger_id, have)
        return have

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
            why = "no answer in time" if isinstance(e, TimeoutError) else (str(e).strip() or type(e).__name__)
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
