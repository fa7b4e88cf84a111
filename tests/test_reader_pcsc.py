"""The `pcsc` reader backend against a real pcscd with vpcd's virtual reader and our virtual MIFARE card.

No mocks of PC/SC: `tests/vcard.py` runs the tests' own pcscd (private namespaces; see its docstring) and a
virtual MIFARE Classic card that answers the storage-card APDUs over vpcd's socket protocol. Without pcscd
or vpcd these tests fail (never skip) and say to run ./setup.sh --dev.

The PC/SC client library reads PCSCLITE_CSOCK_NAME once per process, at its first call, so it is set here
when the module is imported (collection, before any test of the session runs), and one `Pcscd` in that
place serves the module.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from vcard import Pcscd, VirtualCard

from edge.config import ReaderConfig
from edge.rfid import ReaderGone, ReaderUnavailable, Tap, TapDetector
from edge.rfid.loop import run_reader
from edge.rfid.pcsc import PcscReader

GET_UID = bytes.fromhex("FFCA000000")
KEY = "A0A1A2A3A4A5"
BLOCK_DATA = b"sitekeeper card!"
PCSCD_DIR = Path(tempfile.gettempdir()) / f"sitekeeper-pcscd-{os.getpid()}"
os.environ["PCSCLITE_CSOCK_NAME"] = str(PCSCD_DIR / "run" / "pcscd.comm")


@pytest.fixture(scope="module")
def pcscd() -> Iterator[Pcscd]:
    try:
        daemon = Pcscd(directory=PCSCD_DIR)
    except RuntimeError as e:
        pytest.fail(f"cannot run the PC/SC tests: {e}", pytrace=False)
    assert os.environ["PCSCLITE_CSOCK_NAME"] == daemon.socket
    try:
        yield daemon
    finally:
        daemon.close()


@pytest.fixture
def daemon(pcscd: Pcscd) -> Pcscd:
    """The module's pcscd, running (a test before may have killed it)."""
    if pcscd.proc is None or pcscd.proc.poll() is not None:
        pcscd.start()
    return pcscd


@pytest.fixture
def make_card(daemon: Pcscd) -> Iterator[Callable[..., VirtualCard]]:
    cards: list[VirtualCard] = []

    def make(uid: str, **kw: object) -> VirtualCard:
        card = VirtualCard(uid, netns=daemon.netns, port=daemon.card_port, **kw)  # type: ignore[arg-type]
        cards.append(card)
        return card

    yield make
    for card in cards:
        card.close()


@pytest.fixture
def open_reader(daemon: Pcscd) -> Iterator[Callable[..., PcscReader]]:
    readers: list[PcscReader] = []

    def make(**kw: object) -> PcscReader:
        reader = PcscReader("kiosk", ReaderConfig(backend="pcsc", poll_interval=0.05, **kw))  # type: ignore[arg-type]
        reader.open()
        readers.append(reader)
        return reader

    yield make
    for reader in readers:
        reader.close()


def poll_until(reader: PcscReader, want: str | None, timeout: float = 5.0) -> list[str | None]:
    """Poll every 50 ms until a poll returns `want`; every result seen, in order."""
    seen: list[str | None] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(reader.poll())
        if seen[-1] == want:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"no poll gave {want!r} within {timeout}s; saw {seen[-10:]}")


def test_uid_read_4_and_7_bytes(make_card: Callable[..., VirtualCard],
                                open_reader: Callable[..., PcscReader]) -> None:
    reader = open_reader()
    assert reader.reader_name == "ACS ACR122U PICC Interface 00 00"
    assert reader.poll() is None
    card = make_card("04a23bc4")
    card.insert()
    poll_until(reader, "04A23BC4")
    assert reader.last_block is None  # no block configured
    assert card.apdus == [GET_UID]  # nothing else asked of the card
    card.remove()
    poll_until(reader, None)
    card.insert("04112233445566")  # another card, 7-byte UID
    poll_until(reader, "04112233445566")


def test_same_card_same_uid_as_through_an_rc522(make_card: Callable[..., VirtualCard],
                                               open_reader: Callable[..., PcscReader]) -> None:
    """PC/SC's GET DATA gives the 4 UID bytes; an RC522's anticollision gives them + BCC (their XOR).
    Both backends must give the ledger the same key for the card."""
    from edge.rfid.mfrc522 import uid_from_anticoll

    uid = bytes.fromhex("9A3F0C71")
    card = make_card(uid)
    reader = open_reader()
    card.insert()
    poll_until(reader, "9A3F0C71")
    bcc = uid[0] ^ uid[1] ^ uid[2] ^ uid[3]
    assert uid_from_anticoll(uid + bytes([bcc])) == "9A3F0C71"


