"""The drivers' pay pages (phone-first, no login, no CDN; English, Filipino and Chinese):

    GET  /pay/<charger>/<connector>          the connector, its state, the price before start, the ways to pay
    POST /pay/<charger>/<connector>/wallet   card or phone number + PIN: hold, then the start command
    POST /pay/<charger>/<connector>/qrph     phone + amount: the provider's QR Ph code (then its webhook)
    GET  /pay/s/<secret>                     the driver's own pay session, followed live (`.../status`: JSON)
    POST /pay/s/<secret>/pin                 a PIN for the wallet this pay session made (QR Ph), on the spot
    POST /pay/webhooks/<provider>            the provider's word: verified, recorded by id, applied once
    GET  /receipt/<code>                     what a session cost, once it ended

A pay session's page is found by a secret only its driver's browser was given; a receipt by its code. Every
form carries the browser's CSRF token. The money and its rules: `edge.billing.pay`; the worker:
`edge.web.pay_desk`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from edge.billing import ledger, owner, pay
from edge.billing import sessions as billing
from edge.billing.payments import WebhookRefused
from edge.billing.price_text import tariff_lines
from edge.clock import parse_ts
from edge.money import format_minor
from edge.security import hash_secret
from edge.store import journal
from edge.web.pages import Kit
from edge.web.pay_desk import PayDesk

log = logging.getLogger(__name__)


def _connector_state(conn: Any, charger_id: str, connector: int) -> str | None:
    row = conn.execute("SELECT status FROM connector_status WHERE charger_id = ? AND (connector_id = ? AND"
                       " evse_id IN (0, ?) OR evse_id = ?) ORDER BY timestamp DESC LIMIT 1",
                       (charger_id, connector, connector, connector)).fetchone()
    return row[0] if row else None


def _major(minor: int) -> str:
    """An amount as a form field holds it: '2000.00'."""
    return format_minor(minor, billing.SETTINGS.exponent)


def _status_of(e: pay.PayError) -> int:
    return {"pay.err.busy": 409, "pay.err.offline": 409, "pay.err.locked": 429, "pay.err.low_balance": 402,
            "pay.err.provider": 503}.get(e.key, 400)


def _minutes(start: str | None, end: str | None) -> int:
    a, b = parse_ts(start), parse_ts(end) if end else datetime.now(UTC)
    return max(0, int((b - a).total_seconds() // 60)) if a and b else 0


def register(app: FastAPI, edge: Any, kit: Kit) -> PayDesk:
    """The routes; `/pay/s/...` first (a charger may not be named "s")."""
    desk = PayDesk(edge)

    def t(request: Request) -> Any:
        return kit.t(request, "driver")

    def render(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        return kit.render(request, template, None, status, domain="driver", money=kit.money, when=kit.when,
                          **values)

    def error_text(request: Request, e: pay.PayError) -> str:
        values = dict(e.values)
        for key in [k for k in values if k.endswith("_minor")]:
            values[key.removesuffix("_minor")] = kit.money(int(values.pop(key)))  # type: ignore[arg-type]
        if "until" in values:
            values["until"] = kit.when(str(values["until"]))
        return t(request)(e.key, **values)

    def known_charger(charger_id: str, connector: int) -> None:
        row = edge.store.db.conn.execute("SELECT 1 FROM chargers WHERE id = ? AND registration IS NOT 'pending'",
                                         (charger_id,)).fetchone()
        if row is None or not 1 <= connector <= 32:
            raise HTTPException(404, f"no charger {charger_id} with a connector {connector} here")

    def start_page(request: Request, charger_id: str, connector: int, status: int = 200, message: str = "",
                   who: str = "", phone: str = "") -> HTMLResponse:
        conn = edge.store.db.conn
        spec = owner.tariffs(conn, billing.SETTINGS.tariff, billing.SETTINGS.exponent)["in_force"]["tariff"]
        in_use = pay.busy(conn, charger_id, connector)
        problem = desk.connector_ok(charger_id, connector)
        state = _connector_state(conn, charger_id, connector)
        if state in ("Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Occupied", "Faulted", "Unavailable",
                     "Reserved") and problem is None:
            problem = "pay.err.state." + state.lower()
        offered, low, high = desk.amounts()
        return render(request, "pay.html", status, charger=charger_id, connector=connector, state=state,
                      prices=tariff_lines(spec, t(request), billing.SETTINGS.currency), in_use=in_use is not None, problem=problem,
                      message=message, who=who, min_start=kit.money(billing.SETTINGS.min_start_balance),
                      max_hold=kit.money(billing.SETTINGS.max_hold), provider=desk.provider is not None,
                      qrph=desk.qrph_offered, amounts=[(kit.money(a), _major(a)) for a in offered],
                      low=_major(low), high=_major(high), phone=phone)

    def live(row: dict) -> dict:
        """What the driver's page shows of a pay session now."""
        conn = edge.store.db.conn
        out = {"state": row["state"], "code": row["code"], "hold": kit.money(row["hold_minor"]),
               "message": row["message"] or "", "energy_kwh": "0.000", "cost": kit.money(0), "cost_minor": 0,
               "minutes": 0}
        if row["transaction_id"] is not None:
            tx = conn.execute("SELECT meter_start, meter_stop, started_at, stopped_at, cost_minor FROM transactions"
                              " WHERE id = ?", (row["transaction_id"],)).fetchone()
            detail = billing.breakdown(conn, row["transaction_id"]) or {}
            readings = detail.get("readings") or []
            last = tx[1] if tx[1] is not None else (readings[-1][1] if readings else tx[0])
            out["energy_kwh"] = f"{max(0, (last or 0) - (tx[0] or 0)) / 1000:.3f}"
            cost = tx[4] if tx[4] is not None else (detail.get("cost") or {}).get("total_minor", 0)
            out["cost"], out["cost_minor"] = kit.money(cost or 0), cost or 0
            out["minutes"] = _minutes(tx[2], tx[3])
        return out

    def mine(secret: str) -> dict:
        row = pay.by_secret(edge.store.db.conn, secret)
        if row is None:
            raise HTTPException(404, "no such pay session")
        return row

    def session_page(request: Request, secret: str, status: int = 200, message: str = "") -> HTMLResponse:
        row = mine(secret)
        conn = edge.store.db.conn
        kept = None
        if row["method"] == "qrph" and row["account_id"] is not None and row["state"] in ("failed", "done"):
            # a wallet this payment made is all the driver's; in someone's older account, only this payment's rest
            made = conn.execute("SELECT made_by_pay FROM accounts WHERE id = ?",
                                (row["account_id"],)).fetchone()[0] == row["id"]
            spent = live(row)["cost_minor"] if row["state"] == "done" else 0
            kept = kit.money(ledger.available(conn, row["account_id"]) if made else
                             max(0, row["amount_minor"] - spent))
        return render(request, "pay_session.html", status, pay=row, live=live(row), secret=secret,
                      masked_phone=pay.mask_phone(row["phone"]), kept=kept, may_set_pin=pay.may_set_pin(conn, row),
                      message=message, pin_set=request.query_params.get("pin") == "set",
                      until=kit.when_seconds(row["expires"]), amount=kit.money(row["amount_minor"]))

    @app.get("/pay/s/{secret}", response_class=HTMLResponse, include_in_schema=False)
    async def pay_session(request: Request, secret: str) -> HTMLResponse:
        return session_page(request, secret)

    @app.post("/pay/s/{secret}/pin", include_in_schema=False)
    async def pay_pin(request: Request, secret: str) -> Response:
        row = mine(secret)
        data = await kit.checked(request, None)
        if not pay.may_set_pin(edge.store.db.conn, row):
            raise HTTPException(403, "this pay session cannot set a PIN")
        try:
            pin = pay.check_pin_format(data.get("pin", ""))
            if data.get("pin2", "") != pin:
                raise pay.PayError("pay.err.pin_differ", "the two PINs differ")
        except pay.PayError as e:
            return session_page(request, secret, 400, error_text(request, e))
        pin_hash = await asyncio.to_thread(hash_secret, pin)
        await edge.store.write(lambda c: pay.set_pin_hash(c, row["account_id"], pin_hash))
        log.info("pay %s: the wallet it made has a PIN now", row["code"])
        return RedirectResponse(f"/pay/s/{secret}?pin=set", status_code=303)

    @app.get("/pay/s/{secret}/status", include_in_schema=False)
    async def pay_status(secret: str) -> JSONResponse:
        return JSONResponse(live(mine(secret)), headers={"Cache-Control": "no-store"})

    @app.get("/pay/{charger_id}/{connector:int}", response_class=HTMLResponse, include_in_schema=False)
    async def pay_page(request: Request, charger_id: str, connector: int) -> HTMLResponse:
        known_charger(charger_id, connector)
        return start_page(request, charger_id, connector)

    @app.post("/pay/{charger_id}/{connector:int}/wallet", include_in_schema=False)
    async def pay_wallet(request: Request, charger_id: str, connector: int) -> Response:
        known_charger(charger_id, connector)
        data = await kit.checked(request, None)
        who = data.get("who", "")[:64]
        try:
            row, secret = await desk.pay_from_wallet(charger_id, connector, who, data.get("pin", "")[:16])
        except pay.PayError as e:
            log.info("pay at %s:%d refused: %s", charger_id, connector, e)
            return start_page(request, charger_id, connector, _status_of(e), error_text(request, e), who)
        log.info("pay %s: wallet %d holds %d for %s:%d", row["code"], row["account_id"], row["hold_minor"],
                 charger_id, connector)
        return RedirectResponse(f"/pay/s/{secret}", status_code=303)

    @app.post("/pay/{charger_id}/{connector:int}/qrph", include_in_schema=False)
    async def pay_qrph(request: Request, charger_id: str, connector: int) -> Response:
        known_charger(charger_id, connector)
        data = await kit.checked(request, None)
        phone = data.get("phone", "")[:32]
        amount = (data.get("other") or "").strip() or data.get("amount", "")
        try:
            row, secret = await desk.pay_by_qrph(charger_id, connector, phone, amount[:16])
        except pay.PayError as e:
            log.info("pay at %s:%d (QR Ph) refused: %s", charger_id, connector, e)
            return start_page(request, charger_id, connector, _status_of(e), error_text(request, e), phone=phone)
        return RedirectResponse(f"/pay/s/{secret}", status_code=303)

    @app.post("/pay/webhooks/{provider}", include_in_schema=False)
    async def webhook(request: Request, provider: str) -> JSONResponse:
        """The payment provider's events. Refused (400, logged, nothing changed) unless verified."""
        if desk.provider is None or provider != desk.provider.name:
            raise HTTPException(404, f"no payment provider {provider!r} here")
        body = await request.body()
        if len(body) > 262144:
            raise HTTPException(413, "webhook too large")
        try:
            result = await desk.webhook(request.headers, body)
        except WebhookRefused as e:
            client = request.client.host if request.client else "?"
            log.warning("pay: refused a %s webhook from %s: %s", provider, client, e)
            return JSONResponse({"error": f"refused: {e}"}, status_code=400)
        return JSONResponse(result)

    @app.get("/receipt/{code}", response_class=HTMLResponse, include_in_schema=False)
    async def receipt(request: Request, code: str) -> HTMLResponse:
        found = pay.receipt(edge.store.db.conn, code[:16])
        if found is None or found["state"] != "done":
            raise HTTPException(404, "no receipt with this code (a receipt is made when the session ends)")
        tx = found["tx"] or {}
        captured = tx.get("captured_minor") or 0
        return render(request, "receipt.html", pay=found, tx=tx, charged=kit.money(captured),
                      returned=kit.money(max(0, (found["hold_minor"] or 0) - captured)),
                      energy=f"{(tx.get('energy_wh') or 0) / 1000:.3f}",
                      minutes=_minutes(tx.get("started_at"), tx.get("stopped_at")),
                      card=journal.mask_uid(found.get("card") or ""))

    return desk
