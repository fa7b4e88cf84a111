"""The `mfrc522` backend: an RC522 (MFRC522) board on a Raspberry Pi's SPI bus, the cheap reader option.

It drives the PyPI package `mfrc522`'s low-level `MFRC522` class: `MFRC522_Request(PICC_REQIDL)` (REQA),
then `MFRC522_Anticoll()` (cascade level 1), which answers the 4 UID bytes and their BCC byte (the XOR of
the four). `uid_from_anticoll` checks the BCC, drops it and gives the normalised hex of the UID bytes, so a
card reads the same here as on a PC/SC reader (which answers GET DATA with the UID bytes alone).

Do not use the package's `SimpleMFRC522.read_id`: its number folds the BCC in as a fifth byte
(`n = uid[0]<<32 | ... | bcc`). A number stored from it maps to our UID as `f"{n:010X}"[:8]`.

Only 4-byte UIDs (MIFARE Classic 1K/4K and the like): a 7- or 10-byte UID card answers cascade level 1 with
the cascade tag 0x88 and the package has no SELECT/level-2 support, so such a card reads as "no card" (and
one warning line says why). Use a PC/SC reader for those cards.

Off a Pi, `open()` raises `ReaderUnavailable` with one clear line: the package imports RPi.GPIO, which
raises RuntimeError (not ImportError) off a Pi. On a Pi 5 RPi.GPIO fails too; `rpi-lgpio` provides the same
module there (and on every other Pi), see the `pi` extra in pyproject.toml.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

from edge.config import ReaderConfig
from edge.money import UidError, normalise_uid
from edge.rfid import ReaderGone, ReaderUnavailable

log = logging.getLogger(__name__)

CASCADE_TAG = 0x88  # first byte of cascade level 1 when the UID is longer than 4 bytes
GPIO_BCM = 11  # RPi.GPIO.BCM: config pins are BCM numbers (the package's default mode is BOARD, 10)
INSTALL_HINT = ".venv/bin/pip install -e '.[pi]' && .venv/bin/pip install --no-deps mfrc522==0.0.7"


def uid_from_anticoll(data: list[int] | bytes) -> str | None:
    """The normalised UID from an anticollision answer (4 UID bytes + BCC), or None if it is not one.

    None when the length is not 5, a value is not a byte, the BCC does not match (a garbled read), or the
    first byte is the cascade tag 0x88 (a 7/10-byte UID card, which this backend does not read).
    """
    raw = list(data)
    if len(raw) != 5 or not all(isinstance(b, int) and 0 <= b <= 0xFF for b in raw):
        return None
    uid, bcc = raw[:4], raw[4]
    if uid[0] ^ uid[1] ^ uid[2] ^ uid[3] != bcc:
        return None
    if uid[0] == CASCADE_TAG:
        return None
    try:
        return normalise_uid(bytes(uid).hex())
    except UidError:  # pragma: no cover - 4 bytes of hex always normalise
        return None


def _pi_model() -> str:
    """'Raspberry Pi 5 Model B Rev 1.0', or '' when this is not a Raspberry Pi."""
    try:
        with open("/proc/device-tree/model", "rb") as f:
            model = f.read().rstrip(b"\x00").decode(errors="replace").strip()
    except OSError:
        return ""
    return model if "Raspberry Pi" in model else ""


class Mfrc522Reader:
    """One RC522 on SPI bus `cfg.spi_bus`, chip select `cfg.spi_device`, reset on BCM pin `cfg.rst_pin`."""

    def __init__(self, name: str, cfg: ReaderConfig):
        self.name = name
        self.cfg = cfg
        self._dev: Any = None  # mfrc522.MFRC522
        self._gpio: Any = None  # the RPi.GPIO module the driver uses (RPi.GPIO or rpi-lgpio)
        self._held = False  # the last poll saw a card
        self._long_uid_warned = False

    # -- the Reader protocol ----------------------------------------------------------------------------

    def open(self) -> None:
        """Open SPI and reset the chip. ReaderUnavailable off a Pi / without SPI; ReaderGone if no chip answers."""
        self.close()
        driver = self._load_driver()
        where = f"/dev/spidev{self.cfg.spi_bus}.{self.cfg.spi_device}"
        try:
            dev = driver.MFRC522(bus=self.cfg.spi_bus, device=self.cfg.spi_device, pin_mode=GPIO_BCM,
                                 pin_rst=self.cfg.rst_pin)
        except FileNotFoundError:
            raise ReaderUnavailable(f"reader {self.name}: {where} does not exist: turn SPI on "
                                    "(sudo raspi-config nonint do_spi 0) and reboot") from None
        except PermissionError:
            raise ReaderUnavailable(f"reader {self.name}: no permission for {where} or the GPIO chip: add the "
                                    "service's user to the spi and gpio groups") from None
        except OSError as e:
            raise ReaderGone(f"{where}: {e}") from None
        except RuntimeError as e:  # RPi.GPIO: a Pi it does not know (Pi 5), no /dev/gpiomem access, ...
            raise ReaderUnavailable(f"reader {self.name}: GPIO for the RC522 reset pin failed ({e}); on a "
                                    "Pi 5 RPi.GPIO does not work: .venv/bin/pip uninstall -y RPi.GPIO && "
                                    ".venv/bin/pip install --force-reinstall rpi-lgpio") from None
        # the package adds a stderr handler to its logger on every instance: let ours handle its lines
        logging.getLogger("mfrc522Logger").handlers.clear()
        self._dev = dev
        self._gpio = getattr(sys.modules.get(type(dev).__module__), "GPIO", None)
        try:
            version = dev.Read_MFRC522(dev.VersionReg)
        except OSError as e:
            self.close()
            raise ReaderGone(f"{where}: {e}") from None
        if version in (0x00, 0xFF):
            self.close()
            raise ReaderGone(f"no RC522 answers on {where} (version register reads 0x{version:02X}): check "
                             f"the wiring (SDA to CE{self.cfg.spi_device}, 3.3 V power)")
        log.info("reader %s: RC522 (version 0x%02X) on %s, reset on GPIO%d", self.name, version, where,
                 self.cfg.rst_pin)

    def poll(self) -> str | None:
        """The normalised UID of the (4-byte UID) card in the field now, or None."""
        dev = self._dev
        if dev is None:
            raise ReaderGone("not open")
        try:
            uid = self._read_once(dev)
            if uid is None and self._held:
                # A card held since the last poll is in the READY state after its anticollision, and a
                # REQA only sends it back to IDLE without an answer: ask once more so it stays one tap.
                uid = self._read_once(dev)
        except OSError as e:
            self._held = False
            raise ReaderGone(f"SPI: {e}") from None
        self._held = uid is not None
        return uid

    def close(self) -> None:
        """Release SPI and the reset pin (only that pin: gpiozero may be using others). Safe to repeat."""
        dev, gpio = self._dev, self._gpio
        self._dev = self._gpio = None
        self._held = False
        if dev is None:
            return
        try:
            dev.spi.close()
        except Exception:  # noqa: BLE001 - closing a device that is gone
            pass
        if gpio is not None:
            try:
                gpio.cleanup(self.cfg.rst_pin)
            except Exception:  # noqa: BLE001
                pass

    # -- inside ------------------------------------------------------------------------------------------

    def _load_driver(self) -> Any:
        """The `mfrc522` package, or ReaderUnavailable with one line that says why and what to do."""
        try:
            return importlib.import_module("mfrc522")
        except ImportError as e:
            raise ReaderUnavailable(f"reader {self.name}: the mfrc522 driver is not installed ({e}); on a Pi: "
                                    f"{INSTALL_HINT}") from None
        except RuntimeError as e:  # RPi.GPIO: "This module can only be run on a Raspberry Pi!"
            model = _pi_model()
            if not model:
                raise ReaderUnavailable(f"reader {self.name}: the mfrc522 backend needs a Raspberry Pi with an "
                                        f"RC522 on SPI, and this machine is not one ({e}); use backend = "
                                        "\"pcsc\" or \"sim\" here") from None
            raise ReaderUnavailable(f"reader {self.name}: RPi.GPIO does not work on this {model} ({e}); "
                                    "replace it with rpi-lgpio: .venv/bin/pip uninstall -y RPi.GPIO && "
                                    ".venv/bin/pip install --force-reinstall rpi-lgpio") from None

    def _read_once(self, dev: Any) -> str | None:
        status, _bits = dev.MFRC522_Request(dev.PICC_REQIDL)
        if status != dev.MI_OK:
            return None
        status, data = dev.MFRC522_Anticoll()  # the driver checks the BCC too; so does uid_from_anticoll
        if status != dev.MI_OK:
            return None
        uid = uid_from_anticoll(data)
        if uid is None and len(data) == 5 and data[0] == CASCADE_TAG:
            if not self._long_uid_warned:
                log.warning("reader %s: a card with a 7- or 10-byte UID; the mfrc522 backend reads 4-byte UIDs "
                            "only (use a PC/SC reader for these cards)", self.name)
                self._long_uid_warned = True
        return uid
