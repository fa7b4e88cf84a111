"""Keeping the site's database safe from the ways an owner or installer can lose it: a database made by
mistake (a command run from the wrong folder), one this process cannot write (made by root, restored without
`chown`), one deleted or swapped under the running edge, and two processes that each think they own it.

Each check gives one `StoreError` whose message names the file and says what to do. Plain functions and a
small lock object; `edge.store.sqlite.Store` and the daemon call them.
"""

from __future__ import annotations

import fcntl
import os
import pwd
from dataclasses import dataclass
from pathlib import Path


class StoreError(RuntimeError):
    """The database cannot be used as asked; the message says why and what to do."""


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def me() -> str:
    """The user this process runs as."""
    return _user(os.geteuid())


def check_path(path: str, *, create: bool) -> None:
    """The database at `path` can be opened: it exists (or `create`), and is a file in a folder."""
    if path == ":memory:":
        return
    p = Path(path)
    if p.is_dir():
        raise StoreError(f"store.path {path} is a folder, not a database file (give a file name, e.g. {p / 'site.db'})")
    if not p.exists() and not create:
        raise StoreError(f"no database at {path}")
    if p.parent.exists() and not p.parent.is_dir():
        raise StoreError(f"store.path {path}: {p.parent} is not a folder")


def check_writable(path: str) -> None:
    """This process can write the database, its -wal and -shm and the folder they live in (SQLite makes the
    -wal and -shm files there); else one line naming the file, its owner and this user."""
    if path == ":memory:":
        return
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    for f in (p, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if f.exists() and not os.access(f, os.R_OK | os.W_OK):
            owner = _user(f.stat().st_uid)
            if owner != me():
                raise StoreError(f"cannot write {f}: it belongs to {owner} and this process runs as {me()}"
                                 f" (fix: sudo chown {me()}: {path}*)")
            raise StoreError(f"cannot write {f}: it is read-only or immutable for {me()}, its owner"
                             f" (check: ls -l {f}; lsattr {f})")
    if folder.exists() and not os.access(folder, os.W_OK | os.X_OK):
        owner = _user(folder.stat().st_uid)
        raise StoreError(f"cannot write in {folder} (the database's folder, where SQLite keeps its -wal file):"
                         f" it belongs to {owner} and this process runs as {me()} (fix: sudo chown {me()}: {folder})")


@dataclass(frozen=True)
class Identity:
    """Which file a path named when it was opened: a delete, or a restore copied over it, changes this."""

    device: int
    inode: int

    @classmethod
    def of(cls, path: str) -> Identity | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return cls(st.st_dev, st.st_ino)


def same_file(a: str, b: str) -> bool:
    """`a` and `b` are one file (or `b` is the live database's -wal/-shm/-journal)."""
    ra, rb = os.path.realpath(a), os.path.realpath(b)
    if rb in (ra, f"{ra}-wal", f"{ra}-shm", f"{ra}-journal"):
        return True
    ia, ib = Identity.of(a), Identity.of(b)
    return ia is not None and ia == ib


class Lock:
    """An exclusive lock beside the database (`PATH.lock`; `what` names the holder, e.g. "edge", "sync"):
    one running edge per database, one sync per site. Released when the process ends, however it ends."""

    def __init__(self, path: str, what: str):
        self.path = f"{path}.{what}.lock"
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 100).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreError(f"another sitekeeper {self.what} already runs on this database (pid {holder};"
                             f" lock {self.path}): stop it first") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def held(self) -> bool:
        """Some process holds this lock now (it is running), this one or another."""
        if self._fd is not None:
            return True
        if not os.path.exists(self.path):
            return False
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
