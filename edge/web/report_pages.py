"""The owner's reports: `/reports` for a day, a range of days or a month, per charger (charging hours,
sessions, kWh, fees) and per user (sessions, kWh, spend), each as a table and as CSV (`&csv=charger` or
`&csv=user`). A session counts on the local day it ended, as in `sitekeeper report daily`."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import Response

from edge.billing import reports
from edge.billing import sessions as billing
from edge.money import format_minor
from edge.store import reads
from edge.web.pages import Kit


def _range(kind: str, day: str, first: str, last: str, month: str, today: date) -> tuple[date, date]:
    if kind == "month":
        y, m = (int(x) for x in (month or today.strftime("%Y-%m")).split("-"))
        start = date(y, m, 1)
        end = (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        return start, end
    if kind == "range":
        a, b = date.fromisoformat(first or (today - timedelta(days=6)).isoformat()), \
            date.fromisoformat(last or today.isoformat())
        if b < a:
            raise ValueError(f"the range ends ({b}) before it starts ({a})")
        return a, b
    one = date.fromisoformat(day or today.isoformat())
    return one, one


def register(app: FastAPI, edge: Any, kit: Kit) -> None:
    @app.get("/reports", include_in_schema=False)
    async def report(request: Request, kind: str = "day", day: str = "", first: str = "", last: str = "",
                     month: str = "", csv_of: str = "") -> Response:
        user = kit.page_user(request)
        t = kit.t(request)
        tz = edge.cfg.site.timezone
        conn = edge.store.db.conn
        today = datetime.now(UTC).astimezone(ZoneInfo(tz)).date()
        error = ""
        try:
            lo_day, hi_day = _range(kind, day, first, last, month, today)
            if (hi_day - lo_day).days > 366:
                raise ValueError("a report covers at most a year")
        except ValueError as e:
            error, (lo_day, hi_day) = t("sessions.bad_filter", why=str(e)), (today, today)
        per_charger = []
        for c in reads.chargers(conn):
            days = reports.charger_days(conn, c["id"], lo_day, hi_day, tz)
            per_charger.append({"id": c["id"], "hours": sum(d["charging_hours"] for d in days),
                                "sessions": sum(d["sessions"] for d in days),
                                "energy_wh": sum(d["energy_wh"] for d in days),
                                "fees_minor": sum(d["fees_minor"] for d in days)})
        per_user = reports.user_totals(conn, reports.day_bounds(lo_day, tz)[0], reports.day_bounds(hi_day, tz)[1])
        exp, cur = billing.SETTINGS.exponent, billing.SETTINGS.currency
        if csv_of in ("charger", "user"):
            out = io.StringIO()
            w = csv.writer(out)
            if csv_of == "charger":
                w.writerow(["charger", "charging hours", "sessions", "kWh", f"fees ({cur})"])
                for r in per_charger:
                    w.writerow([r["id"], f"{r['hours']:.3f}", r["sessions"], f"{r['energy_wh'] / 1000:.3f}",
                                format_minor(r["fees_minor"], exp)])
            else:
                w.writerow(["user id", "name", "sessions", "kWh", f"spend ({cur})"])
                for r in per_user:
                    w.writerow([r["id"], r["name"], r["sessions"], f"{r['energy_wh'] / 1000:.3f}",
                                format_minor(r["spend_minor"], exp)])
            name = f"{csv_of}s-{lo_day}-{hi_day}.csv"
            return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}"',
                                     "Cache-Control": "no-store"})
        shown_chargers = [{**r, "hours": f"{r['hours']:.2f}", "kwh": f"{r['energy_wh'] / 1000:.2f}",
                           "fees": kit.money(r["fees_minor"])} for r in per_charger]
        shown_users = [{**r, "kwh": f"{r['energy_wh'] / 1000:.2f}", "spend": kit.money(r["spend_minor"])}
                       for r in per_user]
        total = {"sessions": sum(r["sessions"] for r in per_charger),
                 "kwh": f"{sum(r['energy_wh'] for r in per_charger) / 1000:.2f}",
                 "fees": kit.money(sum(r["fees_minor"] for r in per_charger)),
                 "hours": f"{sum(r['hours'] for r in per_charger):.2f}"}
        query = str(request.url.query)
        return kit.render(request, "reports.html", user, 422 if error else 200, error=error, kind=kind,
                          day=lo_day.isoformat(), first=lo_day.isoformat(), last=hi_day.isoformat(),
                          month=lo_day.strftime("%Y-%m"), chargers=shown_chargers, users=shown_users, total=total,
                          csv_base="/reports?" + (query + "&" if query else ""), span=(lo_day, hi_day))
