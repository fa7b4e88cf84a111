"""Fixtures for the hardware suite: the site config, the person at the Pi, the readers to test.

The config comes from `--config PATH` or `$SITEKEEPER_CONFIG`. Questions go to the terminal itself
(/dev/tty), so they work under pytest's output capture (no `-s` needed); without a terminal the tests that
need a person skip. Waits are bounded: `--tap-timeout` (default 30 s) for a card, the same for an answer.
The helpers are in `hwkit.py`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hwkit import HARDWARE_BACKENDS, Person

from edge.config import Config, ConfigError, load

# -- options and config ------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sitekeeper hardware")
    group.addoption("--config", dest="sitekeeper_config", default=None,
                    help="the site's config file (default: $SITEKEEPER_CONFIG)")
    group.addoption("--tap-timeout", dest="tap_timeout", type=float, default=30.0,
                    help="seconds to wait for a card or an answer (default 30)")


def config_path(config: pytest.Config) -> str:
    return config.getoption("sitekeeper_config") or os.environ.get("SITEKEEPER_CONFIG", "")


def _load(path: str) -> Config:
    return load(Path(path))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`reader_name`: one test per pcsc/mfrc522 reader in the config (None: none, and the test skips)."""
    if "reader_name" not in metafunc.fixturenames:
        return
    names: list[str | None] = []
    path = config_path(metafunc.config)
    if path:
        try:
            cfg = _load(path)
        except ConfigError:
            cfg = None  # the site_config fixture fails with the message
        if cfg is not None:
            names = [n for n, rc in cfg.reader.items() if rc.backend in HARDWARE_BACKENDS]
    metafunc.parametrize("reader_name", names or [None], ids=[f"reader={n}" for n in names] or ["no-reader"])


@pytest.fixture(scope="session")
def site_config(pytestconfig: pytest.Config) -> Config:
    path = config_path(pytestconfig)
    if not path:
        pytest.skip("no site config: pass --config /etc/sitekeeper/sitekeeper.toml or set SITEKEEPER_CONFIG")
    try:
        return _load(path)
    except ConfigError as e:
        pytest.fail(f"the site config {path} is not valid: {e}", pytrace=False)


@pytest.fixture(scope="session")
def tap_timeout(pytestconfig: pytest.Config) -> float:
    return float(pytestconfig.getoption("tap_timeout"))


@pytest.fixture(scope="session")
def person_or_none(tap_timeout: float) -> Iterator[Person | None]:
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        yield None
        return
    try:
        yield Person(fd, tap_timeout)
    finally:
        os.close(fd)

