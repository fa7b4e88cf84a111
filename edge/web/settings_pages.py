"""The owner's settings page (owners only): the site's accounts and API tokens (names and roles, never a
password or token), the audit of changes made through these pages (who, when, what, before and after), and a
backup of the database to download (the same whole, integrity-checked copy as `sitekeeper backup`, made off
the event loop in a temporary folder)."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse
from starlette.background import BackgroundTask

from edge.operations import admins, changes, tokens
from edge.store.backup import backup
from edge.web.pages import Kit


def register(app: FastAPI, edge: Any, kit: Kit) -> None:
    @app.get("/settings", response_class=HTMLResponse, include_in_schema=False)
    async def settings(request: Request) -> HTMLResponse:
        user = kit.page_user(request, "owner")
        conn = edge.store.db.conn
        accounts = [{**a, "created": kit.when(a["created"]), "last_login": kit.when(a["last_login"]) or "—"}
                    for a in admins.listed(conn)]
        api = [{**t, "created": kit.when(t["created"]), "last_used": kit.when(t["last_used"]) or "—"}
               for t in tokens.listed(conn)]
        def shown(value: Any) -> str:
            """A change's before or after as people read it: amounts (…_minor) in the site's currency."""
            if value is None:
                return "—"
            if isinstance(value, dict):
                value = {k.removesuffix("_minor"): kit.money(v) if k.endswith("_minor") and isinstance(v, int)
                         else v for k, v in value.items()}
            return json.dumps(value, ensure_ascii=False)

        audit = [{**c, "at": kit.when(c["at"]), "before": shown(c["before"]), "after": shown(c["after"])}
                 for c in changes.listed(conn, 200)]
        return kit.render(request, "settings.html", user, accounts=accounts, api=api, audit=audit,
                          tz=edge.cfg.site.timezone, site_id=edge.cfg.site.id)

    @app.get("/settings/backup", include_in_schema=False)
    async def download_backup(request: Request) -> FileResponse:
        kit.page_user(request, "owner")
        folder = Path(tempfile.mkdtemp(prefix="sitekeeper-backup-"))
        name = f"{edge.cfg.site.id}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.db"
        await asyncio.to_thread(backup, edge.store.path, folder / name)
        return FileResponse(folder / name, media_type="application/vnd.sqlite3", filename=name,
                            background=BackgroundTask(shutil.rmtree, folder, True))
