"""The owner's charger pages: `/chargers` (each charger, connected or not, its connectors' states) and
`/chargers/{id}`: the day-by-day table (charging hours, sessions, kWh, fees; the last 30 days unless a range
is asked for) with bar charts of its kWh and fees, its connectors, its last sessions (card ids masked), and
for operators the operations as buttons (reset, unlock, availability, status, cache) with the charger's real
answer, the last operations, firmware updates and log uploads.
The figures are those of `sitekeeper report daily` (`edge.billing.reports`)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from edge.billing import reports
from edge.operations import calls, files, intents, security_profiles, tokens
from edge.store import journal, reads
from edge.web.charts import bars
from edge.web.operations_api import Operator
from edge.web.pages import Kit

# the buttons of a charger's page: the intent, and the form fields it takes
BUTTONS = {"reset": (intents.reset, ()), "reset-hard": (intents.reset, ()), "unlock": (intents.unlock, ("connector",)),
           "disable": (intents.availability, ("connector",)), "enable": (intents.availability, ("connector",)),
           "status": (intents.trigger, ("connector",)), "clear-cache": (intents.clear_cache, ())}


def _connectors(row: dict, kit: Kit) -> list[dict]:
    return [{"n": c["connector_id"] or c["evse_id"], "status": c["status"], "error": c["error_code"]
             if c["error_code"] not in (None, "NoError") else None, "at": kit.when(c["timestamp"])}
            for c in row.get("connectors") or [] if c["connector_id"] or c["evse_id"]]


def _args(op: str, data: dict[str, str]) -> tuple:
    """The intent's arguments from the form (after the version)."""
    connector = int(data.get("connector") or 1)
    return {"reset": (False,), "reset-hard": (True,), "unlock": (connector,), "disable": (connector, False),
            "enable": (connector, True), "status": ("StatusNotification", connector), "clear-cache": ()}[op]


