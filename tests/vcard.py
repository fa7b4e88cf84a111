"""A small virtual MIFARE Classic 1K card for vpcd (vsmartcard's virtual PC/SC reader), and its pcscd.

`VirtualCard` plays the card the way a contactless reader such as the ACR122U presents one to PC/SC: it
answers the PC/SC part 3 storage-card pseudo-APDUs that the reader's firmware handles for MIFARE Classic:

    FF CA 00 00 00                     GET DATA: the UID (4 or 7 bytes) + 90 00
    FF 82 00 nn 06 <key>               LOAD KEY into key slot nn (0 or 1): 90 00
    FF 86 00 00 05 01 00 bb 60|61 nn   GENERAL AUTHENTICATE block bb with key A|B from slot nn: 90 00 or 63 00
    FF 88 00 bb 60|61 nn               AUTHENTICATE (the older form of the same)
    FF B0 00 bb 10                     READ BINARY the 16 bytes of block bb: data + 90 00 (69 82 unauthenticated)

It speaks vpcd's socket protocol: every message is a 2-byte big-endian length and a payload; a one-byte
payload is a control code (0 power off, 1 power on, 2 reset, 4 get ATR, answered with the ATR), anything
else is a command APDU, answered with a response APDU. vpcd (the driver inside pcscd) listens; the card
connects to it. The card is on the reader while it is connected: `remove()` closes the connection and
`insert()` connects again (vpcd then reports the card gone and back to pcscd).

`Pcscd` runs the tests' own pcscd, with a private reader.conf.d holding one vpcd reader, inside private
network and mount namespaces (root only, like CI and the dev machines), because:
- vpcd listens on *all* interfaces (INADDR_ANY, ports 35963 and 35964 for its two slots); in a private
  network namespace that is only that namespace's loopback, and the ports cannot clash with anything.
  (vpcd 0.8's "reverse" mode, DEVICENAME <host>:<port>, where vpcd would connect to the card, aborts pcscd
  the first time that connection drops: its vicc_connect() falls into select() on socket -1.)
- pcscd 1.9 always serves /run/pcscd/pcscd.comm and refuses to start when another pcscd owns it; only the
  client library honours PCSCLITE_CSOCK_NAME. So /run/pcscd is a temporary directory in the private mount
  namespace, and the tests point PCSCLITE_CSOCK_NAME at `Pcscd.socket`. A pcscd of the machine is not
  touched.
A holder process (`sleep`) keeps the namespaces alive, so pcscd can be killed and started again in the same
ones; the card joins the network namespace (setns) in its own thread to reach vpcd on 127.0.0.1.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

HOST = "127.0.0.1"
VPCD_PORT = 35963  # vpcd's default; slot 1 is the next port
VPCD_DRIVER = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
SETUP_HINT = "run ./setup.sh --dev (it installs pcscd, vsmartcard-vpcd and iproute2)"
CLONE_NEWNET = 0x40000000

# PC/SC part 3 ATR of a MIFARE Classic 1K card seen through a contactless reader (ACR122U, ACR1252U, ...)
ATR_CLASSIC_1K = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")
DEFAULT_KEY = bytes.fromhex("FFFFFFFFFFFF")
SW_OK = b"\x90\x00"
SW_AUTH_FAILED = b"\x63\x00"
SW_NOT_AUTHENTICATED = b"\x69\x82"
SW_WRONG_LENGTH = b"\x67\x00"
SW_WRONG_P1P2 = b"\x6a\x86"
SW_NOT_SUPPORTED = b"\x6a\x81"
SW_BAD_INS = b"\x6d\x00"
SW_BAD_CLA = b"\x6e\x00"

CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4


class VirtualCard:
    """A MIFARE Classic 1K card that connects to vpcd on 127.0.0.1:`port` (inside `netns`, if given).

    `uid`: 4 or 7 bytes (bytes or hex); `key_a` / `key_b`: sector → 6-byte key (others: FF…FF);
    `blocks`: block number → 16 bytes (others: zeros). `apdus` records every command APDU received.
    """

    def __init__(self, uid: bytes | str, *, key_a: dict[int, bytes] | None = None,
                 key_b: dict[int, bytes] | None = None, blocks: dict[int, bytes] | None = None,
                 port: int = VPCD_PORT, netns: str | None = None, inserted: bool = False) -> None:
        self.uid = _uid_bytes(uid)
        self.key_a = dict(key_a or {})
        self.key_b = dict(key_b or {})
        self.blocks = {n: bytes(b) for n, b in (blocks or {}).items()}
        for n, b in self.blocks.items():
            if len(b) != 16 or not 0 <= n < 64:
                raise ValueError(f"block {n}: expected 16 bytes for a block 0..63")
        self.port = port
        self.netns = netns
        self.apdus: list[bytes] = []
        self.connections = 0  # how often vpcd took the card (once per insertion, and after a pcscd restart)
        self._slots: dict[int, bytes] = {}
        self._authenticated: int | None = None  # the sector authenticated, if any
        self._lock = threading.Lock()
        self._conn: socket.socket | None = None
        self._inserted = threading.Event()
        self._stop = threading.Event()
        if inserted:
            self._inserted.set()
        self._thread = threading.Thread(target=self._run, name=f"vcard:{self.uid.hex()}", daemon=True)
        self._thread.start()

    # -- the test's hand ------------------------------------------------------------------------------
    @property
    def inserted(self) -> bool:
        return self._inserted.is_set()

    def insert(self, uid: bytes | str | None = None) -> None:
        """Put the card (or, with `uid`, another card) on the reader."""
        with self._lock:
            if uid is not None:
                self.uid = _uid_bytes(uid)
            self._authenticated = None
        self._inserted.set()

    def remove(self) -> None:
        """Take the card off the reader: the connection to vpcd closes."""
        self._inserted.clear()
        with self._lock:
            self._authenticated = None
            conn = self._conn
        if conn is not None:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self.remove()
        self._inserted.set()  # wake the thread so it sees _stop
        self._thread.join(timeout=5)

    def __enter__(self) -> VirtualCard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- vpcd's side ----------------------------------------------------------------------------------
    def _run(self) -> None:
        if self.netns:
            _enter_netns(self.netns)  # this thread only: its sockets live in pcscd's network namespace
        while not self._stop.is_set():
            self._inserted.wait()
            if self._stop.is_set():
                return
            try:
                conn = socket.create_connection((HOST, self.port), timeout=1)
            except OSError:
                time.sleep(0.05)  # vpcd not listening (yet): pcscd starting or restarting
                continue
            conn.settimeout(None)
            with conn:
                with self._lock:
                    if not self._inserted.is_set():
                        continue
                    self._conn = conn
                    self.connections += 1
                try:
                    self._talk(conn)
                except OSError:
                    pass
                finally:
                    with self._lock:
                        self._conn = None
                        self._authenticated = None

    def _talk(self, conn: socket.socket) -> None:
        while not self._stop.is_set():
            head = _recv_exactly(conn, 2)
            if head is None:
                return
            (length,) = struct.unpack(">H", head)
            payload = _recv_exactly(conn, length) if length else b""
            if payload is None:
                return
            with self._lock:
                if not self._inserted.is_set():
                    return
                if len(payload) == 1:
                    reply = self._control(payload[0])
                else:
                    self.apdus.append(payload)
                    reply = self._apdu(payload)
            if reply is not None:
                conn.sendall(struct.pack(">H", len(reply)) + reply)

    def _control(self, code: int) -> bytes | None:
        if code == CTRL_ATR:
            return ATR_CLASSIC_1K
        if code in (CTRL_OFF, CTRL_ON, CTRL_RESET):
            self._authenticated = None
        return None

    # -- the card (as the reader firmware presents it) ------------------------------------------------
    def _apdu(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            return SW_WRONG_LENGTH
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[5:5 + apdu[4]] if len(apdu) > 5 else b""
        if cla != 0xFF:
            return SW_BAD_CLA
        if ins == 0xCA:  # GET DATA
            return self.uid + SW_OK if p1 == 0 else SW_NOT_SUPPORTED
        if ins == 0x82:  # LOAD KEY
            if len(body) != 6 or p2 > 1:
                return SW_WRONG_LENGTH if len(body) != 6 else SW_WRONG_P1P2
            self._slots[p2] = body
            return SW_OK
        if ins == 0x86:  # GENERAL AUTHENTICATE: 01 00 <block> <key type> <slot>
            if len(body) != 5 or body[0] != 0x01:
                return SW_WRONG_LENGTH
            return self._authenticate(body[2], body[3], body[4])
        if ins == 0x88:  # AUTHENTICATE (obsolete form): P2 = block, data = <key type> <slot>
            if len(apdu) < 6:
                return SW_WRONG_LENGTH
            return self._authenticate(p2, apdu[4], apdu[5])
        if ins == 0xB0:  # READ BINARY
            block = (p1 << 8) | p2
            if block >= 64:
                return SW_WRONG_P1P2
            if self._authenticated != block // 4:
                return SW_NOT_AUTHENTICATED
            return self.blocks.get(block, bytes(16)) + SW_OK
        return SW_BAD_INS

    def _authenticate(self, block: int, key_type: int, slot: int) -> bytes:
        self._authenticated = None
        sector = block // 4
        keys = {0x60: self.key_a, 0x61: self.key_b}.get(key_type)
        if block >= 64 or keys is None or slot not in self._slots:
            return SW_AUTH_FAILED
        if self._slots[slot] != keys.get(sector, DEFAULT_KEY):
            return SW_AUTH_FAILED
        self._authenticated = sector
        return SW_OK


def _uid_bytes(uid: bytes | str) -> bytes:
    raw = bytes.fromhex(uid) if isinstance(uid, str) else bytes(uid)
    if len(raw) not in (4, 7):
        raise ValueError(f"a MIFARE Classic UID is 4 or 7 bytes, got {raw.hex()}")
    return raw


def _recv_exactly(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _enter_netns(path: str) -> None:
    """Move the calling thread into the network namespace at `path` (e.g. /proc/PID/ns/net)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin:/usr/local/sbin")
    if not found:
        raise RuntimeError(f"{name} is not installed: {SETUP_HINT}")
    return found


