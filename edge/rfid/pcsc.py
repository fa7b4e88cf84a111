"""The `pcsc` backend: a contactless PC/SC reader (ACR1252U, ACR122U) through pcscd, with pyscard.

It uses pyscard's low-level `smartcard.scard` API and its own polling, never pyscard's CardMonitor, whose
thread dies for good when pcscd restarts:

- `open()` establishes a PC/SC context and picks the reader: the first whose name contains `device`
  (case-insensitive), or with `device = ""` the first contactless ("PICC") interface, else the first reader.
- `poll()` asks pcscd for the reader's state without waiting (SCardGetStatusChange, timeout 0). No card:
  None. A card that was not there at the last poll: connect (shared), read the UID with the PC/SC storage
  card command GET DATA `FF CA 00 00 00`, and when `block >= 0` and a `key` are configured, also LOAD KEY
  `FF 82 00 00 06 <key>`, GENERAL AUTHENTICATE with key A `FF 86 00 00 05 01 00 <block> 60 00` and READ
  BINARY `FF B0 00 <block> 10` into `last_block` (None when any step fails; the UID is still returned);
  then disconnect, leaving the card as it is. While the same card stays (pcsc-lite counts card events in the
  upper 16 bits of the reader state), later polls return the same UID without talking to the card.
- The UID comes back normalised (`edge.money.normalise_uid`: upper-case hex of the UID bytes), the same
  text the mfrc522 backend gives for the same card.
- A card that leaves in the middle of a read is "no card" for that poll. Anything wrong with the context or
  the reader (pcscd stopped or killed, reader unplugged) raises `ReaderGone`; the reader loop then closes
  and reopens with backoff. pyscard missing (or libpcsclite) raises `ReaderUnavailable`.
"""

from __future__ import annotations

import logging
from types import ModuleType

from edge.config import ReaderConfig
from edge.money import UidError, normalise_uid
from edge.rfid import ReaderGone, ReaderUnavailable

log = logging.getLogger(__name__)

GET_UID = [0xFF, 0xCA, 0x00, 0x00, 0x00]
KEY_A = 0x60
KEY_SLOT = 0x00
SW_OK = [0x90, 0x00]
# SCardConnect/SCardTransmit results that mean "this card, now" (gone, mute, busy), not "the reader"
_CARD_ERRORS = ("SCARD_W_REMOVED_CARD", "SCARD_E_NO_SMARTCARD", "SCARD_W_UNRESPONSIVE_CARD",
                "SCARD_W_UNPOWERED_CARD", "SCARD_W_RESET_CARD", "SCARD_W_UNSUPPORTED_CARD",
                "SCARD_E_PROTO_MISMATCH", "SCARD_E_NOT_TRANSACTED", "SCARD_E_SHARING_VIOLATION",
                "SCARD_E_TIMEOUT")


class _CardLeft(Exception):
    """The card went away (or went mute) in the middle of a read."""


def _scard() -> ModuleType:
    try:
        from smartcard import scard
    except (ImportError, OSError) as e:
        raise ReaderUnavailable(f"pyscard cannot be loaded ({e}); install it with ./setup.sh "
                                "(it needs pcscd and libpcsclite-dev)") from None
    return scard


