"""The owner's side of pay by phone: `/payments` offers the sheet of pay QR stickers, lists the pay sessions (newest first, with their state and
money), the payment provider's events, and the payments nothing was waiting for (an expired QR paid late, a
payment for no pay session), which an operator credits to the driver's wallet here, once. And the wallet PIN
of a user (`/users/<id>/pin`), as `sitekeeper cards pin` sets it."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from edge.billing import pay
from edge.billing import sessions as billing
from edge.operations import changes, tokens
from edge.security import hash_secret
from edge.web import stickers
from edge.web.auth import need
from edge.web.pages import Kit


def register(app: FastAPI, edge: Any, kit: Kit) -> None:
    viewer = Depends(need("viewer", edge.store))

    @app.get("/api/pay/sessions", dependencies=[viewer])
    async def api_pay_sessions(limit: int = 100) -> list[dict]:
        """The newest pay sessions (amounts in minor units, phone numbers masked, the QR image left out)."""
        if not 1 <= limit <= 1000:
            raise HTTPException(422, "limit must be 1..1000")
        return [{**{k: v for k, v in p.items() if k != "provider_qr"}, "phone": pay.mask_phone(p["phone"]) or None}
                for p in pay.listing(edge.store.db.conn, limit)]

    @app.get("/api/pay/events", dependencies=[viewer])
    async def api_pay_events(unresolved: bool = False, limit: int = 100) -> list[dict]:
        """The payment provider's events and their outcome (`unresolved`: only those the owner must resolve)."""
        if not 1 <= limit <= 1000:
            raise HTTPException(422, "limit must be 1..1000")
        return [{**e, "phone": pay.mask_phone(e["phone"]) or None}
                for e in pay.events(edge.store.db.conn, unresolved=unresolved, limit=limit)]

    def page(request: Request, user: dict, status: int = 200, message: str = "", error: str = "") -> HTMLResponse:
        conn = edge.store.db.conn
        sessions = [{**p, "created": kit.when(p["created"]), "hold": kit.money(p["hold_minor"]),
                     "amount": kit.money(p["amount_minor"]) if p["method"] == "qrph" else "—",
                     "phone": pay.mask_phone(p["phone"]) or "—"} for p in pay.listing(conn, 200)]
        events = [{**e, "received": kit.when(e["received"]),
                   "amount": kit.money(e["amount_minor"]) if e["amount_minor"] is not None else "—",
                   "phone": pay.mask_phone(e["phone"]) or "—"} for e in pay.events(conn, limit=200)]
        return kit.render(request, "payments.html", user, status, sessions=sessions, events=events,
                          unresolved=[e for e in events if e["outcome"] == "unresolved"], message=message,
                          error=error, may_credit=tokens.may(user["role"], "operator"))

    @app.get("/payments", response_class=HTMLResponse, include_in_schema=False)
    async def payments(request: Request, credited: str = "") -> HTMLResponse:
        user = kit.page_user(request)
        return page(request, user, message=kit.t(request)("payments.credited") if credited else "")

    @app.get("/payments/stickers.svg", include_in_schema=False)
    async def sticker_sheet(request: Request) -> Response:
        """The printable sheet of pay QR stickers, one for every connector the site has seen."""
        kit.page_user(request)
        svg = stickers.sheet(edge.cfg, stickers.connectors(edge.store.db.conn))
        return Response(svg, media_type="image/svg+xml", headers={
            "Content-Disposition": f'attachment; filename="{edge.cfg.site.id}-pay-stickers.svg"'})

    @app.post("/payments/events/credit", include_in_schema=False)
    async def credit(request: Request) -> Response:
        user = kit.page_user(request, "operator")
        data = await kit.checked(request, user)
        event_id = data.get("event", "")[:200]

        def resolve(c: Any) -> dict:
            out = pay.credit_unresolved(c, event_id, currency=billing.SETTINGS.currency)
            changes.record(c, user["name"], "payment.credit", f"payment event {event_id}", {"outcome": "unresolved"},
                           {"outcome": "resolved", **out})
            return out
        try:
            await edge.store.write(resolve)
        except pay.PayError as e:
            return page(request, user, 409, error=str(e))
        return RedirectResponse("/payments?credited=1", status_code=303)

    @app.post("/users/{account_id:int}/pin", include_in_schema=False)
    async def set_pin(request: Request, account_id: int) -> Response:
        user = kit.page_user(request, "operator")
        data = await kit.checked(request, user)
        t = kit.t(request)
        if edge.store.db.conn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone() is None:
            raise HTTPException(404, t("users.unknown", id=account_id))
        pin = data.get("pin", "")
        if data.get("pin2", "") != pin:
            return RedirectResponse(f"/users/{account_id}?pin=differ", status_code=303)
        try:
            pay.check_pin_format(pin)
        except pay.PayError:
            return RedirectResponse(f"/users/{account_id}?pin=format", status_code=303)
        pin_hash = await asyncio.to_thread(hash_secret, pin)  # scrypt: off the loop

        def change(c: Any) -> None:
            pay.set_pin_hash(c, account_id, pin_hash)
            changes.record(c, user["name"], "user.pin", f"account {account_id}", None, {"pin": "set"})
        await edge.store.write(change)
        return RedirectResponse(f"/users/{account_id}?pin=set", status_code=303)
