"""`sudo ./setup.sh --install` on a fresh Debian 12 under a real systemd (tests/container.py): the services
start and say they are ready, a simulated charger charges and is billed, `systemctl reload` applies a config
change, a kill -9 of the edge is restarted by systemd with nothing lost, a hung loop is killed by the watchdog,
the units rate at most 3.0 in `systemd-analyze security`, the logs are capped, `sitekeeper doctor` is clean, and running the
install again upgrades with a backup and the data kept."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from container import Container, why_not

REPO = Path(__file__).resolve().parent.parent
SK = "sudo -u sitekeeper /opt/sitekeeper/.venv/bin/sitekeeper --config /etc/sitekeeper/sitekeeper.toml"
pytestmark = pytest.mark.skipif(why_not() is not None, reason=why_not() or "")


def wait(box: Container, command: str, want, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = box.run(command, check=False).stdout.strip()
        if want(out):
            return out
        assert time.monotonic() < deadline, f"{command!r} never gave what was wanted; last: {out!r}"
        time.sleep(1)


def main_pid(box: Container) -> int:
    return int(box.run("systemctl show -p MainPID --value sitekeeper-edge").stdout.strip())


def test_install_run_restart_watchdog_upgrade(tmp_path):
    box = Container(tmp_path, REPO).boot()  # this checkout at /src, read-only (the installer copies the code)
    try:
        out = box.run("cd /src && ./setup.sh --install", timeout=1500)
        assert "services running: active active" in out.stdout, out.stdout[-3000:]
        assert "admin add" in out.stdout and "ws://" in out.stdout, "it says what to do next"
        assert box.run("stat -c '%U:%G %a' /etc/sitekeeper/sitekeeper.toml").stdout.strip() == "root:sitekeeper 640"
        assert box.run("systemctl show -p Type --value sitekeeper-edge").stdout.strip() == "notify"
        journald = box.run("systemd-analyze cat-config systemd/journald.conf --no-pager").stdout
        assert "SystemMaxUse=64M" in journald and "RuntimeMaxUse=16M" in journald, "the logs are capped"

        # a card, and a simulated charger that charges with it
        box.run(f"{SK} cards add 04A1B2C3 --kind commercial --name 'Ana Cruz' && {SK} topup 04A1B2C3 500")
        box.run(f"{SK} simulate --chargers 1 --sessions 1 --card 04A1B2C3 --meter-interval 0.2", timeout=180)
        sessions = box.run(f"{SK} sessions list --json").stdout
        assert '"charger_id": "SIM0001"' in sessions and '"captured_minor"' in sessions
        assert re.search(r'"captured_minor": [1-9]', sessions), "billed"

        # systemctl reload applies a config change
        box.run("sed -i 's/^name = .*/name = \"Depot Reloaded\"/' /etc/sitekeeper/sitekeeper.toml")
        box.run("systemctl reload sitekeeper-edge")
        wait(box, "journalctl -u sitekeeper-edge --no-pager | grep 'config reloaded'", lambda s: "site.name" in s)

        # kill -9: systemd starts it again, nothing lost
        before = main_pid(box)
        box.run(f"kill -9 {before}")
        wait(box, "systemctl show -p MainPID --value sitekeeper-edge", lambda s: s not in ("0", str(before), ""))
        wait(box, "systemctl is-active sitekeeper-edge", lambda s: s == "active")
        assert box.run(f"{SK} cards show 04A1B2C3").returncode == 0

        # a hung loop: the watchdog (here 6 s) kills it and systemd starts it again
        box.run("mkdir -p /etc/systemd/system/sitekeeper-edge.service.d && printf '[Service]\\nWatchdogSec=6\\n' >"
                " /etc/systemd/system/sitekeeper-edge.service.d/test-watchdog.conf && systemctl daemon-reload &&"
                " systemctl restart sitekeeper-edge")
        hung = main_pid(box)
        box.run(f"kill -STOP {hung}")
        wait(box, "systemctl show -p MainPID --value sitekeeper-edge", lambda s: s not in ("0", str(hung), ""), 45)
        assert "Watchdog timeout" in box.run("journalctl -u sitekeeper-edge --no-pager").stdout
        wait(box, "systemctl is-active sitekeeper-edge", lambda s: s == "active")

        # hardened as measured by systemd itself, and the doctor finds nothing wrong
        for unit in ("sitekeeper-edge", "sitekeeper-sync"):
            rated = box.run(f"systemd-analyze security {unit} --no-pager").stdout
            score = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", rated).group(1))
            assert score <= 3.0, rated[-2000:]
        doctor = box.run(f"{SK} doctor", check=False)
        assert doctor.returncode == 0 and "FAIL" not in doctor.stdout, doctor.stdout

        # running the install again upgrades: a backup first, the data kept, the services back
        again = box.run("cd /src && ./setup.sh --install", timeout=900)
        assert "backed up the database" in again.stdout
        assert box.run("ls /var/lib/sitekeeper/backups/").stdout.strip().startswith("before-upgrade-")
        assert "Ana Cruz" in box.run(f"{SK} cards show 04A1B2C3").stdout
        wait(box, "systemctl is-active sitekeeper-edge sitekeeper-sync", lambda s: s.split() == ["active", "active"])
    finally:
        box.stop()
