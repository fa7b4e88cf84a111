"""The owner backend's door (server-rendered, Jinja2, words from `edge.i18n`): login and logout, the
first-run page that says how to make the first account, the language switch, and `Kit`, what every page
module shares.

Nothing here answers without a login but `/login` itself; every POST carries a CSRF token (the session's,
or before login the browser's own in a cookie). A password is checked off the event loop (scrypt is slow on
purpose), and failures count towards the lockout of `edge.operations.admins`. Pages read the same library
functions as the CLI (`edge.billing.reports`)."""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import urllib.parse
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from edge import i18n
from edge.billing import sessions as billing
from edge.clock import clock_synced, parse_ts
from edge.money import format_money
from edge.operations import admins, tokens
from edge.security import check_secret
from edge.web import session

log = logging.getLogger(__name__)
# no page may be framed or load anything from elsewhere; pages are never cached (they show money and people)
_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
            "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; img-src 'self' data:;"
                               " frame-ancestors 'none'"}  # data: images: the payment provider's QR codes
_HERE = Path(__file__).parent
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(_HERE / "templates"), autoescape=True,
                          undefined=jinja2.StrictUndefined)


class LoginNeeded(Exception):
    """A page asked for without a live session: the answer is a redirect to /login."""

    def __init__(self, path: str):
        self.path = path


