"""The mfrc522 backend against the real `mfrc522` package, with fake `spidev` and `RPi.GPIO` under it.

`FakeRC522` answers the driver's SPI register reads and writes the way the chip does (FIFO, interrupt
flags with their set/clear bit, BitFraming's StartSend, antenna bits, reset) and holds one ISO 14443-A card
in its field with the card's IDLE/READY states, enough for REQA and cascade-level-1 anticollision. The fake
modules go into sys.modules before the driver is imported, so the package's own code runs unchanged.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Iterator

import pytest

from edge.config import ReaderConfig
from edge.money import normalise_uid
from edge.rfid import ReaderGone, ReaderUnavailable, TapDetector
from edge.rfid.mfrc522 import Mfrc522Reader, uid_from_anticoll

DRIVER_MODULES = ("mfrc522", "mfrc522.MFRC522", "mfrc522.SimpleMFRC522", "RPi", "RPi.GPIO", "RPi._GPIO",
                  "spidev")

# RC522 registers and commands (datasheet numbers, as the driver uses them)
COMMAND, COMM_IRQ, ERROR, FIFO_DATA, FIFO_LEVEL, CONTROL, BIT_FRAMING = 0x01, 0x04, 0x06, 0x09, 0x0A, 0x0C, 0x0D
TX_CONTROL, VERSION = 0x14, 0x37
PCD_IDLE, PCD_TRANSCEIVE, PCD_RESETPHASE = 0x00, 0x0C, 0x0F
TX_IRQ, RX_IRQ, IDLE_IRQ, TIMER_IRQ = 0x40, 0x20, 0x10, 0x01


def with_bcc(uid: bytes) -> list[int]:
    return [*uid, uid[0] ^ uid[1] ^ uid[2] ^ uid[3]]


class FakeRC522:
    """An RC522 at register level, with at most one card (4-byte UID) in its field."""

    def __init__(self, version: int = 0x92):
        self.version = version
        self.regs = [0] * 64
        self.fifo: list[int] = []
        self.answer: list[int] | None = None  # what the card answers to anticollision: UID + BCC
        self.card_state = "IDLE"
        self.broken = False  # the board unplugged: transfers fail
        self.frames: list[tuple[list[int], int]] = []  # what went over the air: (bytes, last bits)
        self._reset()

    def place(self, uid: bytes, bcc: int | None = None) -> None:
        self.answer = with_bcc(uid) if bcc is None else [*uid, bcc]
        self.card_state = "IDLE"

    def remove(self) -> None:
        self.answer = None

    def _reset(self) -> None:
        self.regs = [0] * 64
        self.regs[VERSION] = self.version
        self.fifo.clear()

    # -- SPI: [addr << 1 | read bit 0x80, value] -----------------------------------------------------------

    def xfer2(self, data: list[int]) -> list[int]:
        if self.broken:
            raise OSError(5, "Input/output error")
        assert len(data) == 2, data
        addr = (data[0] >> 1) & 0x3F
        if data[0] & 0x80:
            return [0, self._read(addr)]
        self._write(addr, data[1] & 0xFF)
        return [0, 0]

    def _read(self, addr: int) -> int:
        if addr == FIFO_DATA:
            return self.fifo.pop(0) if self.fifo else 0
        if addr == FIFO_LEVEL:
            return len(self.fifo)
        return self.regs[addr]

    def _write(self, addr: int, val: int) -> None:
        if addr == COMMAND:
            if val & 0x0F == PCD_RESETPHASE:
                self._reset()
            else:
                self.regs[COMMAND] = val & 0x0F
        elif addr == COMM_IRQ:  # bit 7 (Set1): 1 sets the marked bits, 0 clears them
            if val & 0x80:
                self.regs[COMM_IRQ] |= val & 0x7F
            else:
                self.regs[COMM_IRQ] &= ~val & 0x7F
        elif addr == FIFO_LEVEL:
            if val & 0x80:  # FlushBuffer
                self.fifo.clear()
        elif addr == FIFO_DATA:
            self.fifo.append(val)
        elif addr == BIT_FRAMING:
            self.regs[BIT_FRAMING] = val & 0x7F
            if val & 0x80 and self.regs[COMMAND] == PCD_TRANSCEIVE:  # StartSend
                self._transceive(self.regs[BIT_FRAMING] & 0x07)
        else:
            self.regs[addr] = val

    def _transceive(self, last_bits: int) -> None:
        frame = list(self.fifo)
        self.fifo.clear()
        self.frames.append((frame, last_bits))
        reply = self._card(frame, last_bits) if self.regs[TX_CONTROL] & 0x03 == 0x03 else None
        if reply is None:  # nothing answered: the timer runs out
            self.regs[COMM_IRQ] |= TX_IRQ | TIMER_IRQ
            return
        self.fifo.extend(reply)
        self.regs[CONTROL] = self.regs[CONTROL] & ~0x07  # RxLastBits 0: whole bytes
        self.regs[COMM_IRQ] |= TX_IRQ | RX_IRQ | IDLE_IRQ

    def _card(self, frame: list[int], last_bits: int) -> list[int] | None:
        """ISO 14443-3 type A: REQA in IDLE → ATQA, READY; anticollision in READY → UID + BCC; else IDLE."""
        if self.answer is None:
            return None
        if frame == [0x26] and last_bits == 7:  # REQA
            if self.card_state == "IDLE":
                self.card_state = "READY"
                return [0x04, 0x00]  # ATQA of a MIFARE Classic 1K
            self.card_state = "IDLE"  # READY + anything but anticollision/select: back to IDLE, silently
            return None
        if frame == [0x93, 0x20] and last_bits == 0 and self.card_state == "READY":
            return list(self.answer)
        self.card_state = "IDLE"
        return None


class FakeGPIO:
    """The slice of RPi.GPIO the driver uses."""

    BOARD, BCM, OUT, IN, HIGH, LOW = 10, 11, 0, 1, 1, 0

    def __init__(self) -> None:
        self.mode: int | None = None
        self.pins: dict[int, int | None] = {}  # set-up pin → level (None: input)
        self.cleaned: list[int | None] = []

    def module(self) -> types.ModuleType:
        mod = types.ModuleType("RPi.GPIO")
        for name in ("BOARD", "BCM", "OUT", "IN", "HIGH", "LOW"):
            setattr(mod, name, getattr(self, name))
        mod.getmode = lambda: self.mode
        mod.setmode = self.setmode
        mod.setup = lambda pin, direction: self.pins.__setitem__(pin, 0 if direction == self.OUT else None)
        mod.output = lambda pin, level: self.pins.__setitem__(pin, int(level))
        mod.cleanup = self.cleanup
        return mod

    def setmode(self, mode: int) -> None:
        self.mode = mode

    def cleanup(self, pin: int | None = None) -> None:
        self.cleaned.append(pin)
        if pin is None:
            self.pins.clear()
        else:
            self.pins.pop(pin, None)


class Rig:
    """Fake chips on SPI buses (bus, device) and a fake GPIO, installed as `spidev` and `RPi.GPIO`."""

    def __init__(self) -> None:
        self.chips: dict[tuple[int, int], FakeRC522] = {(0, 0): FakeRC522()}
        self.gpio = FakeGPIO()

    @property
    def chip(self) -> FakeRC522:
        return self.chips[(0, 0)]

    def spidev_module(self) -> types.ModuleType:
        chips = self.chips

        class SpiDev:
            def __init__(self) -> None:
                self.max_speed_hz = 500_000
                self._chip: FakeRC522 | None = None

            def open(self, bus: int, device: int) -> None:
                if (bus, device) not in chips:
                    raise FileNotFoundError(2, "No such file or directory")
                self._chip = chips[(bus, device)]

            def xfer2(self, data: list[int]) -> list[int]:
                if self._chip is None:
                    raise OSError(9, "Bad file descriptor")
                return self._chip.xfer2(list(data))

            def close(self) -> None:
                self._chip = None

        mod = types.ModuleType("spidev")
        mod.SpiDev = SpiDev
        return mod


@pytest.fixture
def no_driver_modules() -> Iterator[None]:
    """Forget the driver, RPi.GPIO and spidev modules for this test, and what it imported of them."""
    saved = {k: sys.modules[k] for k in DRIVER_MODULES if k in sys.modules}
    for k in DRIVER_MODULES:
        sys.modules.pop(k, None)
    yield
    for k in DRIVER_MODULES:
        sys.modules.pop(k, None)
    sys.modules.update(saved)


@pytest.fixture
def rig(no_driver_modules: None) -> Rig:
    # found, not imported: that must come after the fakes
    assert importlib.util.find_spec("mfrc522") is not None, \
        "the mfrc522 package (a dev dependency) is not installed: run ./setup.sh --dev"
    r = Rig()
    rpi = types.ModuleType("RPi")
    gpio = r.gpio.module()
    rpi.GPIO = gpio
    sys.modules["RPi"] = rpi
    sys.modules["RPi.GPIO"] = gpio
    sys.modules["spidev"] = r.spidev_module()
    return r


def make_reader(**kw: object) -> Mfrc522Reader:
    return Mfrc522Reader("kiosk", ReaderConfig(backend="mfrc522", **kw))


UID = bytes.fromhex("04A23BC4")


# -- the pure UID logic -----------------------------------------------------------------------------------


def test_uid_from_anticoll_checks_and_drops_the_bcc() -> None:
    assert uid_from_anticoll(with_bcc(UID)) == "04A23BC4"
    assert uid_from_anticoll(bytes(with_bcc(bytes.fromhex("deadbeef")))) == "DEADBEEF"
    bad = with_bcc(UID)
    bad[4] ^= 0x01
    assert uid_from_anticoll(bad) is None
    assert uid_from_anticoll(with_bcc(UID)[:4]) is None  # the BCC missing
    assert uid_from_anticoll([*with_bcc(UID), 0]) is None
    assert uid_from_anticoll([]) is None
    assert uid_from_anticoll([0x104, 0, 0, 0, 0x04]) is None
    assert uid_from_anticoll(with_bcc(bytes([0x88, 0x04, 0x12, 0x34]))) is None  # cascade tag: 7-byte UID


# -- the reader on the fake chip -------------------------------------------------------------------------


def test_reads_a_cards_uid(rig: Rig) -> None:
    reader = make_reader(rst_pin=25)
    reader.open()
    try:
        assert rig.gpio.mode == FakeGPIO.BCM and rig.gpio.pins[25] == 1  # reset pin out of reset, BCM numbers
        assert rig.chip.regs[TX_CONTROL] & 0x03 == 0x03  # antenna on
        assert reader.poll() is None
        rig.chip.place(UID)
        assert reader.poll() == "04A23BC4"
        # what went over the air: REQA (7 bits), then anticollision cascade level 1
        assert ([0x26], 7) in rig.chip.frames and ([0x93, 0x20], 0) in rig.chip.frames
    finally:
        reader.close()


def test_same_uid_as_the_pcsc_path(rig: Rig) -> None:
    """A PC/SC reader answers GET DATA (FF CA 00 00 00) with the UID bytes + SW 90 00; the edge keeps the
    hex of those bytes. The RC522 path must give the same string for the same card, and must not be the
    number SimpleMFRC522.read_id gives (which folds the BCC in)."""
    card = bytes.fromhex("5A1C0E93")
    pcsc_response = [*card, 0x90, 0x00]
    pcsc_uid = normalise_uid(" ".join(f"{b:02X}" for b in pcsc_response[:-2]))  # smartcard.util.toHexString
    rig.chip.place(card)
    reader = make_reader()
    reader.open()
    try:
        assert reader.poll() == pcsc_uid == "5A1C0E93"
    finally:
        reader.close()

    from mfrc522 import SimpleMFRC522

    rig.chip.place(card)
    legacy = SimpleMFRC522().read_id_no_block()
    assert legacy is not None and f"{legacy:X}" != pcsc_uid
    assert f"{legacy:010X}" == pcsc_uid + f"{card[0] ^ card[1] ^ card[2] ^ card[3]:02X}"
    assert f"{legacy:010X}"[:8] == pcsc_uid  # the migration rule in the module docstring


def test_bad_bcc_gives_no_uid(rig: Rig) -> None:
    good = with_bcc(UID)
    rig.chip.place(UID, bcc=good[4] ^ 0x40)
    reader = make_reader()
    reader.open()
    try:
        assert [reader.poll() for _ in range(4)] == [None] * 4
    finally:
        reader.close()


def test_no_card_is_none(rig: Rig) -> None:
    reader = make_reader()
    reader.open()
    try:
        assert [reader.poll() for _ in range(3)] == [None] * 3
    finally:
        reader.close()


def test_long_uid_card_reads_as_no_card_with_one_warning(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.chip.place(bytes([0x88, 0x04, 0x51, 0x2A]))  # cascade level 1 of a 7-byte UID (NTAG, DESFire)
    reader = make_reader()
    reader.open()
    try:
        with caplog.at_level("WARNING", logger="edge.rfid.mfrc522"):
            assert [reader.poll() for _ in range(3)] == [None] * 3
        assert sum("4-byte UIDs only" in r.getMessage() for r in caplog.records) == 1
    finally:
        reader.close()


def test_a_card_held_is_one_tap(rig: Rig) -> None:
    reader = make_reader()
    detector = TapDetector()
    reader.open()
    try:
        taps = [detector.feed(reader.poll()) for _ in range(3)]  # nothing there
        rig.chip.place(UID)
        held = [reader.poll() for _ in range(10)]
        assert held == ["04A23BC4"] * 10  # seen on every poll, though REQA sends a READY card back to IDLE
        taps += [detector.feed(uid) for uid in held]
        assert [t for t in taps if t] == ["04A23BC4"]
        rig.chip.remove()
        taps = [detector.feed(reader.poll()) for _ in range(4)]
        assert taps == [None] * 4 and detector.present is None
        rig.chip.place(UID)
        assert detector.feed(reader.poll()) == "04A23BC4"  # taken away and back: a new tap
    finally:
        reader.close()


def test_close_releases_only_the_reset_pin_and_reopens(rig: Rig) -> None:
    reader = make_reader(rst_pin=24)
    reader.open()
    reader.close()
    reader.close()  # twice is fine
    assert rig.gpio.cleaned == [24]  # never GPIO.cleanup() of every pin: gpiozero may drive the LEDs
    with pytest.raises(ReaderGone):
        reader.poll()
    rig.chip.place(UID)
    reader.open()
    try:
        assert reader.poll() == "04A23BC4"
    finally:
        reader.close()


def test_other_spi_bus_and_device(rig: Rig) -> None:
    rig.chips[(1, 2)] = FakeRC522(version=0x91)
    rig.chips[(1, 2)].place(bytes.fromhex("0badf00d"))
    rig.chip.place(UID)
    reader = make_reader(spi_bus=1, spi_device=2)
    reader.open()
    try:
        assert reader.poll() == "0BADF00D"
    finally:
        reader.close()


def test_no_chip_answering_is_reader_gone(rig: Rig) -> None:
    rig.chips[(0, 0)] = FakeRC522(version=0x00)  # SPI there, nothing wired to it
    reader = make_reader()
    with pytest.raises(ReaderGone, match="no RC522 answers on /dev/spidev0.0"):
        reader.open()


def test_spi_failure_while_polling_is_reader_gone(rig: Rig) -> None:
    reader = make_reader()
    reader.open()
    rig.chip.broken = True
    with pytest.raises(ReaderGone, match="SPI"):
        reader.poll()
    reader.close()


def test_spi_off_is_unavailable(rig: Rig) -> None:
    reader = make_reader(spi_device=1)  # no /dev/spidev0.1
    with pytest.raises(ReaderUnavailable, match=r"/dev/spidev0\.1 does not exist: turn SPI on"):
        reader.open()


# -- off a Pi ------------------------------------------------------------------------------------------------


def _on_a_pi() -> bool:
    try:
        with open("/proc/device-tree/model", "rb") as f:
            return b"Raspberry Pi" in f.read()
    except OSError:
        return False


@pytest.mark.skipif(_on_a_pi(), reason="this is a Raspberry Pi: the driver may well load here")
def test_off_a_pi_is_unavailable_with_one_clear_line(no_driver_modules: None) -> None:
    """The real package with the real RPi.GPIO (a dev dependency): it raises RuntimeError off a Pi."""
    reader = make_reader()
    with pytest.raises(ReaderUnavailable) as info:
        reader.open()
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("reader kiosk: ")
    assert "not one" in msg or "not installed" in msg  # RPi.GPIO's RuntimeError, or no driver at all
    reader.close()  # nothing to close, no crash


def test_driver_missing_is_unavailable(no_driver_modules: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mfrc522", None)  # import mfrc522 → ImportError
    with pytest.raises(ReaderUnavailable, match=r"the mfrc522 driver is not installed .*pip install"):
        make_reader().open()
