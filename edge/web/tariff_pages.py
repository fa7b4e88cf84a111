"""The owner's tariff page `/tariff`: the tariff in force, in the order a driver reads it (per kWh with its
time-of-use bands, per minute, session fee, idle fee), those set to start later and the history; for owners
the editor, with the date the new tariff takes effect and a live preview of what a session would cost ("a
20 kWh session starting 19:00 costs ...", the page asks `/tariff/preview` as the fields change; without
script the Preview button does the same). A new tariff applies to sessions that start from its date on:
running ones keep theirs. `GET /api/tariff` gives the same to tools and the kiosk, `POST /api/tariff` sets
one (owner token). Over `edge.billing.owner`
and `edge.billing.tariff`; each tariff set here is in the audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Body, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from edge.billing import owner
from edge.billing import sessions as billing
from edge.billing.price_text import tariff_lines
from edge.billing.tariff import RATE_KEYS, TariffError, band_at, build_tariff, hhmm, quote
from edge.operations import changes, tokens
from edge.web.auth import need
from edge.web.pages import Kit

SPARE_BANDS = 2  # empty band rows the editor offers beyond the tariff's own
MAX_BANDS = 12
QUOTE = {"q_kwh": "20", "q_start": "19:00", "q_hours": "3", "q_idle": "0"}  # the preview's session


def spec_from_form(data: dict[str, str]) -> dict:
    """The written form of a tariff from the editor's fields (rates in major units; empty band rows skipped)."""
    spec: dict = {k: (data.get(k) or "0").strip() for k in RATE_KEYS}
    grace_text = (data.get("idle_grace_minutes") or "0").strip()
    try:
        grace = float(grace_text)
    except ValueError:
        raise TariffError(f"idle_grace_minutes: expected a number of minutes, got {grace_text!r}") from None
    spec["idle_grace_minutes"] = int(grace) if grace.is_integer() else grace
    spec["bands"] = []
    for i in range(MAX_BANDS):
        band = {f: (data.get(f"band{i}_{f}") or "").strip() for f in ("start", "end", "per_kwh")}
        if any(band.values()):
            spec["bands"].append(band)
    return spec


def _number(data: dict[str, str], key: str, low: float, high: float) -> float:
    text = (data.get(key) or QUOTE[key]).strip()
    try:
        value = float(text)
    except ValueError:
        raise TariffError(f"{key.removeprefix('q_')}: not a number: {text!r}") from None
    if not low <= value <= high:
        raise TariffError(f"{key.removeprefix('q_')}: {text} is outside {low:g}..{high:g}")
    return value


