"""The web app in a process of its own, so that page work (queries, templates, HTTP) never holds up the
chargers: in one process the two would take turns on Python's one interpreter lock, and a charger's answer
would wait for a page.

- `WebProcess` (the daemon's side): starts the web process, answers it over the bridge (`edge.web.bridge`),
  waits until it listens, starts it again if it dies, passes SIGHUP on, and stops it with the daemon. The web
  process dies with the daemon, even a `kill -9`ed one (the kernel's parent-death signal).
- `main` (the web process): its own read and write connections to the site's database, the site's billing
  settings, and the daemon seen through the bridge (`RemoteSite`); then uvicorn, at a lower CPU priority than
  the daemon (the chargers come first on a busy machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from edge.config import Config, ConfigError, load
from edge.events import EventBus
from edge.web.bridge import Bridge, BridgeServer

log = logging.getLogger(__name__)
NICENESS = 10  # the web process's, above the daemon's own
RESTART_AFTER = 1.0  # seconds before a web process that died is started again


# -- the web process ----------------------------------------------------------------------------------------

class _Charger:
    """A connected charger, its calls made by the daemon (`exchange`: all that operations ask of one)."""

    def __init__(self, bridge: Bridge, charger_id: str, version: str):
        self.bridge, self.charger_id, self.version = bridge, charger_id, version

    async def exchange(self, action: str, payload: dict, timeout: float = 30.0) -> tuple[dict | None, dict | None]:
        result, error = await self.bridge.call("exchange", charger=self.charger_id, action=action, payload=payload,
                                               timeout=timeout)
        return result, error


class _Chargers:
    """The site's chargers (`edge.operations.chargers.Chargers`) as the daemon has them."""

    def __init__(self, bridge: Bridge):
        self.bridge = bridge

    def connected(self, charger_id: str) -> _Charger | None:
        version = self.bridge.ask("connected", charger=charger_id)
        return None if version is None else _Charger(self.bridge, charger_id, version)


class _Taps:
    def __init__(self, bridge: Bridge):
        self.bridge = bridge

    async def handle(self, tap: Any) -> dict:
        return await self.bridge.call("tap", reader=tap.reader, uid=tap.uid, at=tap.at)

    async def start_for(self, tap_ref: str, charger_id: str, connector: int) -> dict:
        return await self.bridge.call("tap_start", tap_ref=tap_ref, charger=charger_id, connector=connector)

    async def stop_for(self, tap_ref: str, charger_id: str, connector: int) -> dict:
        return await self.bridge.call("tap_stop", tap_ref=tap_ref, charger=charger_id, connector=connector)


class _Metrics:
    def __init__(self, bridge: Bridge):
        self.bridge = bridge

    def render(self) -> str:
        return self.bridge.ask("metrics")


class RemoteSite:
    """The running daemon as the web process sees it (`edge.web.app.Site`): its config and database of its
    own, the rest asked over the bridge."""

    def __init__(self, cfg: Config, store: Any, bridge: Bridge):
        self.cfg, self.store, self.bridge = cfg, store, bridge
        self.chargers = _Chargers(bridge)
        self.taps = _Taps(bridge)
        self.metrics = _Metrics(bridge)
        self.events = EventBus()  # the daemon's events, published again here (`relay_events`)
        self.web_port = cfg.web.port

    def health(self) -> dict:
        return self.bridge.ask("health")

    def connected(self, charger_id: str) -> _Charger | None:
        return self.chargers.connected(charger_id)

    async def relay_events(self) -> None:
        while True:
            with contextlib.suppress(OSError, ValueError):
                async for event in self.bridge.events():
                    self.events.publish(event)
            await asyncio.sleep(0.5)  # the daemon is restarting its end: ask again


