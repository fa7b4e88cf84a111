"""`sitekeeper backup` against a running edge: a whole, checked, single-file copy of the site's money and
sessions, taken while chargers keep charging."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess

from conftest import SITEKEEPER
from peers import Charger


def run_backup(edge, dest, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "backup", str(dest), *extra],
                          capture_output=True, text=True, timeout=60)


async def test_backup_while_charging_is_whole_and_single_file(edge_factory, tmp_path):
    edge = edge_factory()
    ch = await Charger(edge.url, "B1", "1.6").connect()
    try:
        await ch.boot16()
        first = await ch.start16("04AABBCCDD")
        await ch.stop16(first.transaction_id, 5000)
        second = await ch.start16("04AABBCCDD")  # a session still open while the copy is taken
        await ch.meter16(second.transaction_id, 1500)
        dest = tmp_path / "copy" / "site.db"
        dest.parent.mkdir()
        out = await asyncio.to_thread(run_backup, edge, dest)
        assert out.returncode == 0, out.stderr
        assert "integrity ok" in out.stdout and "2 transactions" in out.stdout
        await ch.stop16(second.transaction_id, 9000)  # the edge goes on meanwhile
    finally:
        await ch.close()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["site.db"], "one file, no -wal beside it"
    copy = sqlite3.connect(f"file:{dest}?mode=ro", uri=True)
    rows = copy.execute("SELECT id, meter_start, meter_stop FROM transactions ORDER BY id").fetchall()
    assert rows == [(first.transaction_id, 1000, 5000), (second.transaction_id, 1000, None)]
    assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    copy.close()
    live = edge.query("SELECT meter_stop FROM transactions WHERE id = ?", (second.transaction_id,))
    assert live == [(9000,)], "the live database went on after the copy"
    # an existing backup is not overwritten without --force
    again = run_backup(edge, dest)
    assert again.returncode == 2 and "exists" in again.stderr
    assert run_backup(edge, dest, "--force").returncode == 0
    assert sorted(p.name for p in dest.parent.iterdir()) == ["site.db"]


def test_backup_of_a_site_without_a_database_fails_cleanly(tmp_path):
    cfg = tmp_path / "site.toml"
    cfg.write_text(f'[store]\npath = "{tmp_path / "none" / "site.db"}"\n')
    out = subprocess.run([SITEKEEPER, "--config", str(cfg), "backup", str(tmp_path / "b.db")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "no database" in out.stderr
    assert not (tmp_path / "b.db").exists() and not (tmp_path / "b.db.part").exists()
