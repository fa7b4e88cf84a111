"""The site's cheap health checks, shared by `sitekeeper doctor` and `/healthz`: free disk where the database
lives and whether the system clock is synchronised (a Pi has no RTC). Each is a dict {check, status ("ok",
"warn", "fail", "skip"), message, fix}: one line saying what is wrong and one saying what to do."""

from __future__ import annotations

import shutil
from pathlib import Path

from edge.clock import clock_synced

Result = dict[str, str]

DISK_OK_MB, DISK_FAIL_MB = 1024, 200


def result(check: str, status: str, message: str, fix: str = "") -> Result:
    return {"check": check, "status": status, "message": message, "fix": fix}


def disk(db_path: str) -> Result:
    """Free space in the database's folder: below 1 GB a warning, below 200 MB a failure (the store is about to
    stop taking writes)."""
    if db_path == ":memory:":
        return result("disk", "skip", "the database is in memory")
    folder = Path(db_path).resolve().parent
    mb = shutil.disk_usage(folder).free // 2**20
    status = "ok" if mb >= DISK_OK_MB else "warn" if mb >= DISK_FAIL_MB else "fail"
    return result("disk", status, f"{mb} MB free in {folder}",
                  "" if status == "ok" else "free space, or move the database to USB storage (docs/operations.md)")


def clock() -> Result:
    if clock_synced():
        return result("clock", "ok", "the system clock is synchronised")
    return result("clock", "warn", "the system clock is not synchronised (records say so until it is)",
                  "check the network and `timedatectl` (systemd-timesyncd)")