def register(app: FastAPI, edge: Any, kit: Kit, ops: Operator) -> None:
    @app.post("/chargers/{charger_id}/operate", include_in_schema=False)
    async def operate(request: Request, charger_id: str) -> Response:
        """A button of the charger's page: the operation, then the page again with the charger's answer."""
        user = kit.page_user(request, "operator")
        data = await kit.checked(request, user)
        op = data.get("op", "")
        if op not in BUTTONS:
            raise HTTPException(422, f"no such operation {op!r}")
        try:
            action, payload = ops.say(BUTTONS[op][0], charger_id, *_args(op, data))
        except ValueError as e:
            raise HTTPException(422, str(e)) from None
        outcome = await ops.operate(charger_id, action, payload, f"web:{user['name']}", timeout=30)
        return RedirectResponse(f"/chargers/{charger_id}?answered={outcome.status}#operations", status_code=303)

    @app.post("/chargers/{charger_id}/approve", include_in_schema=False)
    async def approve(request: Request, charger_id: str) -> Response:
        """The owner lets a new charger work here (`ocpp.new_chargers`): it is asked to boot again at once."""
        user = kit.page_user(request, "owner")
        await kit.checked(request, user)
        await ops.approve(charger_id, f"web:{user['name']}")
        return RedirectResponse(f"/chargers?approved={charger_id}", status_code=303)

    @app.get("/chargers", response_class=HTMLResponse, include_in_schema=False)
    async def chargers(request: Request, approved: str = "") -> HTMLResponse:
        user = kit.page_user(request)
        rows, waiting = [], []
        for r in reads.chargers(edge.store.db.conn):
            if r.get("registration") == "pending":
                waiting.append({"id": r["id"], "connected": edge.connected(r["id"]) is not None,
                                "model": " ".join(x for x in (r.get("vendor"), r.get("model")) if x) or "—",
                                "first_seen": kit.when(r.get("first_seen"))})
                continue
            rows.append({"id": r["id"], "connected": edge.connected(r["id"]) is not None,
                         "model": " ".join(x for x in (r.get("vendor"), r.get("model")) if x) or "—",
                         "status": ", ".join(f"{c['n']}: {c['status']}" for c in _connectors(r, kit)) or "—",
                         "last_seen": kit.when(r.get("last_seen"))})
        return kit.render(request, "chargers.html", user, chargers=rows, ocpp_port=edge.cfg.ocpp.port,
                          waiting=waiting, approved=approved, may_approve=tokens.may(user["role"], "owner"))

    @app.get("/chargers/{charger_id}", response_class=HTMLResponse, include_in_schema=False)
    async def charger(request: Request, charger_id: str) -> HTMLResponse:
        user = kit.page_user(request)
        t = kit.t(request)
        await edge.store.settled()  # the last operations' audit rows, written behind their answers
        conn = edge.store.db.conn
        row = next((r for r in reads.chargers(conn) if r["id"] == charger_id), None)
        if row is None:
            raise HTTPException(404, t("chargers.unknown", id=charger_id))
        tz = edge.cfg.site.timezone
        today = datetime.now(UTC).astimezone(ZoneInfo(tz)).date()
        message, status = "", 200
        try:
            last = date.fromisoformat(request.query_params.get("to") or today.isoformat())
            first = date.fromisoformat(request.query_params.get("from") or (last - timedelta(days=29)).isoformat())
            days = reports.charger_days(conn, charger_id, first, last, tz)
        except (ValueError, reports.ReportError) as e:
            message, status = t("chargers.bad_range", why=str(e)), 422
            last, first = today, today - timedelta(days=29)
            days = reports.charger_days(conn, charger_id, first, last, tz)
        shown = [{"date": d["date"], "hours": f"{d['charging_hours']:.2f}", "sessions": d["sessions"],
                  "kwh": f"{d['energy_wh'] / 1000:.2f}", "fees": kit.money(d["fees_minor"])} for d in days]
        total = {"hours": f"{sum(d['charging_hours'] for d in days):.2f}", "sessions": sum(d["sessions"] for d in days),
                 "kwh": f"{sum(d['energy_wh'] for d in days) / 1000:.2f}",
                 "fees": kit.money(sum(d["fees_minor"] for d in days))}
        labels = [d["date"] for d in days]
        kwh_chart = bars([d["energy_wh"] / 1000 for d in days], labels, [s["kwh"] + " kWh" for s in shown],
                         title=t("dash.energy"))
        fees_chart = bars([d["fees_minor"] for d in days], labels, [s["fees"] for s in shown], title=t("dash.fees"))
        sessions = [{"started": kit.when(s["started_at"]), "card": journal.mask_uid(s["id_tag"]) if s.get("id_tag")
                     else "—", "kwh": f"{(s.get('energy_wh') or 0) / 1000:.2f}",
                     "fees": kit.money(s.get("captured_minor") or 0)}
                    for s in reports.sessions(conn, charger_id=charger_id, limit=10)]
        info = {"id": charger_id, "connected": edge.connected(charger_id) is not None,
                "model": " ".join(x for x in (row.get("vendor"), row.get("model")) if x) or "—",
                "version": row.get("ocpp_version") or "?", "last_seen": kit.when(row.get("last_seen")),
                "connectors": _connectors(row, kit)}
        own, asked = security_profiles.standing(conn, charger_id)
        listed = edge.cfg.ocpp.chargers.get(charger_id)
        info.update(security=max(own, edge.cfg.ocpp.security_profile), asked=asked,
                    own_a=f"{listed.max_current_a:g}" if listed and listed.max_current_a else "",
                    site_a=f"{edge.cfg.site.max_current_a:g}" if edge.cfg.site.max_current_a else "")
        done = [{"at": kit.when(o["at"]), "who": o["who"], "action": o["action"], "status": o["status"],
                 "answer": json.dumps(o["response"] if o["response"] is not None else o["error"],
                                      ensure_ascii=False)[:120]} for o in calls.listed(conn, charger_id=charger_id,
                                                                                       limit=10)]
        transfers = [{"kind": kind, "at": kit.when(x["created"]), "file": x["file"] or "—", "status": x["status"]}
                     for kind in ("firmware", "log") for x in files.transfers(conn, charger_id, kind, 5)]
        action = request.query_params.get("action", "")
        frames = []
        for f in journal.read(edge.store, charger_id, 1000 if action else 50):
            try:
                msg = json.loads(f["frame"])
                name = msg[2] if msg[0] == 2 else ""
            except (ValueError, IndexError, KeyError, TypeError):
                name = ""
            if action and name != action:
                continue
            frames.append({"at": kit.when_seconds(f["ts"]), "direction": f["direction"], "action": name,
                           "frame": f["frame"][:300]})
        return kit.render(request, "charger.html", user, status, charger=info, done=done, transfers=transfers,
                          frames=list(reversed(frames[-50:])), action=action,
                          may_operate=tokens.may(user["role"], "operator"), days=list(reversed(shown)),
                          total=total, first=first.isoformat(), last=last.isoformat(), message=message,
                          kwh_chart=kwh_chart, fees_chart=fees_chart, sessions=sessions,
                          currency=edge.cfg.billing.currency)
