"""The owner backend's accounts: a name, a role (those of `edge.operations.tokens`: viewer, operator, owner)
and a password kept only as a scrypt hash; and the login rule: after `LOCK_AFTER` wrong passwords in a row
for one name (an account or not, so that a lockout says nothing of which names exist) the name is locked for
`LOCK_FOR`, doubling with each further lockout, up to an hour. Plain functions on a connection; callers commit.
There is no default account: `sitekeeper admin add NAME --role owner` makes the first."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta

from edge.clock import now_iso
from edge.operations.tokens import ROLES
from edge.security import hash_secret

LOCK_AFTER = 5
LOCK_FOR = timedelta(minutes=5)
MIN_PASSWORD = 10
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class AdminError(ValueError):
    """An account that cannot be made or changed as asked; the message says why."""


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AdminError(f"a password is at least {MIN_PASSWORD} characters")


def add(conn: sqlite3.Connection, name: str, role: str, password: str) -> None:
    if not _NAME.match(name or ""):
        raise AdminError(f"an account name is 1 to 64 letters, digits, '.', '_', '@' or '-', got {name!r}")
    if role not in ROLES:
        raise AdminError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    _check_password(password)
    if conn.execute("SELECT 1 FROM admins WHERE name = ?", (name,)).fetchone():
        raise AdminError(f"an account named {name!r} exists")
    conn.execute("INSERT INTO admins (name, role, password_hash, created) VALUES (?, ?, ?, ?)",
                 (name, role, hash_secret(password), now_iso()))


def passwd(conn: sqlite3.Connection, name: str, password: str) -> None:
    """A new password; the account's sessions end (it may have been stolen) and a lockout is lifted."""
    _check_password(password)
    if conn.execute("UPDATE admins SET password_hash = ? WHERE name = ?", (hash_secret(password), name)).rowcount == 0:
        raise AdminError(f"no account named {name!r}")
    conn.execute("DELETE FROM web_sessions WHERE admin = ?", (name,))
    conn.execute("DELETE FROM login_failures WHERE name = ?", (name,))


def remove(conn: sqlite3.Connection, name: str) -> None:
    if conn.execute("DELETE FROM admins WHERE name = ?", (name,)).rowcount == 0:
        raise AdminError(f"no account named {name!r}")


def listed(conn: sqlite3.Connection) -> list[dict]:
    rows = conn.execute("SELECT name, role, created, last_login FROM admins ORDER BY name").fetchall()
    return [{"name": n, "role": r, "created": c, "last_login": last} for n, r, c, last in rows]


def any_account(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM admins LIMIT 1").fetchone() is not None


def locked_until(conn: sqlite3.Connection, name: str, now: datetime | None = None) -> str | None:
    """When the lockout on `name` ends (UTC ISO), if it is locked now."""
    row = conn.execute("SELECT locked_until FROM login_failures WHERE name = ?", (name,)).fetchone()
    at = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return row[0] if row and row[0] and row[0] > at else None


def credentials(conn: sqlite3.Connection, name: str) -> tuple[str | None, str | None]:
    """(role, password hash) of `name`, or (None, None): what a login checks (the check itself, scrypt, is
    slow on purpose: callers run `edge.security.check_secret` off the event loop)."""
    row = conn.execute("SELECT role, password_hash FROM admins WHERE name = ?", (name,)).fetchone()
    return (row[0], row[1]) if row else (None, None)


def record_login(conn: sqlite3.Connection, name: str, ok: bool, now: datetime | None = None) -> str:
    """Count a login's outcome: "" (it succeeded: the count is cleared), "wrong", or "locked" (this failure
    locked the name, for `LOCK_FOR`, doubling with each further lockout up to an hour)."""
    now = now or datetime.now(UTC)
    at = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    if ok:
        conn.execute("DELETE FROM login_failures WHERE name = ?", (name,))
        conn.execute("UPDATE admins SET last_login = ? WHERE name = ?", (at, name))
        return ""
    failed = conn.execute("SELECT count FROM login_failures WHERE name = ?", (name,)).fetchone()
    count = (failed[0] if failed else 0) + 1
    locked = None
    if count % LOCK_AFTER == 0:
        times = min(2 ** (count // LOCK_AFTER - 1), 12)
        locked = (now + LOCK_FOR * times).strftime("%Y-%m-%dT%H:%M:%SZ")
    conn.execute("INSERT INTO login_failures (name, count, last, locked_until) VALUES (?, ?, ?, ?)"
                 " ON CONFLICT (name) DO UPDATE SET count = excluded.count, last = excluded.last,"
                 " locked_until = COALESCE(excluded.locked_until, login_failures.locked_until)",
                 (name[:64], count, at, locked))
    return "locked" if locked else "wrong"
