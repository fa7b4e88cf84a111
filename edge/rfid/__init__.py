"""Card readers behind one small interface, and the loop that turns their polls into taps.

A backend (`pcsc`, `mfrc522`, `sim`) implements `Reader`: `poll()` returns the normalised UID of the card
on the reader now, or None; it raises `ReaderGone` when the device or its service has gone away, and the
loop (`edge.rfid.loop`) reconnects with backoff, saying so once in the log. `TapDetector` is the
debounce: a card held on the reader is one tap; it must leave (or another card come) before the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class ReaderGone(Exception):
    """The reader (or pcscd, or the SPI device) is not there now; the loop reconnects."""


class ReaderUnavailable(Exception):
    """This backend cannot run on this machine at all (e.g. mfrc522 off a Pi): one clear log line."""


class Reader(Protocol):
    name: str

    def open(self) -> None:
        """Connect to the device (raises ReaderGone if it is not there yet, ReaderUnavailable if never)."""

    def poll(self) -> str | None:
        """The normalised UID of the card on the reader, or None."""

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Tap:
    reader: str
    uid: str
    at: float  # unix time


class TapDetector:
    """Debounce: feed it what each poll saw; it says when that is a new tap.

    A card counts as removed only after `release_polls` empty polls in a row, so a flaky read while the card
    is held does not make a second tap.
    """

    def __init__(self, release_polls: int = 3):
        self.release_polls = release_polls
        self.present: str | None = None
        self._empty = 0

    def feed(self, uid: str | None) -> str | None:
        if uid is None:
            if self.present is not None:
                self._empty += 1
                if self._empty >= self.release_polls:
                    self.present = None
            return None
        self._empty = 0
        if uid == self.present:
            return None
        self.present = uid
        return uid
