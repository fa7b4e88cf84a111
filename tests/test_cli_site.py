"""What a new site owner or installer runs into around a command, through the real `sitekeeper` CLI: which
config and database it uses (found as the daemon finds them; only `run` and `init` make a database), the
site's time zone, and trouble that must be one line, never a traceback (a pipe closed by `head`, a folder
given for a file, a database this user cannot write)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conftest import SITEKEEPER
from test_cli_billing import ANA, Site, one_line_error

from edge.billing import cards


def test_the_site_zone_defaults_to_the_machines_and_reports_name_it(tmp_path: Path):
    """With no `[site] timezone` the default was UTC: a Manila site's 18:00-22:00 band was charged at 02:00."""
    s = Site(tmp_path / "site", timezone=None)
    for tz in ("Asia/Manila", "Europe/Berlin"):
        out = subprocess.run([SITEKEEPER, "report", "daily", "--config", str(s.config)], capture_output=True,
                             text=True, env={**os.environ, "TZ": tz}, timeout=60)
        assert out.returncode == 0 and f"({tz})" in out.stdout.splitlines()[0], out.stdout + out.stderr
    s.config.write_text(s.config.read_text().replace("[site]\n", '[site]\ntimezone = "Asia/Tokyo"\n'))
    out = subprocess.run([SITEKEEPER, "report", "daily", "--json", "--config", str(s.config)], capture_output=True,
                         text=True, env={**os.environ, "TZ": "Asia/Manila"}, timeout=60)
    assert json.loads(out.stdout)["timezone"] == "Asia/Tokyo", "the config's own wins"


def test_only_run_and_init_make_a_database_and_the_config_is_found_as_the_daemon_finds_it(tmp_path: Path):
    """Commands run with no --config, from another folder, once each made a new empty database and reported
    "No cards registered"; owners then added cards to the wrong file."""
    s = Site(tmp_path / "site", init=False)
    for args in (["cards", "list"], ["topup", ANA, "10"], ["users", "list"], ["report", "daily"], ["journal", "CP-1"],
                 ["sync", "--status"]):
        proc = s.run(*args, rc=2)
        one_line_error(proc, f"no database at {s.db}")
        assert str(s.config) in proc.stderr and "sitekeeper init" in proc.stderr
        assert not s.db.exists(), args
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "SITEKEEPER_CONFIG": str(s.config)}
    made = subprocess.run([SITEKEEPER, "init"], capture_output=True, text=True, cwd=elsewhere, env=env)
    assert made.returncode == 0 and f"made at {s.db}" in made.stdout
    assert f"config {s.config}, database {s.db}" in made.stderr, "a config found by itself is named"
    listed = subprocess.run([SITEKEEPER, "cards", "list", "--json"], capture_output=True, text=True, cwd=elsewhere,
                            env=env)
    assert listed.returncode == 0 and json.loads(listed.stdout)["cards"] == []
    assert list(elsewhere.iterdir()) == [], "nothing made in the folder the command ran from"
    demo = subprocess.run([SITEKEEPER, "cards", "list"], capture_output=True, text=True, cwd=elsewhere,
                          env={k: v for k, v in os.environ.items() if k != "SITEKEEPER_CONFIG"})
    assert demo.returncode == 2 and "built-in demo config" in demo.stderr and not (elsewhere / "sitekeeper.db").exists()


def test_what_goes_wrong_around_a_command_is_one_line_never_a_traceback(tmp_path: Path):
    """Output piped into `head`, a --config or store.path that is a folder, a database this user cannot write."""
    s = Site(tmp_path / "site")
    s.library(lambda conn: [cards.add_card(conn, f"04{i:06X}", "commercial", name=f"Driver {i}")
                            for i in range(3000)])
    piped = subprocess.run(f"'{SITEKEEPER}' cards list --config '{s.config}' | head -1", shell=True,
                           capture_output=True, text=True, timeout=60)
    assert piped.stdout.count("\n") == 1 and piped.stderr == "", piped.stderr
    folder = tmp_path / "a-folder"
    folder.mkdir()
    proc = subprocess.run([SITEKEEPER, "cards", "list", "--config", str(folder)], capture_output=True, text=True)
    assert proc.returncode == 2
    one_line_error(proc, "is a folder, not a file")
    s.config.write_text(s.config.read_text().replace('path = "data/site.db"', 'path = "data"'))
    proc = s.run("cards", "list", rc=2)
    one_line_error(proc, "is a folder, not a database file")
    s.config.write_text(s.config.read_text().replace('path = "data"', 'path = "data/site.db"'))
    subprocess.run(["chattr", "+i", str(s.db)], check=True)
    try:
        proc = s.run("cards", "add", "04E1E2E9", "--kind", "commercial", "--name", "Eve", rc=1)
    finally:
        subprocess.run(["chattr", "-i", str(s.db)], check=True)
    one_line_error(proc, "the database cannot be used as root")
    assert "sudo -u sitekeeper" in proc.stderr
