"""The edge's web app (FastAPI): `/healthz`, `/metrics`, the JSON API and the owner's pages.

It runs in a process of its own (`edge.web.process`), with its own connections to the site's database: page
work never makes a charger wait. What it needs of the running daemon (`Site`: a charger's connection, a tap,
the health, the metrics, the live events) it asks over the bridge (`edge.web.bridge`)."""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel

from edge.config import Config
from edge.events import EventBus
from edge.money import UidError, normalise_uid
from edge.operations.chargers import Chargers
from edge.rfid import Tap
from edge.store import journal, reads
from edge.store.sqlite import Store
from edge.web import (
    card_pages,
    charger_pages,
    dashboard_pages,
    files_api,
    kiosk_api,
    limits_api,
    pages,
    pay_pages,
    payment_pages,
    profile_api,
    report_pages,
    session_pages,
    settings_pages,
    tariff_pages,
    user_pages,
)
from edge.web.auth import need
from edge.web.operations_api import register as register_operations

log = logging.getLogger(__name__)


class Site(Protocol):
    """What the web app needs of the running daemon: in the web process, `edge.web.process.RemoteSite` (the
    daemon, `edge.daemon.Edge`, seen through the bridge)."""

    cfg: Config
    store: Store
    metrics: Any  # .render(): the Prometheus text
    events: EventBus
    taps: Any  # await .handle(Tap): what the tap did
    chargers: Chargers
    web_port: int

    def health(self) -> dict: ...

    def connected(self, charger_id: str) -> object | None: ...


class TapIn(BaseModel):
    uid: str
    reader: str = "kiosk"


def build_app(edge: Site) -> FastAPI:
    # no /docs or /redoc: their pages load scripts from a CDN, blank on a site without internet
    app = FastAPI(title="sitekeeper edge", version="0.1.0", docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """The edge's honest state: 503 when it cannot do its job (the store cannot be written, ...)."""
        health = edge.health()
        return JSONResponse(health, status_code=200 if health["ok"] else 503)

    token_check = need("viewer", edge.store)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics(request: Request) -> str:
        """Prometheus text; with `[web] metrics_token = true` it needs a bearer token (any role)."""
        if edge.cfg.web.metrics_token:
            await token_check(request)
        return edge.metrics.render()

    viewer, operator = Depends(need("viewer", edge.store)), Depends(need("operator", edge.store))
    ops = register_operations(app, edge)
    kit = pages.register(app, edge)
    dashboard_pages.register(app, edge, kit)
    charger_pages.register(app, edge, kit, ops)
    user_pages.register(app, edge, kit)
    card_pages.register(app, edge, kit)
    settings_pages.register(app, edge, kit)
    session_pages.register(app, edge, kit)
    report_pages.register(app, edge, kit)
    tariff_pages.register(app, edge, kit)
    app.state.pay_desk = pay_pages.register(app, edge, kit) if edge.cfg.pay.enabled else None
    payment_pages.register(app, edge, kit)
    kiosk_api.register(app, edge, app.state.pay_desk)
    files_api.register(app, edge, ops)
    limits_api.register(app, edge, ops)
    profile_api.register(app, edge, ops)

    @app.get("/api/chargers", dependencies=[viewer])
    async def chargers() -> list[dict]:
        rows = reads.chargers(edge.store.db.conn)
        for row in rows:
            row["connected"] = edge.connected(row["id"]) is not None
        return rows

    @app.get("/api/chargers/{charger_id}/journal", dependencies=[viewer])
    async def charger_journal(charger_id: str, limit: int = 100) -> list[dict]:
        if limit < 1 or limit > 10000:
            raise HTTPException(422, "limit must be 1..10000")
        return journal.read(edge.store, charger_id, limit)

    @app.get("/api/events", dependencies=[viewer])
    async def events() -> StreamingResponse:
        """Live events (taps and decisions) as Server-Sent Events, for the kiosk."""
        return StreamingResponse(edge.events.stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    @app.post("/api/taps", dependencies=[operator])
    async def tap(body: TapIn, request: Request) -> dict:
        """A tap on a `sim` reader (what `sitekeeper tap` sends): decided like a tap on a real one.
        Only from this machine: a tap starts charging, so it must not come from the network."""
        if request.client is None or request.client.host not in ("127.0.0.1", "::1", "localhost"):
            raise HTTPException(403, "taps are accepted from this machine only")
        rc = edge.cfg.reader.get(body.reader)
        if rc is None:
            raise HTTPException(404, f"no reader {body.reader!r} (configured: {', '.join(edge.cfg.reader)})")
        if rc.backend != "sim":
            raise HTTPException(409, f"reader {body.reader!r} is a {rc.backend} reader, not a sim one")
        try:
            uid = normalise_uid(body.uid)
        except UidError as e:
            raise HTTPException(422, str(e)) from None
        return await edge.taps.handle(Tap(body.reader, uid, time.time()))

    @app.get("/api/transactions", dependencies=[viewer])
    async def transactions(limit: int = 100) -> list[dict]:
        """The newest sessions, card ids masked (no login guards this yet)."""
        if limit < 1 or limit > 1000:
            raise HTTPException(422, "limit must be 1..1000")
        rows = reads.transactions(edge.store.db.conn, limit)
        for row in rows:
            if row.get("id_tag"):
                row["id_tag"] = journal.mask_uid(row["id_tag"])
        return rows

    return app
