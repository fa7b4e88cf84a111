"""`sitekeeper run`: the edge daemon. Wires config, store, authorizer, charger server and web app together:
the chargers on its asyncio loop, the web app in a process of its own (`edge.web.process`) that asks the daemon
over a bridge, so that a charger's answer does not wait for a page to be made. Shuts down cleanly on SIGTERM/SIGINT, and re-reads its config file on SIGHUP (see
`edge.reload` for what can change on the fly).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import time

from edge import health as health_checks
from edge import reload as config_reload
from edge.billing import cards
from edge.billing import sessions as billing
from edge.clock import parse_ts
from edge.config import Config, ConfigError, OcppConfig, load
from edge.controller.authorize import Authorizer, CacheEntry, SiteCard
from edge.controller.link import ChargerLink
from edge.controller.wire import precompile_schemas
from edge.events import EventBus
from edge.gpio import Feedback
from edge.metrics import Metrics
from edge.notify import keep_alive, notify
from edge.ocpp.server import ChargerServer, Site
from edge.ocpp.transport import serve
from edge.operations import tokens
from edge.operations.current_limits import CurrentLimits
from edge.operations.local_list import ListWatch
from edge.rfid.loop import run_reader
from edge.rfid.taps import TapService
from edge.store import reads
from edge.store.guard import Lock, check_writable
from edge.store.journal import Journal
from edge.store.outbox import status
from edge.store.sqlite import Store
from edge.web.process import start_web

log = logging.getLogger("sitekeeper")


def server_tls(ocpp: OcppConfig, side: bool = False) -> ssl.SSLContext | None:
    """The TLS context toward the chargers on `ocpp.port` (security profiles 2 and 3; None for 0 and 1), or
    with `side` on `ocpp.tls_port` (chargers raised to profile 2 or 3 beside a profile 0 or 1 site)."""
    if ocpp.security_profile < 2 and not side:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(ocpp.tls_cert, ocpp.tls_key)
    if ocpp.security_profile == 3:  # TLS with client certificates: no valid one, no handshake
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=ocpp.client_ca)
    elif ocpp.client_ca:  # a charger raised to profile 3 shows its certificate; the others need none
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(cafile=ocpp.client_ca)
    return ctx


class Edge:
    """The running site controller. `await edge.start()`, then `await edge.stop()`."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        check_writable(cfg.store.path)  # refuse at once, naming the owner, rather than chargers left unanswered
        self.lock = Lock(cfg.store.path, "edge")  # one edge per database
        if cfg.store.path != ":memory:":
            self.lock.acquire()
        self.store = Store.open(cfg.store.path)
        self.store.background_delay = cfg.store.background_delay
        self._store_problem: str | None = None
        self.metrics = Metrics()
        self.journal = Journal(self.store, cfg.store.journal_max_rows, cfg.store.journal_max_age_days)
        cache = {tag: CacheEntry(status, float(expires or 0))
                 for tag, status, expires in reads.auth_cache(self.store.db.conn)}
        billing.configure(billing.settings_from_config(cfg))
        self.store.write_now(billing.reconcile)  # sessions that stopped but were not billed (a crash between)
        self.authorizer = Authorizer(accept_unknown_standalone=cfg.site.accept_unknown_cards,
                                     offline_accept_unknown=cfg.upstream.offline_accept_unknown,
                                     cache_ttl_s=cfg.upstream.auth_cache_ttl_hours * 3600, cache=cache,
                                     authority=cfg.billing.authority)
        # the site's cards, known to the authorizer as a snapshot renewed whenever the card list moves
        self.lists = ListWatch(self.store.db.conn, lambda c: self.authorizer.set_known(
            {uid: SiteCard(usable, None if where is None else frozenset(where), group)
             for uid, (usable, where, group) in cards.all_cards(c).items()}))
        self.chargers = ChargerServer(Site(cfg, self.store, self.journal, self.metrics, self.authorizer, self.lists,
                                           next_tx_id=reads.max_transaction_id(self.store.db.conn) + 1))
        self.limits = CurrentLimits(cfg, self.store, self.chargers)
        self.events = EventBus()
        self.feedback = Feedback(cfg.gpio)
        self.taps = TapService(cfg.reader, self.store, self.chargers, self.events, self.feedback)
        self.started = time.time()
        self._server = None
        self._tls: ssl.SSLContext | None = None  # toward the chargers; renewed in place by `reload`
        self._side = None  # the TLS port beside a profile 0/1 port (`ocpp.tls_port`), and its context
        self._side_tls: ssl.SSLContext | None = None
        self._web = None
        self._tasks: list[asyncio.Task] = []
        self.ocpp_port = cfg.ocpp.port
        self.web_port = cfg.web.port
        m = self.metrics
        m.gauge("sitekeeper_chargers_connected", "Chargers with an open connection",
                lambda: len(self.chargers.sessions))
        m.gauge("sitekeeper_upstream_links_up", "Upstream CSMS links that are open",
                lambda: self.chargers.upstream_links)
        m.gauge_group(self.upstream_queue, {
            "sitekeeper_upstream_queue_messages": ("Charger messages waiting to be replayed upstream", "messages"),
            "sitekeeper_upstream_queue_oldest_seconds": ("Age of the oldest message waiting for upstream",
                                                         "oldest_age_s"),
            "sitekeeper_upstream_queue_stale": ("1 if a message has waited longer than upstream.queue_alert_minutes",
                                                "stale"),
        })
        m.gauge_group(lambda: status(self.store.db.conn), {
            "sitekeeper_outbox_backlog": ("Records the cloud has not acknowledged yet", "backlog"),
            "sitekeeper_outbox_unsent": ("Records not yet sent to the broker", "unsent"),
            "sitekeeper_outbox_oldest_unsent_seconds": ("Age of the oldest record not yet sent", "oldest_unsent_age_s"),
            "sitekeeper_sync_connected": ("1 if cloud_sync is connected to the broker", "connected"),
            "sitekeeper_sync_last_ack_seq": ("Highest record sequence the cloud acknowledged", "last_ack_seq"),
        })
        m.gauge("sitekeeper_uptime_seconds", "Seconds since the daemon started", lambda: round(time.time() - self.started))

    def upstream_queue(self) -> dict:
        """What waits for upstream: messages, the chargers they are of, the oldest one's age, and whether that
        is past `upstream.queue_alert_minutes`."""
        count, oldest, chargers = reads.queue_summary(self.store.db.conn)
        ts = parse_ts(oldest) if oldest else None
        age = max(0, round(time.time() - ts.timestamp())) if ts is not None else 0
        return {"messages": count, "chargers": chargers, "oldest_age_s": age,
                "stale": age > self.cfg.upstream.queue_alert_minutes * 60}

    def health(self) -> dict:
        """`/healthz`: the store, the clock and the disk (not ok when the disk is all but full), the mode, chargers
        and upstream links; in proxy mode what waits for upstream, and alerts."""
        problem = self.store.problem()
        checks = [health_checks.clock(), health_checks.disk(self.store.path)]  # doctor's cheap ones
        out = {"ok": problem is None and all(c["status"] != "fail" for c in checks), "mode": self.cfg.upstream.mode,
               "store": {"path": self.store.path, "ok": problem is None, "problem": problem},
               "clock_synced": checks[0]["status"] == "ok", "checks": checks,
               "chargers_connected": len(self.chargers.sessions), "upstream_links_up": self.chargers.upstream_links}
        if self.cfg.upstream.mode == "proxy":
            queue = self.upstream_queue()
            out["upstream_queue"] = queue
            out["alerts"] = [f"{queue['messages']} message(s) of {', '.join(queue['chargers'])} waiting for upstream"
                             f" for {queue['oldest_age_s'] // 60} min"] if queue["stale"] else []
        return out

    def connected(self, charger_id: str) -> object | None:
        return self.chargers.connected(charger_id)

    def reload(self) -> None:
        """Re-read the config file (SIGHUP): take what may change on the fly, log what needs a restart; a file
        that does not load, or a certificate that does not, changes nothing."""
        if not self.cfg.source:
            log.warning("config reload: the edge runs on defaults (no --config file): nothing to re-read")
            return
        try:
            new = load(self.cfg.source)
            billing.settings_from_config(new)  # a bad amount or tariff stops the reload here
            if new.ocpp.security_profile != self.cfg.ocpp.security_profile:
                raise ConfigError("ocpp.security_profile: a new security profile needs a restart")
            server_tls(new.ocpp)  # a certificate that will not load stops the reload here
        except (ConfigError, ssl.SSLError, OSError) as e:
            log.error("config reload failed, the running config stays: %s", e)
            return
        live, restart = config_reload.changes(self.cfg, new)
        for ctx in (self._tls, self._side_tls):  # new handshakes use the renewed certificate; open connections
            if ctx is None:                    # keep theirs
                continue
            try:
                ctx.load_cert_chain(new.ocpp.tls_cert, new.ocpp.tls_key)
                if new.ocpp.client_ca:
                    ctx.load_verify_locations(cafile=new.ocpp.client_ca)
            except (ssl.SSLError, OSError) as e:  # the files changed again since they were checked
                log.error("config reload failed, the running config stays: %s", e)
                return
        config_reload.apply(self.cfg, new)
        if self._web is not None:
            self._web.reload()  # the web process reads the file again too
        log.info("config reloaded from %s; changed: %s%s", self.cfg.source, ", ".join(live) or "nothing",
                 f"; needs a restart (left as it was): {', '.join(restart)}" if restart else "")

    async def start(self) -> None:
        # the web process first: its interpreter starts and imports the web app while the chargers' side starts
        spawned = asyncio.Event()
        web = asyncio.create_task(start_web(self, spawned)) if self.cfg.web.port else None
        if web is not None:
            waiter = asyncio.create_task(spawned.wait())
            await asyncio.wait({web, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        try:
            await self._start_chargers_side()
        except BaseException:
            if web is not None:
                web.cancel()
                with contextlib.suppress(BaseException):
                    self._web = (await web)[0]
            raise
        if web is not None:
            self._web, self.web_port = await web
        mode = self.cfg.upstream.mode + (f" → {self.cfg.upstream.url}" if self.cfg.upstream.mode == "proxy" else "")
        scheme = "wss" if self.cfg.ocpp.security_profile >= 2 else "ws"
        log.info("sitekeeper edge: chargers at %s://%s:%d/ocpp/<charger-id> (%s); web at %s://%s:%d/;"
                 " database %s", scheme, self.cfg.ocpp.host, self.ocpp_port, mode,
                 "https" if self.cfg.web.tls_cert else "http", self.cfg.web.host, self.web_port, self.store.path)
        print(f"ready: ocpp={self.ocpp_port} web={self.web_port}", flush=True)

    async def _start_chargers_side(self) -> None:
        precompile_schemas()  # not on the first message of each kind, in the middle of traffic
        self.store.start()
        self._tls = server_tls(self.cfg.ocpp)
        self._server = await serve(self.chargers.prepare, self.cfg.ocpp.host, self.cfg.ocpp.port,
                                   ssl_context=self._tls, ping_interval=60,
                                   compression=self.cfg.ocpp.compression)
        self.ocpp_port = self._server.sockets[0].getsockname()[1]
        if self.cfg.ocpp.tls_port:
            self._side_tls = server_tls(self.cfg.ocpp, side=True)
            self._side = await serve(self.chargers.prepare, self.cfg.ocpp.host, self.cfg.ocpp.tls_port,
                                     ssl_context=self._side_tls, ping_interval=60,
                                     compression=self.cfg.ocpp.compression)
        self._tasks.append(asyncio.create_task(self._housekeeping()))
        self._tasks.append(asyncio.create_task(self._ticker()))
        self._tasks.append(asyncio.create_task(self.limits.run()))
        for name, rc in self.cfg.reader.items():
            if rc.backend != "sim":
                self._tasks.append(asyncio.create_task(run_reader(name, rc, self.taps.handle),
                                                       name=f"reader-{name}"))
        if self.cfg.store.path != ":memory:":  # the kiosk's and the CLI's token on this machine
            self.store.write_now(lambda c: tokens.write_local(c, tokens.local_path(self.cfg.store.path)))
            self.store.write_now(lambda c: tokens.write_local(c, tokens.kiosk_path(self.cfg.store.path), "kiosk",
                                                              "operator", 0o640))


    async def _ticker(self) -> None:
        """Time passes for every charger link with something waiting on a deadline (one timer per site)."""
        while True:
            await asyncio.sleep(1.0)
            for session in [*self.chargers.sessions.values(), *self.chargers.replays.running.values()]:
                link = session.link
                if link is not None and link.waiting:
                    session.submit(ChargerLink.tick)

    async def _housekeeping(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(2)
            ticks += 1
            self._watch_store()
            if self.cfg.upstream.mode == "proxy" and self.cfg.upstream.replay_without_charger:
                self.chargers.replays.start_due()
            self.lists.refresh(self.store.db.conn)  # cards changed (CLI, cloud_sync)?
            if ticks % 30 == 0:
                with contextlib.suppress(Exception):
                    await self.store.write(self.journal.prune)

    def _watch_store(self) -> None:
        """Say loudly, once, when the database file is deleted or replaced under the edge (a failed write is
        said by the store itself)."""
        problem = self.store.file_problem()
        if problem != self._store_problem:
            if problem is not None:
                log.error("STORE PROBLEM: %s", problem)
            self._store_problem = problem

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._side is not None:
            self._side.close()
        if self._server is not None:
            self._server.close()
            await self.chargers.close_all()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 10)
        if self._web is not None:
            await self._web.stop()
        self.feedback.close()
        self.journal.flush()
        await self.store.aclose()
        self.lock.release()


async def run(cfg: Config) -> None:
    edge = Edge(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, edge.reload)
    await edge.start()
    notify(f"READY=1\nSTATUS=chargers at port {edge.ocpp_port}, web at port {edge.web_port}")
    alive = asyncio.create_task(keep_alive())  # systemd's watchdog: from this loop, so a hung loop is restarted
    await stop.wait()
    log.info("shutting down")
    notify("STOPPING=1")
    alive.cancel()
    await edge.stop()
