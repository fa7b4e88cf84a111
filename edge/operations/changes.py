"""The audit of changes made through the owner backend: who, when, what (`topup`, `card.status`,
`card.add`, ...), on what (`subject`: a card, an account), and the thing before and after (JSON). Written in
the same transaction as the change itself, so one is never without the other. Plain functions; callers commit."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from edge.clock import now_iso


def record(conn: sqlite3.Connection, who: str, what: str, subject: str, before: Any, after: Any) -> None:
    conn.execute("INSERT INTO changes (at, who, what, subject, before, after) VALUES (?, ?, ?, ?, ?, ?)",
                 (now_iso(), who, what, subject, None if before is None else json.dumps(before, default=str),
                  None if after is None else json.dumps(after, default=str)))


def listed(conn: sqlite3.Connection, limit: int = 200) -> list[dict]:
    rows = conn.execute("SELECT id, at, who, what, subject, before, after FROM changes ORDER BY id DESC LIMIT ?",
                        (limit,)).fetchall()
    return [{"id": i, "at": at, "who": who, "what": what, "subject": subject,
             "before": json.loads(b) if b else None, "after": json.loads(a) if a else None}
            for i, at, who, what, subject, b, a in rows]
