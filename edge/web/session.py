"""Login sessions of the owner backend: a random session id in a signed, HttpOnly, SameSite=Strict cookie
(Secure when the page came over TLS); the site keeps only a hash of each id, with its account, its CSRF token
and when it ends. Every form carries the session's CSRF token (the login form a per-browser one, in a cookie
of its own), and a POST without the right one is refused. Plain functions on a connection; callers commit."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from datetime import UTC, datetime, timedelta

COOKIE = "sk_session"
LOGIN_CSRF = "sk_login_csrf"
LASTS = timedelta(hours=12)


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def secret(conn: sqlite3.Connection) -> bytes:
    """The site's cookie-signing key (made once, kept in the database)."""
    row = conn.execute("SELECT value FROM web_secrets WHERE name = 'cookie'").fetchone()
    if row is None:
        conn.execute("INSERT OR IGNORE INTO web_secrets (name, value) VALUES ('cookie', ?)", (secrets.token_hex(32),))
        row = conn.execute("SELECT value FROM web_secrets WHERE name = 'cookie'").fetchone()
    return bytes.fromhex(row[0])


def sign(key: bytes, value: str) -> str:
    return f"{value}.{hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]}"


def unsign(key: bytes, signed: str | None) -> str | None:
    value, _, mac = (signed or "").rpartition(".")
    if not value or not hmac.compare_digest(sign(key, value), signed or ""):
        return None
    return value


def create(conn: sqlite3.Connection, admin: str, now: datetime | None = None) -> str:
    """A new session for `admin`: its id (for the cookie; only its hash is stored)."""
    now = now or datetime.now(UTC)
    sid = secrets.token_urlsafe(32)
    conn.execute("DELETE FROM web_sessions WHERE expires < ?", (now.strftime("%Y-%m-%dT%H:%M:%SZ"),))
    conn.execute("INSERT INTO web_sessions (id_hash, admin, csrf, created, expires) VALUES (?, ?, ?, ?, ?)",
                 (_hash(sid), admin, secrets.token_urlsafe(24), now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  (now + LASTS).strftime("%Y-%m-%dT%H:%M:%SZ")))
    return sid


def lookup(conn: sqlite3.Connection, sid: str | None, now: datetime | None = None) -> dict | None:
    """The session's account, role and CSRF token, if `sid` is a live session."""
    if not sid:
        return None
    at = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    row = conn.execute("SELECT s.admin, a.role, s.csrf FROM web_sessions s JOIN admins a ON a.name = s.admin"
                       " WHERE s.id_hash = ? AND s.expires > ?", (_hash(sid), at)).fetchone()
    return None if row is None else {"name": row[0], "role": row[1], "csrf": row[2]}


def end(conn: sqlite3.Connection, sid: str) -> None:
    conn.execute("DELETE FROM web_sessions WHERE id_hash = ?", (_hash(sid),))
