"""Who may call the edge's HTTP API: a bearer token (`edge.operations.tokens`) whose role allows the route.

Every `/api/` route takes `Depends(need("viewer" | "operator" | "owner"))`: no token or an unknown one is
401 (with `WWW-Authenticate: Bearer`), a role that may not is 403; the route gets the token's name (who asked,
for the audit). `/healthz` and `/metrics` need none."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import HTTPException, Request

from edge.operations import tokens

_TOUCH_EVERY = 60.0  # seconds: a token's last use is written at most this often


def need(role: str, store: Any) -> Callable[[Request], Awaitable[str]]:
    """A FastAPI dependency: the name of the request's token, if its role may do what needs `role`."""
    touched: dict[str, float] = {}

    async def check(request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "this needs a token: Authorization: Bearer <token>"
                                     " (sitekeeper token create NAME --role ROLE)", {"WWW-Authenticate": "Bearer"})
        found = tokens.check(store.db.conn, token.strip())
        if found is None:
            raise HTTPException(401, "unknown or revoked token", {"WWW-Authenticate": "Bearer"})
        name, has = found
        if not tokens.may(has, role):
            raise HTTPException(403, f"a {has} token may not do this (it needs {role})")
        now = time.monotonic()
        if now - touched.get(name, -_TOUCH_EVERY) >= _TOUCH_EVERY:
            touched[name] = now
            store.write_soon(lambda c: c.execute("UPDATE api_tokens SET last_used = strftime('%Y-%m-%dT%H:%M:%SZ')"
                                                 " WHERE name = ?", (name,)))
        return name

    return check