async def form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (the pages' forms), at most 64 kB."""
    body = await request.body()
    if len(body) > 65536:
        raise HTTPException(413, "form too large")
    return {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}


def _safe_next(path: str | None) -> str:
    """Only a path on this site (never //elsewhere or a full URL) after login."""
    return path if path and path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


class Kit:
    """What every page module shares: who is logged in, rendering a template in the visitor's language,
    the CSRF check of a form, times in the site's zone, amounts in its currency."""

    def __init__(self, edge: Any):
        self.edge = edge
        self.cookie_key = edge.store.write_now(session.secret)  # made once per database, kept there

    def user_of(self, request: Request) -> dict | None:
        sid = session.unsign(self.cookie_key, request.cookies.get(session.COOKIE))
        return session.lookup(self.edge.store.db.conn, sid)

    def page_user(self, request: Request, role: str = "viewer") -> dict:
        """The logged-in account (a redirect to /login without one; 403 if its role may not)."""
        user = self.user_of(request)
        if user is None:
            raise LoginNeeded(request.url.path)
        if not tokens.may(user["role"], role):
            raise HTTPException(403, f"a {user['role']} account may not do this (it needs {role})")
        return user

    def render(self, request: Request, template: str, user: dict | None, http_status: int = 200,
               domain: str = "", **values: Any) -> HTMLResponse:
        """`template` in the visitor's language; `domain` "driver": a driver's page (the drivers' catalogs)."""
        edge = self.edge
        languages = i18n.DRIVER_LANGUAGES if domain == "driver" else i18n.LANGUAGES
        lang = i18n.pick(request.cookies.get("lang"), request.headers.get("accept-language"), languages)
        login_csrf = request.cookies.get(session.LOGIN_CSRF) or secrets.token_urlsafe(24)
        ctx = {"lang": lang, "t": i18n.translator(lang, domain), "languages": languages,
               "site": edge.cfg.site.name or edge.cfg.site.id, "user": user, "path": request.url.path,
               "csrf": user["csrf"] if user else login_csrf,
               "clock_unsynced": user is not None and not clock_synced(), **values}
        response = HTMLResponse(_ENV.get_template(template).render(ctx), status_code=http_status, headers=_HEADERS)
        if user is None and request.cookies.get(session.LOGIN_CSRF) != login_csrf:
            response.set_cookie(session.LOGIN_CSRF, login_csrf, httponly=True, samesite="strict",
                                secure=request.url.scheme == "https")
        return response

    def t(self, request: Request, domain: str = "") -> Any:
        languages = i18n.DRIVER_LANGUAGES if domain == "driver" else i18n.LANGUAGES
        return i18n.translator(i18n.pick(request.cookies.get("lang"), request.headers.get("accept-language"),
                                         languages), domain)

    @staticmethod
    def csrf_ok(request: Request, sent: str | None, user: dict | None) -> bool:
        want = user["csrf"] if user else request.cookies.get(session.LOGIN_CSRF)
        return bool(want and sent and hmac.compare_digest(want, sent))

    async def checked(self, request: Request, user: dict | None) -> dict[str, str]:
        """The form of a POST whose CSRF token is right (403 otherwise: nothing is changed)."""
        data = await form(request)
        if not self.csrf_ok(request, data.get("csrf"), user):
            raise HTTPException(403, "this form is not from this site (CSRF token missing or wrong)")
        return data

    def when(self, ts: str | None) -> str:
        """A stored UTC time as the site's people read it: local, to the minute."""
        at = parse_ts(ts) if ts else None
        return at.astimezone(ZoneInfo(self.edge.cfg.site.timezone)).strftime("%Y-%m-%d %H:%M") if at else ""

    def when_seconds(self, ts: str | None) -> str:
        at = parse_ts(ts) if ts else None
        return at.astimezone(ZoneInfo(self.edge.cfg.site.timezone)).strftime("%Y-%m-%d %H:%M:%S") if at else ""

    def money(self, minor: int) -> str:
        return format_money(minor, billing.SETTINGS.exponent, billing.SETTINGS.currency)


def register(app: FastAPI, edge: Any) -> Kit:
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    kit = Kit(edge)
    render, page_user, user_of, checked, when = kit.render, kit.page_user, kit.user_of, kit.checked, kit.when
    csrf_ok, signing_key = kit.csrf_ok, (lambda: kit.cookie_key)

    @app.exception_handler(StarletteHTTPException)
    async def page_error(request: Request, exc: StarletteHTTPException) -> Response:
        """A refusal on a page is a page a person can read (the API keeps its JSON answers)."""
        path = request.url.path
        if path.startswith(("/api/", "/files/", "/live/")) or "text/html" not in request.headers.get("accept", ""):
            return await http_exception_handler(request, exc)
        t = kit.t(request)
        return render(request, "error.html", user_of(request), exc.status_code, status=exc.status_code,
                      detail=str(exc.detail), title=t(f"error.{exc.status_code}") if exc.status_code in
                      (403, 404, 413, 422) else t("error.other"))

    @app.exception_handler(LoginNeeded)
    async def to_login(request: Request, exc: LoginNeeded) -> Response:
        return RedirectResponse(f"/login?next={urllib.parse.quote(exc.path)}", status_code=303)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_page(request: Request, next: str = "/") -> HTMLResponse:
        if not admins.any_account(edge.store.db.conn):
            return render(request, "first_run.html", None)
        return render(request, "login.html", None, next=_safe_next(next), name="", message="")

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        data = await form(request)
        name, password, nxt = data.get("name", "")[:64], data.get("password", ""), _safe_next(data.get("next"))
        t = kit.t(request)
        if not csrf_ok(request, data.get("csrf"), None):
            return render(request, "login.html", None, 403, next=nxt, name=name, message=t("login.csrf"))
        until = admins.locked_until(edge.store.db.conn, name)
        if until:
            return render(request, "login.html", None, 429, next=nxt, name=name,
                          message=t("login.locked", until=when(until)))
        role, stored = admins.credentials(edge.store.db.conn, name)
        ok = await asyncio.to_thread(check_secret, password, stored)  # scrypt: off the chargers' loop
        outcome = await edge.store.write(lambda c: admins.record_login(c, name, ok and role is not None))
        if outcome:
            client = request.client.host if request.client else "?"
            log.warning("web: failed login for %r from %s%s", name, client,
                        " (the name is now locked)" if outcome == "locked" else "")
            if outcome == "locked":
                return render(request, "login.html", None, 429, next=nxt, name=name,
                              message=t("login.locked", until=when(admins.locked_until(edge.store.db.conn, name))))
            return render(request, "login.html", None, 401, next=nxt, name=name, message=t("login.wrong"))
        sid = await edge.store.write(lambda c: session.create(c, name))
        response = RedirectResponse(nxt, status_code=303)
        response.set_cookie(session.COOKIE, session.sign(signing_key(), sid), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", max_age=int(session.LASTS.total_seconds()))
        response.delete_cookie(session.LOGIN_CSRF)
        log.info("web: %s logged in", name)
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        await checked(request, page_user(request))
        sid = session.unsign(signing_key(), request.cookies.get(session.COOKIE))
        await edge.store.write(lambda c: session.end(c, sid or ""))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(session.COOKIE)
        return response

    @app.post("/lang", include_in_schema=False)
    async def language(request: Request) -> Response:
        data = await checked(request, user_of(request))
        response = RedirectResponse(_safe_next(data.get("next")), status_code=303)
        if data.get("lang") in i18n.DRIVER_LANGUAGES:  # the owner's pages show English for a driver's Chinese
            response.set_cookie("lang", data["lang"], samesite="lax", max_age=365 * 86400)
        return response

    return kit
