"""What every `sitekeeper` command shares: loading the config (one line naming the key, exit 2), the site
with its store opened for one read snapshot or one committed write, and one set of output helpers for
tables, `--json` and `--csv`, amounts and times as a person reads them."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from typing import Any

from edge import config
from edge.billing import sessions as billing
from edge.clock import parse_ts
from edge.money import format_minor
from edge.store.guard import StoreError
from edge.store.sqlite import Store


def load_config(args: argparse.Namespace) -> config.Config:
    """The config file the daemon would use (`config.locate`: --config, $SITEKEEPER_CONFIG, /etc/sitekeeper,
    else the built-in demo), checked whole: its billing keys too. A config found by itself (not --config, not
    the demo) is named on stderr with its database, so that nobody works on a file they did not mean."""
    explicit = getattr(args, "config", None)
    path = config.locate(explicit)
    try:
        cfg = config.load(path)
        billing.settings_from_config(cfg)
    except config.ConfigError as e:
        print(f"sitekeeper: config: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if path is not None and not explicit and not getattr(args, "_said", False):
        print(f"sitekeeper: config {cfg.source}, database {cfg.store.path}", file=sys.stderr)
        args._said = True
    return cfg


def open_store(cfg: config.Config, *, create: bool = False) -> Store:
    """The site's database. Only `run` and `init` make one: for any other command a missing database is one
    line naming it and the config, and exit 2 (a command run from the wrong folder once made a new empty one)."""
    try:
        return Store.open(cfg.store.path, create=create)
    except StoreError as e:
        where = f"config {cfg.source}" if cfg.source else "the built-in demo config (no --config)"
        hint = " (start the edge once with `sitekeeper run`, or make it with `sitekeeper init`)" \
            if not os.path.exists(cfg.store.path) else ""
        print(f"sitekeeper: {e}; {where}{hint}", file=sys.stderr)
        raise SystemExit(2) from None


class Site:
    """The loaded config with billing configured; the store is opened only once the input is checked."""

    def __init__(self, args: argparse.Namespace):
        self.cfg = load_config(args)
        self.settings = billing.settings_from_config(self.cfg)
        billing.configure(self.settings)
        self.tz = self.cfg.site.timezone

    @contextlib.contextmanager
    def store(self) -> Iterator[Store]:
        store = open_store(self.cfg)
        try:
            yield store
        finally:
            store.close()

    def read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run the read `fn` in one snapshot of the database."""
        with self.store() as store:
            return store.read_now(fn)

    def write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run `fn` in one committed transaction (nothing is written if it raises)."""
        with self.store() as store:
            return store.write_now(fn)

    # display helpers
    def amount(self, minor: int | None) -> str:
        return "-" if minor is None else format_minor(minor, self.settings.exponent)

    def when(self, ts: str | None, seconds: bool = False) -> str:
        from zoneinfo import ZoneInfo

        dt = parse_ts(ts)
        if dt is None:
            return ts or "-"
        return dt.astimezone(ZoneInfo(self.tz)).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=1, ensure_ascii=False))


def print_table(headers: list[str], rows: list[list[Any]], right: tuple[int, ...] = ()) -> None:
    cells = [[str(c) for c in headers], *[["-" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.rjust(w) if i in right else c.ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip())


def print_csv(fields: list[str], rows: list[dict]) -> None:
    writer = csv.DictWriter(sys.stdout, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)


def fmt_kwh(wh: int | None, digits: int = 2) -> str:
    return "-" if wh is None else f"{wh / 1000:.{digits}f}"


def fmt_duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}"


def count(text: str) -> int:
    """argparse type: an integer ≥ 0."""
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