class Pcscd:
    """The tests' own pcscd with one vpcd reader (two slots) named `reader_name`, in private namespaces."""

    def __init__(self, reader_name: str = "ACS ACR122U PICC Interface", directory: Path | None = None) -> None:
        self.binary = _tool("pcscd")
        if not os.path.exists(VPCD_DRIVER):
            raise RuntimeError(f"the vpcd driver ({VPCD_DRIVER}) is not installed: {SETUP_HINT}")
        self.ip, self.unshare, self.nsenter = _tool("ip"), _tool("unshare"), _tool("nsenter")
        if os.geteuid() != 0:
            raise RuntimeError("the PC/SC tests run pcscd in private namespaces, which needs root (as in CI)")
        self.reader_name = reader_name
        self.card_port = VPCD_PORT
        self.dir = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="sitekeeper-pcscd-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = self.dir / "run"
        self.conf_dir = self.dir / "reader.conf.d"
        self.run_dir.mkdir(exist_ok=True)
        self.conf_dir.mkdir(exist_ok=True)
        (self.conf_dir / "vpcd").write_text(
            f'FRIENDLYNAME "{reader_name}"\n'
            f"DEVICENAME   /dev/null:{self.card_port}\n"
            f"LIBPATH      {VPCD_DRIVER}\n"
            f"CHANNELID    {self.card_port}\n")
        self.socket = str(self.run_dir / "pcscd.comm")
        self.log = self.dir / "pcscd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        # the namespaces' holder: loopback up, /run/pcscd → run_dir, then it sleeps until closed
        script = (f'"{self.ip}" link set lo up && mkdir -p /run/pcscd && '
                  f'mount --bind "{self.run_dir}" /run/pcscd && echo ready && exec sleep infinity')
        self.holder = subprocess.Popen([self.unshare, "--net", "--mount", "--propagation", "private",
                                        "sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       stdin=subprocess.DEVNULL)
        assert self.holder.stdout is not None
        if self.holder.stdout.readline().strip() != b"ready":
            self.holder.wait(timeout=10)
            err = self.holder.stderr.read().decode(errors="replace") if self.holder.stderr else ""
            shutil.rmtree(self.dir, ignore_errors=True)
            raise RuntimeError(f"could not make private namespaces for pcscd: {err}")
        self.netns = f"/proc/{self.holder.pid}/ns/net"

    def start(self, timeout: float = 10.0) -> None:
        """Start pcscd inside the namespaces and wait until it answers on its socket."""
        assert self.proc is None or self.proc.poll() is not None, "pcscd already running"
        # nsenter without --pid execs: the Popen pid is pcscd's own
        cmd = [self.nsenter, f"--target={self.holder.pid}", "--net", "--mount",
               self.binary, "--foreground", "--info", "-c", str(self.conf_dir)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pcscd exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.socket)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"pcscd did not open {self.socket} within {timeout}s:\n{self.log_text()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop pcscd (SIGKILL by default: it gets no chance to tidy up)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def close(self) -> None:
        self.kill(signal.SIGTERM)
        if self.holder.poll() is None:
            self.holder.kill()
            self.holder.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)
