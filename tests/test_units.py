"""The systemd units as they will be installed: `systemd-analyze verify` finds nothing to say of them (with
the installed program's path pointed at this checkout's), and `systemd-analyze security` rates each at most
3.0 (the edge's was 8.7 "EXPOSED"): no capabilities, the file system read-only but the state directory, a
system-call filter, closed devices (the kiosk: the display and input only)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parent.parent / "systemd"
NAMES = ["sitekeeper-edge.service", "sitekeeper-sync.service", "sitekeeper-kiosk.service"]
needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (systemd)")


def installed(tmp_path: Path, name: str) -> Path:
    """The unit with this checkout's `sitekeeper` where /opt/sitekeeper's will be."""
    text = (UNITS / name).read_text().replace("/opt/sitekeeper/.venv/bin/sitekeeper",
                                              str(Path(sys.executable).parent / "sitekeeper"))
    path = tmp_path / name
    path.write_text(text)
    return path


@needs_systemd
def test_units_verify_clean(tmp_path):
    paths = [str(installed(tmp_path, n)) for n in NAMES]
    out = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr
    bad = tmp_path / "bad.service"
    bad.write_text("[Service]\nExecStart=/bin/true\nProtectSytem=strict\n")
    said = subprocess.run(["systemd-analyze", "verify", str(bad)], capture_output=True, text=True, timeout=60)
    assert "Unknown key 'ProtectSytem'" in said.stderr, "the check itself can fail"


@needs_systemd
@pytest.mark.parametrize("name", NAMES)
def test_units_are_hardened(name):
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", str(UNITS / name)], capture_output=True,
                         text=True, timeout=60)
    score = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", out.stdout).group(1))
    assert score <= 3.0, out.stdout
    text = (UNITS / name).read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and "Restart=on-failure" in text
    assert "PrivateDevices" not in text or name == "sitekeeper-sync.service", "devices by DeviceAllow, not hidden"


def test_the_installed_config_template_loads(tmp_path):
    """What `setup.sh --install` writes as /etc/sitekeeper/sitekeeper.toml is a config that starts a site."""
    from edge.config import load

    text = (UNITS / "sitekeeper.toml.template").read_text().replace("@SITE_ID@", "site-pi-0a1b2c").replace(
        "@SITE_NAME@", "pi").replace("@TIMEZONE@", "Asia/Manila")
    (tmp_path / "sitekeeper.toml").write_text(text)
    cfg = load(tmp_path / "sitekeeper.toml")
    assert cfg.site.id == "site-pi-0a1b2c" and cfg.site.timezone == "Asia/Manila"
    assert cfg.store.path == "/var/lib/sitekeeper/sitekeeper.db" and cfg.ocpp.host == "0.0.0.0"
    assert not cfg.site.accept_unknown_cards, "an installed site charges only its own cards"
