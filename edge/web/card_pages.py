"""The owner's card pages: `/cards` (every card with its holder, kind, status and money; filter by status or
kind, search), block / unblock / mark lost and assign to another user (operators and owners), and `/cards/new`: enrol a card by tapping
it on the kiosk reader (the page asks the edge every second for the newest unknown tap and fills the form),
or by typing its UID, for a new user or an existing one (`?account=ID`). Each change is in the audit (`edge.operations.changes`) and reaches the chargers'
local lists as any card change does."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from edge.billing import cards, owner, reports
from edge.clock import parse_ts
from edge.money import UidError, normalise_uid
from edge.operations import changes, tokens
from edge.store import journal
from edge.web.pages import Kit

STATUSES = ("active", "blocked", "lost")


def _day(expires: str | None, timezone: str) -> str:
    """A validity end as the day it is in the site's time zone (for a date field), or ""."""
    when = parse_ts(expires)
    return when.astimezone(ZoneInfo(timezone)).date().isoformat() if when else ""


def register(app: FastAPI, edge: Any, kit: Kit) -> None:
    @app.get("/cards", response_class=HTMLResponse, include_in_schema=False)
    async def card_list(request: Request, status: str = "", kind: str = "", q: str = "") -> HTMLResponse:
        user = kit.page_user(request)
        whole = tokens.may(user["role"], "operator")
        needle = q.strip().lower()
        rows = []
        for c in reports.card_list(edge.store.db.conn)["cards"]:
            if (status and c["status"] != status) or (kind and c["kind"] != kind):
                continue
            if needle and needle not in (c["name"] or "").lower() and needle.upper() not in c["uid"]:
                continue
            rows.append({"uid": c["uid"], "shown": c["uid"] if whole else journal.mask_uid(c["uid"]),
                         "name": c["name"] or "—", "account": c["account_id"], "kind": c["kind"],
                         "status": c["status"], "available": kit.money(c["available_minor"])
                         if c["kind"] == "commercial" else "—", "last": kit.when(c["last_used"]) or "—",
                         "expires": kit.when(c["expires"]) if c["expires"] else "", "expired": c["expired"],
                         "expires_day": _day(c["expires"], edge.cfg.site.timezone)})
        users = [{"id": u["id"], "name": u["name"]} for u in reports.user_list(edge.store.db.conn)["users"]]
        return kit.render(request, "cards.html", user, cards=rows, status=status, kind=kind, q=q,
                          statuses=STATUSES, may_change=whole, users=users)

    @app.post("/cards/{uid}/status", include_in_schema=False)
    async def set_status(request: Request, uid: str) -> Response:
        user = kit.page_user(request, "operator")
        data = await kit.checked(request, user)
        new = data.get("status", "")
        if new not in STATUSES:
            raise HTTPException(422, f"a card is {', '.join(STATUSES)}, not {new!r}")

        def change(c: Any) -> None:
            before = cards.get_card(c, uid)
            if before is None:
                raise cards.CardError(f"unknown card {uid}")
            owner.set_card_status(c, uid, new)
            changes.record(c, user["name"], "card.status", f"card {uid}", {"status": before.status},
                           {"status": new})
        try:
            await edge.store.write(change)
        except cards.CardError as e:
            raise HTTPException(404, str(e)) from None
        return RedirectResponse("/cards", status_code=303)

    @app.post("/cards/{uid}/expires", include_in_schema=False)
    async def set_expiry(request: Request, uid: str) -> Response:
        """A card's validity end: a day (valid through its end, in the site's time zone), or none."""
        user = kit.page_user(request, "operator")
        data = await kit.checked(request, user)
        try:
            expires = owner.parse_expiry(data.get("expires", ""), edge.cfg.site.timezone)

            def change(c: Any) -> None:
                before = cards.get_card(c, uid)
                if before is None:
                    raise cards.CardError(f"unknown card {uid}")
                after = cards.update_card(c, uid, expires=expires)
                if after.expires != before.expires:
                    changes.record(c, user["name"], "card.expires", f"card {uid}", {"expires": before.expires},
                                   {"expires": after.expires})
            await edge.store.write(change)
        except owner.OwnerError as e:
            raise HTTPException(422, str(e)) from None
        except cards.CardError as e:
            raise HTTPException(404, str(e)) from None
        return RedirectResponse("/cards", status_code=303)

    def holder(account: str) -> dict | None:
        """The existing user a new card is for (`?account=ID`), or None for a new user."""
        if not account:
            return None
        found = cards.get_account(edge.store.db.conn, int(account)) if account.isdigit() else None
        if found is None:
            raise HTTPException(404, f"no user {account}")
        return found

    @app.get("/cards/new", response_class=HTMLResponse, include_in_schema=False)
    async def new_card(request: Request, account: str = "") -> HTMLResponse:
        user = kit.page_user(request, "operator")
        last = cards.last_unknown(edge.store.db.conn)
        return kit.render(request, "card_new.html", user, error="", since=last["at"] if last else "",
                          holder=holder(account), values={"uid": "", "kind": "commercial", "name": "", "phone": "",
                                                          "email": "", "account": account, "expires": ""})

    @app.post("/cards/assign", include_in_schema=False)
    async def assign(request: Request) -> Response:
        """Move card `uid` to another user (`account`: the user's id, as the list offers it: "12 Juan")."""
        user = kit.page_user(request, "operator")
        data = await kit.checked(request, user)
        uid = data.get("uid", "")
        account = (data.get("account") or "").strip().split(" ")[0]
        back = data.get("back") if data.get("back", "").startswith("/users/") else "/cards"
        try:
            if not account.isdigit():
                raise owner.OwnerError(f"choose the user by number, not {account!r}")

            def move(c: Any) -> int:
                was, card = owner.assign_card(c, uid, int(account))
                if was != card.account_id:
                    changes.record(c, user["name"], "card.assign", f"card {card.uid}", {"account_id": was},
                                   {"account_id": card.account_id, "name": card.name})
                return card.account_id
            await edge.store.write(move)
        except (owner.OwnerError, UidError) as e:
            raise HTTPException(422, str(e)) from None
        return RedirectResponse(back, status_code=303)

    @app.get("/cards/tapped", include_in_schema=False)
    async def tapped(request: Request, since: str = "") -> JSONResponse:
        """The newest unknown card tapped after `since` (for the enrol page), or nothing."""
        kit.page_user(request, "operator")
        last = cards.last_unknown(edge.store.db.conn)
        fresh = last is not None and last["at"] > since
        return JSONResponse({"uid": last["uid"], "reader": last["reader"], "at": last["at"]} if fresh else {},
                            headers={"Cache-Control": "no-store"})

    @app.post("/cards/new", include_in_schema=False)
    async def add_card(request: Request) -> Response:
        user = kit.page_user(request, "operator")
        data = await kit.checked(request, user)
        values = {k: (data.get(k) or "").strip()[:100]
                  for k in ("uid", "kind", "name", "phone", "email", "account", "expires")}
        on = holder(values["account"])
        try:
            uid = normalise_uid(values["uid"])
            if values["kind"] not in ("commercial", "personal"):
                raise owner.OwnerError("a card is commercial (prepaid) or personal (free)")
            expires = owner.parse_expiry(values["expires"], edge.cfg.site.timezone)

            def add(c: Any) -> cards.Card:
                if on is not None:
                    card = owner.register_card(c, uid, values["kind"], account_id=on["id"], expires=expires)
                else:
                    card = owner.register_card(c, uid, values["kind"], name=values["name"] or None,
                                               phone=values["phone"] or None, email=values["email"] or None,
                                               expires=expires)
                changes.record(c, user["name"], "card.add", f"card {uid}", None,
                               {"kind": card.kind, "account_id": card.account_id, "name": card.name,
                                "expires": card.expires})
                return card
            card = await edge.store.write(add)
        except (UidError, owner.OwnerError, cards.CardError) as e:
            return kit.render(request, "card_new.html", user, 422, error=str(e), since="", values=values,
                              holder=on)
        return RedirectResponse(f"/users/{card.account_id}", status_code=303)
