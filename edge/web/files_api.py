"""Firmware and logs on a site without internet: the edge serves firmware images to chargers and receives
their log uploads itself, over HTTP on the site network.

    GET  /files/firmware/{secret}/{name}          a charger downloads the image of its UpdateFirmware
    POST|PUT /files/logs/{secret}[/{name}]        a charger uploads the log of its GetDiagnostics / GetLog
                                                  (raw body or multipart/form-data; one upload; size-limited)
    GET  /api/firmware                            the images (`sitekeeper firmware add FILE`)
    POST /api/chargers/{id}/firmware {"file", "at"}   UpdateFirmware; GET: the updates and their statuses
    POST /api/chargers/{id}/logs                  GetDiagnostics / GetLog; GET: the uploads and their statuses
    GET  /api/chargers/{id}/logs/{n}              an uploaded log file

Chargers cannot send a bearer token: the secret in the path (one per transfer, open until the transfer ends
or expires) is their permission. The URLs start with `[operations] files_url`, the address at which chargers
reach this web server."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi import Path as InPath
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel

from edge.operations import files, intents
from edge.web.auth import need
from edge.web.operations_api import MAX_ID, Operator

log = logging.getLogger(__name__)


class FirmwareUpdate(BaseModel):
    file: str
    at: datetime | None = None  # when the charger may fetch it (default: now)


def base_url(edge: Any) -> str:
    """Where chargers reach this web server; 409 when the edge cannot know (it listens on every address)."""
    if edge.cfg.operations.files_url:
        return edge.cfg.operations.files_url.rstrip("/")
    host = edge.cfg.web.host
    if host in ("0.0.0.0", "::", ""):
        raise HTTPException(409, "set [operations] files_url to the address at which chargers reach this edge"
                                 " (e.g. http://192.168.1.10:8080): web.host listens on every address")
    return f"{'https' if edge.cfg.web.tls_cert else 'http'}://{host}:{edge.web_port}"


def _multipart_file(data: bytes, content_type: str) -> tuple[bytes, str | None]:
    """The first file part of a multipart/form-data body, and its file name."""
    boundary = next((p.split("=", 1)[1].strip('"') for p in content_type.split(";")
                     if p.strip().startswith("boundary=")), None)
    if not boundary:
        raise HTTPException(400, "a multipart upload without a boundary")
    for part in data.split(b"--" + boundary.encode())[1:]:
        head, sep, body = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        disposition = head.decode("latin-1")
        name = None
        if 'filename="' in disposition:
            name = disposition.split('filename="', 1)[1].split('"', 1)[0] or None
        return body[:-2] if body.endswith(b"\r\n") else body, name
    raise HTTPException(400, "a multipart upload with no file in it")


def register(app: FastAPI, edge: Any, ops: Operator) -> None:
    viewer, operator = Depends(need("viewer", edge.store)), Depends(need("operator", edge.store))
    db_path = edge.store.path

    async def ask(charger_id: str, kind: str, who: str, file: str | None, make: Any, *args: Any) -> JSONResponse:
        """Make a transfer, send `make`'s message with its location, and close the transfer again when the
        charger does not take it (a refusal, a CALLERROR, no answer; 1.6 GetDiagnostics without a fileName:
        "no diagnostics information is available")."""
        base = base_url(edge)
        transfer = await edge.store.write(lambda c: files.new_transfer(c, kind, charger_id, who, file))
        location = f"{base}/files/{'logs' if kind == 'log' else 'firmware'}/{transfer['secret']}"
        location += f"/{file}" if file else ""
        action, payload = ops.say(make, charger_id, location, *args, transfer["id"])
        outcome = await ops.operate(charger_id, action, payload, who)
        response = outcome.response or {}
        if outcome.status != "answered" or response.get("status", "Accepted") != "Accepted" or \
                (action == "GetDiagnostics" and not response.get("fileName")):
            await edge.store.write(lambda c: files.mark(c, transfer["id"], "refused" if outcome.status == "answered"
                                                        else outcome.status))
        return ops.answer(outcome, transfer={"id": transfer["id"], "location": location})

    @app.get("/files/firmware/{secret}/{name}", include_in_schema=False)
    async def firmware_download(secret: str, name: str) -> FileResponse:
        transfer = files.open_transfer(edge.store.db.conn, "firmware", secret)
        if transfer is None or transfer["file"] != name:
            raise HTTPException(404, "no such download (it may have ended or expired)")
        path = files.folder(db_path, "firmware") / name
        if not path.is_file():
            raise HTTPException(410, "the image was removed from the edge")
        log.info("firmware: %s downloads %s (update %d)", transfer["charger_id"], name, transfer["id"])
        return FileResponse(path, media_type="application/octet-stream", filename=name)

    async def log_upload(secret: str, request: Request, name: str | None = None) -> JSONResponse:
        transfer = files.open_transfer(edge.store.db.conn, "log", secret)
        if transfer is None:
            raise HTTPException(404, "no such upload (it may have been used, ended or expired)")
        limit = int(edge.cfg.operations.max_upload_mb * 1_000_000)
        too_big = f"a log upload is at most {edge.cfg.operations.max_upload_mb:g} MB"
        if int(request.headers.get("content-length") or 0) > 4 * limit:
            raise HTTPException(413, too_big)
        # past the limit, the rest is read and dropped (up to 4 times the limit), so that the charger gets the
        # answer rather than a connection closed under its upload
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size <= limit:
                chunks.append(chunk)
            elif size > 4 * limit:
                break
        if size > limit:
            raise HTTPException(413, too_big)
        data = b"".join(chunks)
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            data, name = _multipart_file(data, ctype)
        path = files.log_path(db_path, transfer["charger_id"], transfer["id"])
        await asyncio.get_running_loop().run_in_executor(None, _write_whole, path, data)
        await edge.store.write(lambda c: files.received(c, transfer["id"], name or path.name, len(data)))
        log.info("logs: %s uploaded %d bytes (request %d)", transfer["charger_id"], len(data), transfer["id"])
        return JSONResponse({"received": len(data)}, status_code=201)

    for method in ("POST", "PUT"):
        app.add_api_route("/files/logs/{secret}", log_upload, methods=[method], include_in_schema=False)
        app.add_api_route("/files/logs/{secret}/{name}", log_upload, methods=[method], include_in_schema=False)

    @app.get("/api/firmware", dependencies=[viewer])
    async def firmware_images() -> list[dict]:
        """The firmware images the edge can send (`sitekeeper firmware add FILE`)."""
        return files.firmware_listed(edge.store.db.conn)

    @app.post("/api/chargers/{charger_id}/firmware")
    async def update_firmware(charger_id: str, body: FirmwareUpdate, who: str = operator) -> JSONResponse:
        """UpdateFirmware with the image served by the edge; the charger's statuses follow in GET."""
        try:
            files.firmware_path(edge.store.db.conn, db_path, body.file)
        except files.FileError as e:
            raise HTTPException(404, str(e)) from None
        at = (body.at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return await ask(charger_id, "firmware", who, body.file, intents.update_firmware, at)

    @app.get("/api/chargers/{charger_id}/firmware", dependencies=[viewer])
    async def firmware_updates(charger_id: str) -> list[dict]:
        return files.transfers(edge.store.db.conn, charger_id, "firmware")

    @app.post("/api/chargers/{charger_id}/logs")
    async def request_logs(charger_id: str, who: str = operator) -> JSONResponse:
        """GetDiagnostics / GetLog with an upload address of the edge's own."""
        return await ask(charger_id, "log", who, None, intents.get_logs)

    @app.get("/api/chargers/{charger_id}/logs", dependencies=[viewer])
    async def log_uploads(charger_id: str) -> list[dict]:
        return files.transfers(edge.store.db.conn, charger_id, "log")

    @app.get("/api/chargers/{charger_id}/logs/{transfer_id}", dependencies=[viewer])
    async def log_file(charger_id: str, transfer_id: Annotated[int, InPath(ge=1, le=MAX_ID)]) -> FileResponse:
        transfer = files.transfer(edge.store.db.conn, transfer_id)
        path = files.log_path(db_path, charger_id, transfer_id)
        if transfer is None or transfer["charger_id"] != charger_id or transfer["kind"] != "log" or not path.is_file():
            raise HTTPException(404, f"no log {transfer_id} of charger {charger_id}")
        return FileResponse(path, media_type="application/octet-stream",
                            filename=f"{charger_id}-{transfer_id}-{transfer['file'] or 'log'}")


def _write_whole(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    with part.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)
