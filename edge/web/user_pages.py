"""The owner's user pages: `/users` (search by name, phone or card; balance and last activity) and
`/users/{id}`: contact (editable), cards (a card moved here, or a new one enrolled for the user) (masked but to operators and owners), balance and what is available, the
consumption records (sessions with kWh, cost, charger, time), the ledger with its running balance, a top-up
form (operators and owners; idempotent on the form's own token, so a double click tops up once), and
`/users/{id}.csv`. Over the same library as the CLI (`edge.billing.reports`, `edge.billing.owner`)."""

from __future__ import annotations

import csv
import io
import secrets
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from edge.billing import cards, owner, pay, reports
from edge.billing import sessions as billing
from edge.money import format_minor
from edge.operations import changes, tokens
from edge.store import journal
from edge.web.pages import Kit


def register(app: FastAPI, edge: Any, kit: Kit) -> None:
    def pin_state(conn: Any, account_id: int) -> dict:
        row = conn.execute("SELECT pin_hash, pin_locked_until FROM accounts WHERE id = ?", (account_id,)).fetchone()
        locked = pay.pin_locked({"locked_until": row[1]}) if row else None
        return {"set": bool(row and row[0]), "locked": kit.when(locked) if locked else ""}

    def card_shown(uid: str, user: dict) -> str:
        return uid if tokens.may(user["role"], "operator") else journal.mask_uid(uid)

    @app.get("/users", response_class=HTMLResponse, include_in_schema=False)
    async def users(request: Request, q: str = "") -> HTMLResponse:
        user = kit.page_user(request)
        conn = edge.store.db.conn
        needle = q.strip().lower()
        wanted = needle.replace(":", "").replace(" ", "").upper()
        rows = []
        for u in reports.user_list(conn)["users"]:
            uids = [c["uid"] for c in reports.user_detail(conn, u["id"], recent=1)["cards"]]
            if needle and needle not in (u["name"] or "").lower() and needle not in (u["phone"] or "") and \
                    not any(wanted and wanted in uid for uid in uids):
                continue
            last = reports.sessions(conn, account_id=u["id"], limit=1)
            rows.append({"id": u["id"], "name": u["name"] or "—", "phone": u["phone"] or "—", "cards": u["cards"],
                         "balance": kit.money(u["balance_minor"]), "available": kit.money(u["available_minor"]),
                         "last": kit.when(last[0]["started_at"]) if last else "—"})
        return kit.render(request, "users.html", user, users=rows, q=q)

    def detail(request: Request, user: dict, account_id: int, http_status: int = 200, **extra: Any) -> HTMLResponse:
        conn = edge.store.db.conn
        try:
            rep = reports.user_report(conn, account_id)
        except reports.ReportError:
            raise HTTPException(404, kit.t(request)("users.unknown", id=account_id)) from None
        sessions = [{"started": kit.when(s["started_at"]), "charger": s["charger_id"],
                     "kwh": f"{(s['energy_wh'] or 0) / 1000:.2f}" if not s["open"] else "…",
                     "cost": kit.money(s["captured_minor"] or 0), "card": card_shown(s["id_tag"] or "", user)}
                    for s in rep["sessions"][:100]]
        ledger = [{"at": kit.when(e["created"]), "kind": e["kind"], "change": kit.money(e["delta_minor"])
                   if e["delta_minor"] else "", "amount": kit.money(e["amount_minor"]),
                   "balance": kit.money(e["balance_minor"]), "note": e["note"] or ""}
                  for e in reversed(rep["history"][-200:])]
        account = rep["account"]
        return kit.render(
            request, "user.html", user, http_status, account=account, sessions=sessions, ledger=ledger,
            cards=[{"uid": card_shown(c["uid"], user), "kind": c["kind"], "status": c["status"]} for c in rep["cards"]],
            balance=kit.money(rep["balance_minor"]), available=kit.money(rep["available_minor"]),
            held=kit.money(rep["held_minor"]), totals={"sessions": rep["totals"]["sessions"],
                                                        "kwh": f"{rep['totals']['energy_wh'] / 1000:.2f}",
                                                        "spend": kit.money(rep["totals"]["spend_minor"])},
            may_topup=tokens.may(user["role"], "operator"), is_owner=tokens.may(user["role"], "owner"),
            form_token=secrets.token_urlsafe(16),
            currency=billing.SETTINGS.currency, pin=pin_state(conn, account_id), **extra)

    @app.get("/users/{account_id:int}", response_class=HTMLResponse, include_in_schema=False)
    async def user_page(request: Request, account_id: int, topped: int | None = None, saved: int = 0,
                        pin: str = "", master: int = 0) -> HTMLResponse:
        user = kit.page_user(request)
        done = kit.t(request)("users.saved") if saved else kit.t(request)("users.master_pass_saved") if master else ""
        if pin in ("set", "differ", "format"):
            if pin != "set":
                return detail(request, user, account_id, message="", error=kit.t(request)(f"users.pin_{pin}"))
            done = kit.t(request)("users.pin_saved")
        if topped is not None:
            row = edge.store.db.conn.execute("SELECT amount_minor FROM ledger WHERE id = ? AND account_id = ?"
                                             " AND kind = 'topup'", (topped, account_id)).fetchone()
            done = kit.t(request)("users.topped", amount=kit.money(row[0])) if row else ""
        return detail(request, user, account_id, message=done, error="")

    @app.post("/users/{account_id:int}/topup", include_in_schema=False)
    async def topup(request: Request, account_id: int) -> Response:
        user = kit.page_user(request, "operator")
        data = await kit.checked(request, user)
        t = kit.t(request)
        token = data.get("form_token", "")
        if not 8 <= len(token) <= 64:
            return detail(request, user, account_id, message="", error=t("users.form_expired"))
        try:
            amount = owner.parse_amount(data.get("amount", ""), billing.SETTINGS.exponent)
            note = (data.get("note") or "").strip()[:200]
            def topped(c: Any) -> dict:
                before = reports.user_detail(c, account_id, recent=0)["balance_minor"]
                out = owner.topup_account(c, account_id, amount, currency=billing.SETTINGS.currency,
                                          key=f"web:{token}", note=f"{note} (by {user['name']}, web)".strip())
                if out["applied"]:
                    changes.record(c, user["name"], "topup", f"account {account_id}", {"balance_minor": before},
                                   {"balance_minor": out["balance_minor"], "amount_minor": amount, "note": note})
                return out
            out = await edge.store.write(topped)
        except owner.OwnerError as e:
            return detail(request, user, account_id, message="", error=str(e))
        return RedirectResponse(f"/users/{account_id}?topped={out['entry_id']}", status_code=303)

    @app.post("/users/{account_id:int}/contact", include_in_schema=False)
    async def contact(request: Request, account_id: int) -> Response:
        user = kit.page_user(request, "operator")
        data = await kit.checked(request, user)

        def change(c: Any) -> None:
            old, new = owner.update_contact(c, account_id, name=data.get("name", ""), phone=data.get("phone", ""),
                                            email=data.get("email", ""))
            if old != new:
                changes.record(c, user["name"], "user.contact", f"account {account_id}", old, new)
        return await written(request, user, account_id, change, "saved=1")

    async def written(request: Request, user: dict, account_id: int, change: Any, done: str) -> Response:
        """Write `change`; back to the user's page saying `done`, or saying why not (404: no such user)."""
        try:
            await edge.store.write(change)
        except owner.OwnerError as e:
            if cards.get_account(edge.store.db.conn, account_id) is None:
                raise HTTPException(404, str(e)) from None
            return detail(request, user, account_id, message="", error=str(e), http_status=422)
        return RedirectResponse(f"/users/{account_id}?{done}", status_code=303)

    @app.post("/users/{account_id:int}/master-pass", include_in_schema=False)
    async def master_pass(request: Request, account_id: int) -> Response:
        """Owners only: the user's cards become master passes (stop any session, start none) or stop being."""
        user = kit.page_user(request, "owner")
        data = await kit.checked(request, user)
        on = data.get("on") == "yes"

        def change(c: Any) -> None:
            if owner.set_master_pass(c, account_id, on) != on:
                changes.record(c, user["name"], "user.master_pass", f"account {account_id}", {"master_pass": not on},
                               {"master_pass": on})
        return await written(request, user, account_id, change, "master=1")

    @app.get("/users/{account_id:int}.csv", include_in_schema=False)
    async def user_csv(request: Request, account_id: int) -> Response:
        user = kit.page_user(request)
        try:
            rep = reports.user_report(edge.store.db.conn, account_id)
        except reports.ReportError:
            raise HTTPException(404, f"no user {account_id}") from None
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["started (site time)", "stopped (site time)", "charger", "card", "kWh",
                    f"cost ({billing.SETTINGS.currency})"])
        for s in rep["sessions"]:
            w.writerow([kit.when(s["started_at"]), kit.when(s["stopped_at"]), s["charger_id"],
                        card_shown(s["id_tag"] or "", user), f"{(s['energy_wh'] or 0) / 1000:.3f}",
                        format_minor(s["captured_minor"] or 0, billing.SETTINGS.exponent)])
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="user-{account_id}.csv"',
                                 "Cache-Control": "no-store"})

