"""What this machine offers to the hardware suite: a Pi's GPIO chip and SPI bus (skips elsewhere)."""

from __future__ import annotations

import os

import pytest


def _is_pi() -> bool:
    try:
        with open("/proc/device-tree/model") as f:
            return "Raspberry Pi" in f.read()
    except OSError:
        return False


@pytest.mark.skipif(not _is_pi(), reason="not a Raspberry Pi (/proc/device-tree/model does not say so)")
def test_gpio_and_spi_devices_present():
    assert any(name.startswith("gpiochip") for name in os.listdir("/dev")), "no /dev/gpiochip*"
    assert any(name.startswith("spidev") for name in os.listdir("/dev")), "SPI off: enable it in raspi-config"
