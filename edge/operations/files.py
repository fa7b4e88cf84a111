"""Files the edge moves to and from chargers on a site without internet: firmware images it serves for
UpdateFirmware, and log files chargers upload after GetDiagnostics (1.6) / GetLog (2.0.1).

Each transfer has a one-time secret that is the URL's path (`/files/firmware/SECRET/NAME`,
`/files/logs/SECRET`): chargers cannot send a bearer token, so the unguessable path is the permission, valid
until the transfer ends or expires. The charger's status notifications (FirmwareStatusNotification,
DiagnosticsStatusNotification, LogStatusNotification) are written onto its newest open transfer
(`edge.store.ops.transfer_status`). Files live in `files/` beside the database. Plain functions; callers
commit."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge.clock import now_iso
from edge.store.ops import TRANSFER_OVER

VALID_FOR = timedelta(days=2)  # a transfer's URL works this long (a charger may retrieve firmware later)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


class FileError(ValueError):
    """A file that cannot be stored or served as asked; the message says why."""


def folder(db_path: str, kind: str) -> Path:
    """Where files of `kind` ("firmware", "logs") are kept: beside the database."""
    return Path(db_path).resolve().parent / "files" / kind


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def add_firmware(conn: sqlite3.Connection, db_path: str, source: str, name: str | None = None) -> dict:
    """Copy the image at `source` into the edge's firmware folder (whole or not at all); its row."""
    src = Path(source)
    if not src.is_file():
        raise FileError(f"no file {source}")
    name = name or src.name
    if not _NAME.match(name):
        raise FileError(f"a firmware name is letters, digits, '.', '_', '+' or '-' (up to 128), got {name!r}")
    if conn.execute("SELECT 1 FROM firmware WHERE name = ?", (name,)).fetchone():
        raise FileError(f"a firmware image named {name!r} exists (remove it first: sitekeeper firmware remove {name})")
    dest = folder(db_path, "firmware")
    dest.mkdir(parents=True, exist_ok=True)
    part = dest / f".{name}.part"
    shutil.copyfile(src, part)
    with part.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(part, dest / name)
    row = {"name": name, "size": (dest / name).stat().st_size, "sha256": _sha256(dest / name), "added": now_iso()}
    conn.execute("INSERT INTO firmware (name, size, sha256, added) VALUES (:name, :size, :sha256, :added)", row)
    return row


def firmware_listed(conn: sqlite3.Connection) -> list[dict]:
    rows = conn.execute("SELECT name, size, sha256, added FROM firmware ORDER BY added DESC, name").fetchall()
    return [{"name": n, "size": s, "sha256": h, "added": a} for n, s, h, a in rows]


def remove_firmware(conn: sqlite3.Connection, db_path: str, name: str) -> None:
    if conn.execute("DELETE FROM firmware WHERE name = ?", (name,)).rowcount == 0:
        raise FileError(f"no firmware image named {name!r}")
    (folder(db_path, "firmware") / name).unlink(missing_ok=True)


def firmware_path(conn: sqlite3.Connection, db_path: str, name: str) -> Path:
    if conn.execute("SELECT 1 FROM firmware WHERE name = ?", (name,)).fetchone() is None:
        raise FileError(f"no firmware image named {name!r} (sitekeeper firmware list)")
    return folder(db_path, "firmware") / name


def new_transfer(conn: sqlite3.Connection, kind: str, charger_id: str, who: str, file: str | None = None) -> dict:
    """A transfer about to be asked of a charger: its id (the 2.0.1 requestId) and secret."""
    now = datetime.now(UTC)
    secret = secrets.token_urlsafe(24)
    at = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    cur = conn.execute(
        "INSERT INTO file_transfers (kind, charger_id, secret, file, status, history, who, created, updated, expires)"
        " VALUES (?, ?, ?, ?, 'requested', ?, ?, ?, ?, ?)",
        (kind, charger_id, secret, file, json.dumps([[at, "requested"]]), who, at, at,
         (now + VALID_FOR).strftime("%Y-%m-%dT%H:%M:%SZ")))
    return {"id": int(cur.lastrowid), "secret": secret}


def mark(conn: sqlite3.Connection, transfer_id: int, status: str) -> None:
    """Set a transfer's status (the edge's own word: refused, not_connected, received)."""
    at = now_iso()
    row = conn.execute("SELECT history FROM file_transfers WHERE id = ?", (transfer_id,)).fetchone()
    if row is not None:
        conn.execute("UPDATE file_transfers SET status = ?, history = ?, updated = ? WHERE id = ?",
                      (status, json.dumps([*json.loads(row[0]), [at, status]]), at, transfer_id))


def open_transfer(conn: sqlite3.Connection, kind: str, secret: str) -> dict | None:
    """The transfer a charger's request names by its secret, if it is still open."""
    row = conn.execute("SELECT id, charger_id, file, status, expires FROM file_transfers WHERE kind = ? AND secret = ?",
                       (kind, secret)).fetchone()
    if row is None or row[4] < now_iso() or row[3] in TRANSFER_OVER[kind] or \
            row[3] in ("refused", "not_connected", "received"):
        return None
    return {"id": row[0], "charger_id": row[1], "file": row[2], "status": row[3]}


def log_path(db_path: str, charger_id: str, transfer_id: int) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", charger_id)
    return folder(db_path, "logs") / safe / f"{transfer_id}.log"


def received(conn: sqlite3.Connection, transfer_id: int, name: str, size: int) -> None:
    """A log upload arrived whole (its file is in place)."""
    conn.execute("UPDATE file_transfers SET file = ?, size = ? WHERE id = ?", (name, size, transfer_id))
    mark(conn, transfer_id, "received")


def transfers(conn: sqlite3.Connection, charger_id: str, kind: str, limit: int = 50) -> list[dict]:
    """A charger's transfers of `kind`, newest first, with the statuses it went through."""
    rows = conn.execute("SELECT id, file, size, status, history, who, created, updated FROM file_transfers"
                        " WHERE charger_id = ? AND kind = ? ORDER BY id DESC LIMIT ?",
                        (charger_id, kind, limit)).fetchall()
    return [{"id": i, "file": f, "size": s, "status": st, "history": json.loads(h), "who": w, "created": c,
             "updated": u} for i, f, s, st, h, w, c, u in rows]


def transfer(conn: sqlite3.Connection, transfer_id: int) -> dict | None:
    row = conn.execute("SELECT id, kind, charger_id, file, size, status FROM file_transfers WHERE id = ?",
                       (transfer_id,)).fetchone()
    return None if row is None else dict(zip(("id", "kind", "charger_id", "file", "size", "status"), row,
                                              strict=True))
