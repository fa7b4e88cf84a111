"""The owner's dashboard: `/` shows every charger today (connected, connector states, who is charging with
kWh and cost so far, sessions, charging hours, kWh and fees) and the site's total, and `/live/dashboard`
streams the same figures as Server-Sent Events when they change, so the page stays current without a reload.
A new site without accounts gets the first-run page instead."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from edge.billing import reports
from edge.billing import sessions as billing
from edge.operations import admins
from edge.store import journal, reads
from edge.web.pages import Kit

EVERY = 2.0  # seconds between looks at the figures for the live stream


def figures(edge: Any, kit: Kit) -> dict:
    """Today's figures per charger and for the site, as the page shows them."""
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
            "total": row(daily["totals"], None)}


def register(app: FastAPI, edge: Any, kit: Kit) -> None:
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard(request: Request) -> HTMLResponse:
        if not admins.any_account(edge.store.db.conn):
            return kit.render(request, "first_run.html", None)
        user = kit.page_user(request)
        return kit.render(request, "dashboard.html", user, today=figures(edge, kit), ocpp_port=edge.cfg.ocpp.port)

    @app.get("/live/dashboard", include_in_schema=False)
    async def live(request: Request) -> StreamingResponse:
        kit.page_user(request)

        async def stream() -> AsyncIterator[str]:
            last = None
            idle = 0.0
            while not await request.is_disconnected():
                now = json.dumps(figures(edge, kit), ensure_ascii=False)
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
