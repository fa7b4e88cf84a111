"""The owner's session pages: `/sessions` (filter by charger, card and local dates; newest first) and
`/sessions/{id}`: the charger, the card (masked but to operators and owners) and its holder, start and stop
in the site's time, kWh, the tariff's cost breakdown (energy, time, idle, session fee), what was captured,
the meter readings as a chart, and a receipt. Over `edge.billing.reports` and `edge.billing.sessions`."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse

from edge.billing import reports
from edge.billing import sessions as billing
from edge.money import UidError
from edge.operations import tokens
from edge.store import journal
from edge.web.charts import bars
from edge.web.pages import Kit


def register(app: FastAPI, edge: Any, kit: Kit) -> None:
    def card(uid: str | None, user: dict) -> str:
        if not uid:
            return "—"
        return uid if tokens.may(user["role"], "operator") else journal.mask_uid(uid)

    @app.get("/sessions", response_class=HTMLResponse, include_in_schema=False)
    async def session_list(request: Request, charger: str = "", card_id: str = "", day_from: str = "",
                           day_to: str = "") -> HTMLResponse:
        user = kit.page_user(request)
        t = kit.t(request)
        tz = edge.cfg.site.timezone
        error = ""
        since = until = None
        try:
            if day_from:
                since = reports.day_bounds(date.fromisoformat(day_from), tz)[0]
            if day_to:
                until = reports.day_bounds(date.fromisoformat(day_to), tz)[1]
            found = reports.sessions(edge.store.db.conn, charger_id=charger or None, uid=card_id or None,
                                     since=since, limit=None if until else 200)
        except (ValueError, UidError) as e:
            error, found = t("sessions.bad_filter", why=str(e)), []
        rows = []
        for s in found:
            if until is not None and s["started_at"] and s["started_at"] >= until.strftime("%Y-%m-%dT%H:%M:%SZ"):
                continue
            rows.append({"id": s["id"], "started": kit.when(s["started_at"]), "charger": s["charger_id"],
                         "card": card(s["id_tag"], user), "name": s["name"] or "—",
                         "kwh": f"{(s['energy_wh'] or 0) / 1000:.2f}" if not s["open"] else "…",
                         "cost": kit.money(s["captured_minor"] or 0), "open": s["open"]})
        return kit.render(request, "sessions.html", user, sessions=rows[:200], error=error, charger=charger,
                          card_id=card_id, day_from=day_from, day_to=day_to)

    @app.get("/sessions/{session_id:int}", response_class=HTMLResponse, include_in_schema=False)
    async def session_page(request: Request, session_id: int) -> HTMLResponse:
        user = kit.page_user(request)
        conn = edge.store.db.conn
        s = reports.session(conn, session_id)
        if s is None:
            raise HTTPException(404, kit.t(request)("sessions.unknown", id=session_id))
        made = billing.breakdown(conn, session_id) or {"readings": [], "cost": None}
        readings = made["readings"]
        start_wh = s["meter_start"] or 0
        chart = bars([(wh - start_wh) / 1000 for _, wh in readings], [kit.when(ts.isoformat()) for ts, _ in readings],
                     [f"{(wh - start_wh) / 1000:.2f} kWh" for _, wh in readings], title="kWh") if readings else ""
        cost = made["cost"]
        parts = None if cost is None else {
            "energy": kit.money(cost["energy_minor"]), "time": kit.money(cost["time_minor"]),
            "idle": kit.money(cost["idle_minor"]), "fee": kit.money(cost["fee_minor"]),
            "total": kit.money(cost["total_minor"]), "minutes": f"{cost['minutes']:.0f}",
            "idle_minutes": f"{cost['idle_minutes']:.0f}"}
        duration = s["duration_seconds"]
        info = {"id": s["id"], "charger": s["charger_id"], "connector": s["connector_id"] or s["evse_id"] or "—",
                "card": card(s["id_tag"], user), "name": s["name"] or "—", "account": s["account_id"],
                "started": kit.when(s["started_at"]), "stopped": kit.when(s["stopped_at"]) or "…",
                "duration": str(timedelta(seconds=duration)) if duration is not None else "…",
                "kwh": f"{(s['energy_wh'] or 0) / 1000:.2f}", "captured": kit.money(s["captured_minor"] or 0),
                "uncollected": kit.money(s["uncollected_minor"] or 0) if s["uncollected_minor"] else "",
                "reason": s["stop_reason"] or "", "open": s["open"], "offline": s["started_offline"]}
        return kit.render(request, "session.html", user, s=info, parts=parts, chart=chart)
