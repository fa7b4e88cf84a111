"""The cloud's commands already applied, each with the answer it got, so that a command delivered twice (the
broker's at-least-once, a restart in between) is applied once and answered the same way both times; and a
savepoint, so that a command that fails changes nothing."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from edge.clock import now_iso


def answer_of(conn: sqlite3.Connection, cmd_id: str) -> dict | None:
    """{"ok", "error", "digest", "applied_at"} of the command if it was applied already, else None."""
    row = conn.execute("SELECT ok, error, digest, applied_at FROM applied_commands WHERE id = ?",
                       (cmd_id,)).fetchone()
    return None if row is None else {"ok": bool(row[0]), "error": row[1], "digest": row[2], "applied_at": row[3]}


def remember(conn: sqlite3.Connection, cmd_id: str, kind: str, ok: bool, error: str | None,
             digest: str | None = None) -> None:
    conn.execute("INSERT INTO applied_commands (id, kind, ok, error, applied_at, digest) VALUES (?, ?, ?, ?, ?, ?)",
                 (cmd_id, kind, int(ok), error, now_iso(), digest))


@contextlib.contextmanager
def savepoint(conn: sqlite3.Connection, name: str = "command") -> Iterator[None]:
    """What runs inside commits with the caller's transaction, or is rolled back alone if it raises."""
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")
        raise
    conn.execute(f"RELEASE {name}")
