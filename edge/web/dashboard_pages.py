"""The owner's dashboard: `/` shows the alerts (a charger offline or faulted, the cloud away, records waiting
for the cloud, the disk filling), every charger today (connected, connector states, who is charging with
kWh and cost so far, sessions, charging hours, kWh and fees) and the site's total, and `/live/dashboard`
streams the same figures as Server-Sent Events when they change, so the page stays current without a reload.
A new site without accounts gets the first-run page instead."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from edge.billing import reports
from edge.billing import sessions as billing
from edge.operations import admins
from edge.store import journal, outbox, reads
from edge.web.pages import Kit

EVERY = 2.0  # seconds between looks at the figures for the live stream
BACKLOG_MINUTES = 10  # records for the cloud older than this: the MQTT link is behind
DISK_LOW = 0.10  # less free space than this share of the database's disk


def alerts(edge: Any, t: Any) -> list[str]:
    """What the owner should look at now, each in one sentence: chargers offline or faulted, the cloud CSMS
    away (proxy mode), records waiting for the cloud, the database's disk filling, the store failing."""
    conn = edge.store.db.conn
    out = []
    problem = edge.store.problem()
    if problem:
        out.append(t("alert.store", problem=problem))
    for cid, st in sorted(reads.charger_statuses(conn).items()):
        if edge.connected(cid) is None:
            out.append(t("alert.offline", id=cid))
        for c in st["connectors"]:
            if c["status"] == "Faulted":
                out.append(t("alert.faulted", id=cid, n=c["connector_id"] or c["evse_id"], error=c["error_code"] or "?"))
    if edge.cfg.upstream.mode == "proxy":
        health = edge.health()
        connected, links = health["chargers_connected"], health["upstream_links_up"]
        if connected and links < connected:
            out.append(t("alert.upstream", down=connected - links, of=connected))
    sync = outbox.status(conn)
    if sync["unsent"] and sync["oldest_unsent_age_s"] > BACKLOG_MINUTES * 60:
        out.append(t("alert.backlog", n=sync["unsent"], minutes=round(sync["oldest_unsent_age_s"] / 60)))
    try:
        disk = shutil.disk_usage(Path(edge.store.path).resolve().parent)
        if disk.free < DISK_LOW * disk.total:
            out.append(t("alert.disk", free=f"{disk.free / 1e9:.1f}", share=round(100 * disk.free / disk.total)))
    except OSError:
        pass
    return out


def figures(edge: Any, kit: Kit, t: Any) -> dict:
    """Today's figures per charger and for the site, and the alerts, as the page shows them."""
    conn = edge.store.db.conn
    tz = edge.cfg.site.timezone
    day = datetime.now(UTC).astimezone(ZoneInfo(tz)).date()
    daily = reports.daily(conn, day, tz)
    statuses = reads.charger_statuses(conn)
    now: dict[str, list[str]] = {}
    for s in billing.open_sessions(conn):
        who = s["name"] or (journal.mask_uid(s["id_tag"]) if s["id_tag"] else "?")
        now.setdefault(s["charger_id"], []).append(
            f"{s['connector_id'] or '?'}: {who} · {s['energy_wh'] / 1000:.2f} kWh · {kit.money(s['cost_minor'])}")

    def row(r: dict, cid: str | None) -> dict:
        out = {"sessions": str(r["sessions"]), "hours": f"{r['charging_hours']:.2f}",
               "kwh": f"{r['energy_wh'] / 1000:.2f}", "fees": kit.money(r["fees_minor"])}
        if cid is not None:
            connectors = (statuses.get(cid) or {}).get("connectors") or []
            out.update(id=cid, connected="yes" if edge.connected(cid) is not None else "no",
                       status=", ".join(f"{c['connector_id'] or c['evse_id']}: {c['status']}" for c in connectors
                                        if c["connector_id"] or c["evse_id"]) or "—",
                       now="; ".join(now.get(cid, [])) or "—")
        return out

    return {"day": day.isoformat(), "rows": [row(r, r["charger_id"]) for r in daily["chargers"]],
            "total": row(daily["totals"], None), "alerts": alerts(edge, t)}


def register(app: FastAPI, edge: Any, kit: Kit) -> None:
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard(request: Request) -> HTMLResponse:
        if not admins.any_account(edge.store.db.conn):
            return kit.render(request, "first_run.html", None)
        user = kit.page_user(request)
        return kit.render(request, "dashboard.html", user, today=figures(edge, kit, kit.t(request)), ocpp_port=edge.cfg.ocpp.port)

    @app.get("/live/dashboard", include_in_schema=False)
    async def live(request: Request) -> StreamingResponse:
        kit.page_user(request)
        t = kit.t(request)

        async def stream() -> AsyncIterator[str]:
            last = None
            idle = 0.0
            while not await request.is_disconnected():
                now = json.dumps(figures(edge, kit, t), ensure_ascii=False)
                if now != last:
                    yield f"event: dashboard\ndata: {now}\n\n"
                    last, idle = now, 0.0
                elif idle >= 15:
                    yield ": keepalive\n\n"
                    idle = 0.0
                await asyncio.sleep(EVERY)
                idle += EVERY

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