def test_block_read_with_the_right_key(make_card: Callable[..., VirtualCard],
                                       open_reader: Callable[..., PcscReader]) -> None:
    card = make_card("C0FFEE42", key_a={1: bytes.fromhex(KEY)}, blocks={4: BLOCK_DATA})
    reader = open_reader(key=KEY.lower(), block=4)
    card.insert()
    poll_until(reader, "C0FFEE42")
    assert reader.last_block == BLOCK_DATA
    assert card.apdus == [GET_UID, bytes.fromhex("FF82000006" + KEY), bytes.fromhex("FF860000050100046000"),
                          bytes.fromhex("FFB0000410")]
    card.remove()
    poll_until(reader, None)
    assert reader.last_block is None  # the block belonged to the card that left


def test_wrong_key_reads_no_block_but_the_uid(make_card: Callable[..., VirtualCard],
                                              open_reader: Callable[..., PcscReader]) -> None:
    card = make_card("C0FFEE42", key_a={1: bytes.fromhex(KEY)}, blocks={4: BLOCK_DATA})
    reader = open_reader(key="FFFFFFFFFFFF", block=4)
    card.insert()
    poll_until(reader, "C0FFEE42")
    assert reader.last_block is None
    assert bytes.fromhex("FFB0000410") not in card.apdus  # authentication failed: no READ BINARY
    # a held card is read once: the failed block read is not retried on every poll
    for _ in range(10):
        assert reader.poll() == "C0FFEE42"
        time.sleep(0.05)
    assert card.apdus.count(GET_UID) == 1


def test_card_held_is_one_tap_and_coming_back_is_another(make_card: Callable[..., VirtualCard],
                                                         open_reader: Callable[..., PcscReader]) -> None:
    reader = open_reader()
    detector = TapDetector()
    taps: list[str] = []
    card = make_card("04A23BC4")

    def run(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            tap = detector.feed(reader.poll())
            if tap is not None:
                taps.append(tap)
            time.sleep(0.05)

    card.insert()
    run(2.5)  # held for ~50 polls, across several of pcscd's own presence checks
    assert taps == ["04A23BC4"]
    assert card.apdus.count(GET_UID) == 1
    card.remove()
    run(1.0)
    assert detector.present is None
    card.insert()
    run(1.5)
    assert taps == ["04A23BC4", "04A23BC4"]


def test_device_picks_the_reader_by_name(open_reader: Callable[..., PcscReader]) -> None:
    assert open_reader(device="acr122u picc interface 00 01").reader_name == "ACS ACR122U PICC Interface 00 01"
    with pytest.raises(ReaderGone, match="ACR1252"):
        open_reader(device="ACR1252")


def test_pcscd_killed_and_restarted(daemon: Pcscd, make_card: Callable[..., VirtualCard],
                                    open_reader: Callable[..., PcscReader]) -> None:
    card = make_card("04A23BC4")
    reader = open_reader()
    card.insert()
    poll_until(reader, "04A23BC4")

    daemon.kill()  # SIGKILL: pcscd gets no chance to tell anyone
    with pytest.raises(ReaderGone, match="Service not available"):
        reader.poll()
    reader.close()
    with pytest.raises(ReaderGone, match="cannot reach pcscd"):
        reader.open()

    daemon.start()
    reader.open()  # a fresh context; the card never left the reader
    detector = TapDetector()
    assert detector.feed(poll_until(reader, "04A23BC4")[-1]) == "04A23BC4"
    card.remove()
    assert detector.feed(poll_until(reader, None)[-1]) is None
    card.insert("04998877")
    assert detector.feed(poll_until(reader, "04998877")[-1]) == "04998877"


async def test_reader_loop_rides_out_a_pcscd_restart(daemon: Pcscd, make_card: Callable[..., VirtualCard],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """The real reader loop: taps before and after pcscd is killed; one line when it goes, one when back."""
    caplog.set_level(logging.INFO, logger="edge.rfid")
    taps: list[Tap] = []

    async def on_tap(tap: Tap) -> None:
        taps.append(tap)

    async def wait_for(n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(taps) < n:
            assert time.monotonic() < deadline, f"only {len(taps)} taps: {taps}"
            await asyncio.sleep(0.05)

    card = make_card("04A23BC4")
    cfg = ReaderConfig(backend="pcsc", poll_interval=0.05)
    task = asyncio.create_task(run_reader("kiosk", cfg, on_tap, max_backoff=0.5))
    try:
        card.insert()
        await wait_for(1)
        card.remove()
        await asyncio.sleep(1.0)
        daemon.kill()
        await asyncio.sleep(2.0)  # several reconnect attempts while pcscd is away
        daemon.start()
        card.insert("04998877")
        await wait_for(2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [t.uid for t in taps] == ["04A23BC4", "04998877"]
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("edge.rfid")]
    assert sum("went away" in m or "not available" in m for m in messages) == 1, messages
    assert sum("is back" in m for m in messages) == 1, messages


def test_without_pyscard_the_reader_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "smartcard", None)  # import smartcard → ImportError
    reader = PcscReader("kiosk", ReaderConfig(backend="pcsc"))
    with pytest.raises(ReaderUnavailable, match="setup.sh"):
        reader.open()
