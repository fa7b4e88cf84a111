"""`sitekeeper backup DEST`: a consistent copy of the site's database, safe to take while the edge runs.

SQLite's online backup API copies the database as one snapshot (under WAL the edge keeps writing meanwhile);
the copy is a single file (journal mode DELETE), checked with ``PRAGMA integrity_check``, written under a
temporary name, fsynced and only then renamed into place, so a backup that is there is a whole one.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from edge.store.guard import same_file

COUNTED = ("accounts", "cards", "ledger", "transactions", "outbox")


class BackupError(Exception):
    pass


def backup(src: str, dest: str | Path, *, force: bool = False) -> dict:
    """Copy the database at `src` to `dest`; return what was copied (bytes, row counts)."""
    target = Path(dest)
    if same_file(src, str(target)) or same_file(src, str(target.with_name(target.name + ".part"))):
        raise BackupError(f"{target} is the live database (or its -wal/-shm): a backup must go to another file")
    if target.exists() and not force:
        raise BackupError(f"{target} exists (--force replaces it)")
    if not Path(src).exists():
        raise BackupError(f"no database at {src}")
    part = target.with_name(target.name + ".part")
    part.unlink(missing_ok=True)
    try:
        source = sqlite3.connect(src, timeout=30)
        copy = sqlite3.connect(part)
        try:
            source.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")
            verdict = copy.execute("PRAGMA integrity_check").fetchone()[0]
            if verdict != "ok":
                raise BackupError(f"the copy fails its integrity check: {verdict}")
            tables = {name for (name,) in copy.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            counts = {t: copy.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTED if t in tables}
            version = copy.execute("PRAGMA user_version").fetchone()[0]
        finally:
            copy.close()
            source.close()
        with open(part, "rb") as f:
            os.fsync(f.fileno())
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return {"path": str(target), "bytes": target.stat().st_size, "schema": version, "counts": counts}