def register(app: FastAPI, edge: Any, kit: Kit) -> None:
    exponent = lambda: billing.SETTINGS.exponent  # noqa: E731 (read when asked: a reload may change it)
    tz = lambda: edge.cfg.site.timezone  # noqa: E731

    def build(spec: dict) -> Any:
        return build_tariff(spec, exponent(), tz())

    def describe(spec: dict, t: Any) -> list[str]:
        return tariff_lines(spec, t, billing.SETTINGS.currency)

    def preview(spec: dict, data: dict[str, str], t: Any, day: datetime) -> dict:
        """What the preview's session would cost under `spec`, started on `day`'s date (site time)."""
        tariff = build(spec)
        kwh = _number(data, "q_kwh", 0, 1000)
        hours = _number(data, "q_hours", 0.05, 48)
        idle = _number(data, "q_idle", 0, 1440)
        start_text = (data.get("q_start") or QUOTE["q_start"]).strip()
        try:
            clock = datetime.strptime(start_text, "%H:%M").time()
        except ValueError:
            raise TariffError(f"start: expected HH:MM, got {start_text!r}") from None
        local = day.astimezone(ZoneInfo(tz()))
        start = datetime.combine(local.date(), clock, ZoneInfo(tz()))
        cost = quote(tariff, start, round(kwh * 1000), hours * 60, idle).as_dict()
        parts = [(t("sessions.energy_part"), kit.money(cost["energy_minor"])),
                 (t("sessions.time_part", minutes=f"{cost['minutes']:g}"), kit.money(cost["time_minor"])),
                 (t("sessions.fee_part"), kit.money(cost["fee_minor"])),
                 (t("sessions.idle_part", minutes=f"{cost['idle_minutes']:g}"), kit.money(cost["idle_minor"]))]
        return {"sentence": t("tariff.preview_sentence", kwh=f"{kwh:g}", start=start_text, hours=f"{hours:g}",
                              idle=f"{idle:g}", total=kit.money(cost["cost_minor"])),
                "parts": parts, "total": kit.money(cost["cost_minor"])}

    def not_past(when: datetime, now: datetime, field: str) -> datetime:
        if when < now - timedelta(minutes=1):
            raise TariffError(f"{field}: a tariff cannot start in the past (started sessions keep theirs)")
        return when

    async def save(who: str, source: str, when: datetime, spec: dict) -> str:
        """Store `spec` from `when` on, with its audit row (the tariff in force before, the new one after)."""
        def change(c: Any) -> str:
            before = owner.tariffs(c, billing.SETTINGS.tariff, exponent(), now=datetime.now(UTC))["in_force"]
            stored = owner.add_tariff(c, when, spec, source=source, exponent=exponent(), timezone=tz())
            changes.record(c, who, "tariff", "tariff", before["tariff"], {**spec, "valid_from": stored})
            return stored
        return await edge.store.write(change)

    def valid_from(text: str, now: datetime) -> datetime:
        """The editor's effective-from field (site time, blank: now); never in the past."""
        if not text.strip():
            return now
        try:
            when = datetime.fromisoformat(text.strip()).replace(tzinfo=ZoneInfo(tz()))
        except ValueError:
            raise TariffError(f"effective from: expected a date and time, got {text!r}") from None
        return not_past(when, now, "effective from")

    def page(request: Request, user: dict, *, values: dict | None = None, error: str = "", shown: dict | None = None,
             status: int = 200) -> HTMLResponse:
        t = kit.t(request)
        now = datetime.now(UTC)
        view = owner.tariffs(edge.store.db.conn, billing.SETTINGS.tariff, exponent(), now=now)
        spec = view["in_force"]["tariff"]
        if values is None:
            values = {k: spec[k] for k in RATE_KEYS} | {"idle_grace_minutes": str(spec["idle_grace_minutes"]),
                                                        "valid_from": ""} | QUOTE
            for i, b in enumerate(spec.get("bands") or []):
                values |= {f"band{i}_start": b["start"], f"band{i}_end": b["end"], f"band{i}_per_kwh": b["per_kwh"]}
        rows = len([k for k in values if k.endswith("_per_kwh") and k.startswith("band") and values[k]])
        if shown is None:
            try:
                shown = preview(spec, values, t, now)
            except TariffError:
                shown = None
        band = band_at(build(spec), now)
        listed = [{"from": kit.when(x["valid_from"]), "lines": describe(x["tariff"], t), "source": x["source"] or "—",
                   "set": kit.when(x["created"]), "now": x["id"] == view["in_force"]["id"],
                   "later": x in view["upcoming"]} for x in view["history"]]
        return kit.render(request, "tariff.html", user, status, lines=describe(spec, t), history=listed,
                          since=kit.when(view["in_force"]["valid_from"]) or t("tariff.from_config"),
                          band_now=t("tariff.band_now", start=hhmm(band.start_min), end=hhmm(band.end_min)) if band else "",
                          may_edit=tokens.may(user["role"], "owner"), values=values,
                          bands=range(min(MAX_BANDS, rows + SPARE_BANDS)), error=error, preview=shown,
                          upcoming=len(view["upcoming"]))

    @app.get("/tariff", response_class=HTMLResponse, include_in_schema=False)
    async def tariff_page(request: Request) -> HTMLResponse:
        return page(request, kit.page_user(request))

    @app.post("/tariff/preview", include_in_schema=False)
    async def tariff_preview(request: Request) -> JSONResponse:
        user = kit.page_user(request)
        data = await kit.checked(request, user)
        t = kit.t(request)
        try:
            when = valid_from(data.get("valid_from", ""), datetime.now(UTC))
            return JSONResponse({"ok": True, **preview(spec_from_form(data), data, t, when)})
        except TariffError as e:
            return JSONResponse({"ok": False, "error": t("tariff.invalid", why=str(e))}, 422)

    @app.post("/tariff", include_in_schema=False)
    async def tariff_save(request: Request) -> Response:
        user = kit.page_user(request, "owner")
        data = await kit.checked(request, user)
        t = kit.t(request)
        now = datetime.now(UTC)
        try:
            spec = spec_from_form(data)
            when = valid_from(data.get("valid_from", ""), now)
            shown = preview(spec, data, t, when)
        except TariffError as e:
            return page(request, user, values=data, error=t("tariff.invalid", why=str(e)), status=422)
        if data.get("action") != "save":  # the Preview button, for a browser without script
            return page(request, user, values=data, shown=shown)

        await save(user["name"], f"web:{user['name']}", when, spec)
        return RedirectResponse("/tariff", status_code=303)

    @app.get("/api/tariff", dependencies=[Depends(need("viewer", edge.store))])
    async def api_tariff() -> dict:
        """The tariff in force (rates in major units of `currency`), the time-of-use band in force now, the
        tariffs set to start later, and the history."""
        now = datetime.now(UTC)
        view = owner.tariffs(edge.store.db.conn, billing.SETTINGS.tariff, exponent(), now=now)
        band = band_at(build(view["in_force"]["tariff"]), now)
        return {"currency": billing.SETTINGS.currency, "timezone": tz(), **view,
                "band_now": None if band is None else
                {"start": hhmm(band.start_min), "end": hhmm(band.end_min)}}

    @app.post("/api/tariff")
    async def api_set_tariff(body: Annotated[dict, Body()], who: str = Depends(need("owner", edge.store))) -> dict:
        """Set a tariff: `{"tariff": {"per_kwh": "15.00", ...}, "valid_from": "2027-01-01T00:00:00+08:00"}`
        (rates in major units as strings; `valid_from` optional, default now, never in the past)."""
        spec, text = body.get("tariff"), body.get("valid_from")
        now = datetime.now(UTC)
        try:
            if not isinstance(spec, dict):
                raise TariffError("tariff: expected an object with per_kwh, per_minute, ...")
            when = now if text is None else datetime.fromisoformat(str(text))
            if when.tzinfo is None:
                raise TariffError("valid_from: give the time zone (…+08:00 or …Z)")
            not_past(when, now, "valid_from")
            build(spec)
        except (TariffError, ValueError) as e:
            raise HTTPException(422, str(e)) from None
        return {"valid_from": await save(who, f"api:{who}", when, spec), "tariff": spec}
