"""Helpers for the hardware suite: what this machine has (skips with the reason), the person at the Pi
(questions through /dev/tty with a time limit), and the configured readers opened or skipped.
"""

from __future__ import annotations

import os
import select
import termios
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from edge.config import Config, ReaderConfig

HARDWARE_BACKENDS = ("pcsc", "mfrc522")


# -- what this machine has ---------------------------------------------------------------------------------


def pi_model() -> str:
    try:
        with open("/proc/device-tree/model", "rb") as f:
            model = f.read().rstrip(b"\x00").decode(errors="replace").strip()
    except OSError:
        return ""
    return model if "Raspberry Pi" in model else ""


def require_pi() -> str:
    model = pi_model()
    if not model:
        pytest.skip("not a Raspberry Pi (/proc/device-tree/model does not say so)")
    return model


def require_gpio() -> None:
    require_pi()
    if not any(name.startswith("gpiochip") for name in os.listdir("/dev")):
        pytest.skip("no /dev/gpiochip*: this kernel offers no GPIO character device")


def require_spidev(rc: ReaderConfig) -> None:
    require_pi()
    dev = f"/dev/spidev{rc.spi_bus}.{rc.spi_device}"
    if not os.path.exists(dev):
        have = sorted(n for n in os.listdir("/dev") if n.startswith("spidev"))
        pytest.skip(f"no {dev} (have: {', '.join(have) or 'no /dev/spidev* at all'}): turn SPI on with "
                    "`sudo raspi-config nonint do_spi 0` and reboot")


def require_pcscd() -> None:
    sock = os.environ.get("PCSCLITE_CSOCK_NAME", "/run/pcscd/pcscd.comm")
    if not os.path.exists(sock):
        pytest.skip(f"pcscd is not running (no {sock}): `sudo apt-get install pcscd` and "
                    "`sudo systemctl enable --now pcscd.socket`")


# -- the person at the Pi ------------------------------------------------------------------------------


class Person:
    """Talks through /dev/tty: says things, asks yes/no with a time limit."""

    def __init__(self, fd: int, timeout: float):
        self.fd = fd
        self.timeout = timeout

    def say(self, text: str) -> None:
        os.write(self.fd, (text + "\n").encode())

    def ask(self, question: str) -> bool | None:
        """True for y, False for n, None when nobody answered within the time limit."""
        try:
            termios.tcflush(self.fd, termios.TCIFLUSH)  # no stale keys from before the question
        except termios.error:
            pass
        deadline = time.monotonic() + self.timeout
        while True:
            os.write(self.fd, f"\n>>> {question} [y/n] ".encode())
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(left, 0))
            if not ready:
                os.write(self.fd, b"(no answer)\n")
                return None
            answer = os.read(self.fd, 256).decode(errors="replace").strip().lower()
            if answer in ("y", "yes"):
                return True
            if answer in ("n", "no"):
                return False


def need_person(person: Person | None) -> Person:
    """The person to ask, or skip: the test cannot go on without someone tapping cards."""
    if person is None:
        pytest.skip("no TTY for questions: run the suite from a terminal on the Pi (ssh -t is fine)")
    return person


def confirm(person: Person | None, question: str) -> None:
    """Ask the person to confirm what the hardware just did; skip (it ran) when nobody can be asked."""
    if person is None:
        pytest.skip(f"ran it, but there is no TTY to ask: {question}")
    answer = person.ask(question)
    if answer is None:
        pytest.skip(f"no answer within {person.timeout:.0f} s to: {question}")
    if not answer:
        pytest.fail(f"the person said no to: {question}", pytrace=False)


# -- readers --------------------------------------------------------------------------------------------


def reader_config(site_config: Config, reader_name: str | None) -> ReaderConfig:
    if reader_name is None:
        pytest.skip("no reader to test: the config has no [reader.*] table with backend \"pcsc\" or "
                    "\"mfrc522\" (sim readers need no hardware)")
    return site_config.reader[reader_name]


@contextmanager
def opened_reader(name: str, rc: ReaderConfig) -> Iterator[Any]:
    """The configured reader, open; skips with the reason when its hardware or service is not there."""
    from edge.rfid import ReaderGone, ReaderUnavailable
    from edge.rfid.loop import make_reader

    if rc.backend == "mfrc522":
        require_spidev(rc)
    elif rc.backend == "pcsc":
        require_pcscd()
    reader = make_reader(name, rc)
    try:
        reader.open()
    except ReaderUnavailable as e:
        pytest.skip(f"reader {name} ({rc.backend}) cannot run here: {e}")
    except ReaderGone as e:
        pytest.skip(f"reader {name} ({rc.backend}) is not there: {e}")
    try:
        yield reader
    finally:
        reader.close()


def wait_for_card(reader: Any, rc: ReaderConfig, timeout: float) -> str | None:
    """The first UID the reader sees within `timeout` seconds, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        uid = reader.poll()
        if uid is not None:
            return uid
        time.sleep(rc.poll_interval)
    return None


def wait_for_no_card(reader: Any, rc: ReaderConfig, timeout: float, empty_polls: int = 3) -> bool:
    """True once `empty_polls` polls in a row saw no card (within `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    empty = 0
    while time.monotonic() < deadline:
        empty = empty + 1 if reader.poll() is None else 0
        if empty >= empty_polls:
            return True
        time.sleep(rc.poll_interval)
    return False
