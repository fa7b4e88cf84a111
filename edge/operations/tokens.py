"""Bearer tokens for the edge's HTTP API, and the roles they carry.

A token is shown once, when it is made (`sitekeeper token create NAME --role ROLE`); the site keeps only its
SHA-256 (a token is 32 random bytes: a fast hash is enough, and a request is checked in microseconds).
Roles, each allowed what the one before may, and more:

    viewer    reads: chargers, sessions, journal, operations
    operator  also operations on chargers (reset, unlock, start, stop, ...) and top-ups
    owner     also tokens, tariffs, settings

The daemon makes a local token for the kiosk and the CLI on the Pi itself (`LOCAL`, role owner) and writes it
to a file only the service user can read. Plain functions on a `sqlite3.Connection`; callers commit.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import sqlite3
from pathlib import Path

from edge.clock import now_iso

ROLES = ("viewer", "operator", "owner")
LOCAL = "local"  # the daemon's own token, for the kiosk and the CLI on this machine
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class TokenError(ValueError):
    """A token that cannot be made or removed as asked; the message says why."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def may(role: str, need: str) -> bool:
    """A token of `role` may do what needs `need`."""
    return ROLES.index(role) >= ROLES.index(need)


def create(conn: sqlite3.Connection, name: str, role: str = "viewer", *, replace: bool = False) -> str:
    """A new token named `name` with `role`; the token itself, which is stored only hashed."""
    if not _NAME.match(name or ""):
        raise TokenError(f"a token name is 1 to 64 letters, digits, '.', '_' or '-', got {name!r}")
    if role not in ROLES:
        raise TokenError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if conn.execute("SELECT 1 FROM api_tokens WHERE name = ?", (name,)).fetchone() is not None:
        if not replace:
            raise TokenError(f"a token named {name!r} exists (revoke it first: sitekeeper token revoke {name})")
        conn.execute("DELETE FROM api_tokens WHERE name = ?", (name,))
    token = "sk_" + secrets.token_urlsafe(32)
    conn.execute("INSERT INTO api_tokens (name, role, hash, created) VALUES (?, ?, ?, ?)",
                 (name, role, _digest(token), now_iso()))
    return token


def listed(conn: sqlite3.Connection) -> list[dict]:
    """Every token's name, role, when it was made and last used (never the token)."""
    rows = conn.execute("SELECT name, role, created, last_used FROM api_tokens ORDER BY name").fetchall()
    return [{"name": n, "role": r, "created": c, "last_used": u} for n, r, c, u in rows]


def revoke(conn: sqlite3.Connection, name: str) -> None:
    if conn.execute("DELETE FROM api_tokens WHERE name = ?", (name,)).rowcount == 0:
        raise TokenError(f"no token named {name!r}")


def check(conn: sqlite3.Connection, token: str) -> tuple[str, str] | None:
    """(name, role) of `token`, or None if it is no token of this site."""
    row = conn.execute("SELECT name, role FROM api_tokens WHERE hash = ?", (_digest(token),)).fetchone()
    return None if row is None else (row[0], row[1])


def write_local(conn: sqlite3.Connection, path: Path, name: str = LOCAL, role: str = "owner",
                mode: int = 0o600) -> str:
    """Make the local token anew and write it to `path`, readable by this user only (`mode`); the token.
    The kiosk's (`kiosk_path`: role operator, mode 0640) is readable by the service's group, which the
    kiosk's own user is in."""
    token = create(conn, name, role, replace=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)  # whatever the umask
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(part, path)
    return token


def kiosk_path(db_path: str) -> Path:
    """Where the daemon writes the kiosk's token (role operator): beside the database."""
    return Path(db_path).resolve().parent / "kiosk-api.token"


def local_path(db_path: str) -> Path:
    """Where the daemon writes its local token: beside the database (the service user's own folder)."""
    return Path(db_path).resolve().parent / "local-api.token"


def read_local(db_path: str, kiosk: bool = False) -> str | None:
    """The local token (`kiosk`: the kiosk's), if this user may read it."""
    try:
        return (kiosk_path if kiosk else local_path)(db_path).read_text().strip() or None
    except OSError:
        return None