class PcscReader:
    """One PC/SC reader, polled; see the module docstring."""

    def __init__(self, name: str, cfg: ReaderConfig) -> None:
        self.name = name
        self.cfg = cfg
        self.reader_name: str | None = None  # the PC/SC name of the reader in use
        self.last_block: bytes | None = None  # the configured block of the card on the reader, if read
        self._key = bytes.fromhex(cfg.key) if cfg.key else b""
        self._sc: ModuleType | None = None
        self._ctx: int | None = None
        self._card_errors: frozenset[int] = frozenset()
        self._seen: int | None = None  # the reader's card event counter when the current card was read
        self._uid: str | None = None

    # -- Reader protocol ---------------------------------------------------------------------------------
    def open(self) -> None:
        """A fresh PC/SC context and the reader to use (ReaderGone: no pcscd, no such reader yet)."""
        sc = self._sc = _scard()
        self._card_errors = frozenset(getattr(sc, n) & 0xFFFFFFFF for n in _CARD_ERRORS)
        self.close()
        rv, ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
        self._check(rv, "cannot reach pcscd")
        self._ctx = ctx
        try:
            rv, readers = sc.SCardListReaders(ctx, [])
            if _code(rv) == _code(sc.SCARD_E_NO_READERS_AVAILABLE) or (_code(rv) == 0 and not readers):
                raise ReaderGone("no PC/SC reader is connected")
            self._check(rv, "cannot list the PC/SC readers")
            self.reader_name = self._pick(list(readers))
        except ReaderGone:
            self.close()
            raise
        log.info("reader %s: using PC/SC reader %r", self.name, self.reader_name)

    def poll(self) -> str | None:
        """The normalised UID of the card on the reader, or None; ReaderGone if pcscd or the reader went."""
        sc = self._sc
        if sc is None or self._ctx is None or self.reader_name is None:
            raise ReaderGone("not open")
        rv, states = sc.SCardGetStatusChange(self._ctx, 0, [(self.reader_name, sc.SCARD_STATE_UNAWARE)])
        self._check(rv, "reader state")
        state = states[0][1]
        if state & (sc.SCARD_STATE_UNKNOWN | sc.SCARD_STATE_UNAVAILABLE | sc.SCARD_STATE_IGNORE):
            raise ReaderGone(f"reader {self.reader_name!r} is gone")
        if not state & sc.SCARD_STATE_PRESENT or state & sc.SCARD_STATE_MUTE:
            self._forget()
            return None
        seen = state >> 16  # pcsc-lite's card event counter (0 elsewhere: then presence alone counts)
        if seen != self._seen:
            self._forget()
            read = self._read_card()
            if read is not None:  # None: the card left or did not answer; try again next poll
                self._seen, self._uid = seen, read
        return self._uid or None

    def close(self) -> None:
        """Release the context (safe to call twice, and when pcscd is already gone)."""
        if self._ctx is not None and self._sc is not None:
            try:
                self._sc.SCardReleaseContext(self._ctx)
            except Exception:  # noqa: BLE001 - pcscd may be gone; nothing to release then
                pass
        self._ctx = None
        self._forget()

    # -- helpers -----------------------------------------------------------------------------------------
    def _pick(self, readers: list[str]) -> str:
        want = self.cfg.device.lower()
        if want:
            for r in readers:
                if want in r.lower():
                    return r
            raise ReaderGone(f"no PC/SC reader name contains {self.cfg.device!r} (readers: {readers})")
        return next((r for r in readers if "picc" in r.lower()), readers[0])

    def _forget(self) -> None:
        self._seen, self._uid, self.last_block = None, None, None

    def _check(self, rv: int, what: str) -> None:
        if _code(rv) != 0:
            assert self._sc is not None
            raise ReaderGone(f"{what}: {self._sc.SCardGetErrorMessage(rv)} (0x{_code(rv):08X})")

    def _read_card(self) -> str | None:
        """Connect, read the UID (and the block), disconnect. The UID ("" for a card without a usable UID:
        remembered for this presence so it is logged once), or None if the card went away meanwhile."""
        sc = self._sc
        assert sc is not None and self.reader_name is not None
        rv, card, proto = sc.SCardConnect(self._ctx, self.reader_name, sc.SCARD_SHARE_SHARED,
                                          sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1)
        if _code(rv) in self._card_errors:
            return None
        self._check(rv, "cannot connect to the card")
        try:
            data = self._transmit(card, proto, GET_UID)
            try:
                uid = normalise_uid(bytes(data or b"").hex())
            except UidError:
                log.warning("reader %s: a card without a 4, 7 or 10 byte UID (GET DATA gave %s); ignored",
                            self.name, "nothing" if data is None else bytes(data).hex().upper())
                return ""
            if self.cfg.block >= 0 and self._key:
                self.last_block = self._read_block(card, proto)
            return uid
        except _CardLeft:
            return None
        finally:
            sc.SCardDisconnect(card, sc.SCARD_LEAVE_CARD)

    def _read_block(self, card: int, proto: int) -> bytes | None:
        b = self.cfg.block
        steps = ([0xFF, 0x82, 0x00, KEY_SLOT, 0x06, *self._key],
                 [0xFF, 0x86, 0x00, 0x00, 0x05, 0x01, b >> 8, b & 0xFF, KEY_A, KEY_SLOT],
                 [0xFF, 0xB0, b >> 8, b & 0xFF, 0x10])
        data: list[int] | None = None
        for apdu in steps:
            data = self._transmit(card, proto, apdu)
            if data is None:
                log.info("reader %s: block %d not read (%s refused)", self.name, b,
                         {0x82: "LOAD KEY", 0x86: "AUTHENTICATE", 0xB0: "READ BINARY"}[apdu[1]])
                return None
        return bytes(data) if data is not None and len(data) == 16 else None

    def _transmit(self, card: int, proto: int, apdu: list[int]) -> list[int] | None:
        """The response data of an APDU that ended in 90 00, else None (refused); `_CardLeft` if the card
        went away or stopped answering."""
        sc = self._sc
        assert sc is not None
        rv, resp = sc.SCardTransmit(card, proto, apdu)
        if _code(rv) in self._card_errors:
            raise _CardLeft
        self._check(rv, "cannot talk to the card")
        if len(resp) < 2 or list(resp[-2:]) != SW_OK:
            return None
        return list(resp[:-2])


def _code(rv: int) -> int:
    return rv & 0xFFFFFFFF