def _die_with_parent(parent: int) -> None:
    """Be killed when the daemon ends, however it ends (Linux's PR_SET_PDEATHSIG; elsewhere, nothing)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it ended before the above took hold
        os._exit(0)


def main(cfg: Config, bridge_path: str, parent: int, verbose: bool) -> None:
    """The web process (started by `WebProcess`)."""
    _die_with_parent(parent)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    from edge.billing import sessions as billing
    from edge.store.sqlite import Store

    billing.configure(billing.settings_from_config(cfg))
    site = RemoteSite(cfg, Store.open(cfg.store.path, create=False), Bridge(bridge_path))
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        runner.run(_serve(site))


async def _serve(site: RemoteSite) -> None:
    import uvicorn

    from edge.web.app import build_app

    cfg = site.cfg
    site.store.start()
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, _reload, site)
    tls = {"ssl_certfile": cfg.web.tls_cert, "ssl_keyfile": cfg.web.tls_key} if cfg.web.tls_cert else {}
    app = build_app(site)
    server = uvicorn.Server(uvicorn.Config(app, host=cfg.web.host, port=cfg.web.port,
                                           log_level="warning", lifespan="off", access_log=False,
                                           timeout_graceful_shutdown=5, **tls))  # open event streams: 5 s at a stop
    relay = asyncio.create_task(site.relay_events())
    background = [relay] + ([asyncio.create_task(app.state.pay_desk.run())] if app.state.pay_desk else [])
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
            raise SystemExit(f"web server could not start on {cfg.web.host}:{cfg.web.port}")
        await asyncio.sleep(0.02)
    site.web_port = server.servers[0].sockets[0].getsockname()[1]
    await site.bridge.call("ready", port=site.web_port)
    await serving
    for task in background:
        task.cancel()
    await site.store.aclose()


def _reload(site: RemoteSite) -> None:
    """SIGHUP, passed on by the daemon: the same config file again (the daemon says what changed)."""
    from edge import reload as config_reload
    from edge.billing import sessions as billing

    if not site.cfg.source:
        return
    try:
        new = load(site.cfg.source)
        billing.configure(billing.settings_from_config(new))
    except (ConfigError, OSError):
        return  # the daemon has said why, and keeps the running config: so does this
    config_reload.apply(site.cfg, new)


# -- the daemon's side --------------------------------------------------------------------------------------

class WebProcess:
    """The web process of a running daemon: `port = await WebProcess(edge).start()`, `await stop()`."""

    def __init__(self, edge: Any):
        self.edge = edge
        self.folder = tempfile.mkdtemp(prefix="sitekeeper-web-")  # mode 0700: only this user reaches the bridge
        self.path = str(Path(self.folder) / "bridge.sock")
        self.proc: Any = None
        self.port = 0
        self._ready: asyncio.Future | None = None
        self._watch: asyncio.Task | None = None
        self.bridge = BridgeServer(edge, self._listening)

    def _listening(self, port: int) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(port)

    async def start(self, spawned: asyncio.Event | None = None) -> int:
        await self.bridge.start(self.path)
        self.port = await self._spawn(spawned)
        self._watch = asyncio.create_task(self._keep_running())
        return self.port

    async def _spawn(self, spawned: asyncio.Event | None = None) -> int:
        cfg = self.edge.cfg
        self._ready = asyncio.get_running_loop().create_future()
        verbose = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
        self.proc = multiprocessing.get_context("spawn").Process(
            target=main, args=(cfg, self.path, os.getpid(), verbose), name="sitekeeper-web")
        self.proc.start()
        if spawned is not None:
            spawned.set()
        while not self._ready.done():
            if not self.proc.is_alive():
                raise OSError(f"the web server could not start on {cfg.web.host}:{cfg.web.port} (the log says why)")
            await asyncio.wait({self._ready}, timeout=0.05)
        return self._ready.result()

    async def _keep_running(self) -> None:
        """A web process that died is started again (on the same port), said in the log."""
        while True:
            await asyncio.sleep(0.5)
            if self.proc.is_alive():
                continue
            log.error("web: the web process ended (exit code %s); starting it again", self.proc.exitcode)
            await asyncio.sleep(RESTART_AFTER)
            with contextlib.suppress(OSError):
                await self._spawn()

    def reload(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            with contextlib.suppress(OSError):
                os.kill(self.proc.pid, signal.SIGHUP)

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        if self.proc is not None and self.proc.is_alive():
            self.proc.terminate()
            deadline = time.monotonic() + 10
            while self.proc.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self.proc.is_alive():
                self.proc.kill()
            self.proc.join(1)
        await self.bridge.close()
        shutil.rmtree(self.folder, ignore_errors=True)


async def start_web(edge: Any, spawned: asyncio.Event | None = None) -> tuple[WebProcess, int]:
    """The web app in a process of its own, once it listens: it and its port; `spawned` is set once its process
    is under way. (Here rather than beside the app: the daemon starts it without importing the web framework.)"""
    if edge.cfg.web.host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("web: %s:%d is open to the network: every /api/ route needs a token, and chargers fetch"
                    " firmware and upload logs here; give tokens only the role they need", edge.cfg.web.host,
                    edge.cfg.web.port)
    web = WebProcess(edge)
    try:
        return web, await web.start(spawned)
    except BaseException:
        await web.stop()
        raise
