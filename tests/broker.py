"""A real Mosquitto broker for the tests, and a small paho-mqtt 2.x (MQTT v5) subscriber to talk to it.

`Broker` writes a mosquitto.conf into its own directory and runs `mosquitto -c CONF` as a subprocess on
127.0.0.1 and a free port (never 1883, which the system's own mosquitto may hold). Persistence is on, so
`stop()` (SIGTERM, which makes mosquitto write its database) followed by `start()`/`restart()` keeps
persistent sessions and the QoS 1 messages queued for offline clients; `kill()` (SIGKILL) loses whatever
was not saved yet. Optional password users (`users={"name": "password"}`, anonymous access then off) and
optional TLS (`tls=True`: a throwaway CA and a server certificate for 127.0.0.1/localhost, made with the
openssl CLI; clients trust `broker.ca_file`).

`Subscriber` connects with paho-mqtt (MQTT v5), subscribes to a topic filter with QoS 1 and collects
every message (topic, payload, retain flag, QoS, v5 user properties) for `wait_for(...)`.

The `broker` and `broker_factory` pytest fixtures live in tests/conftest.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

HOST = "127.0.0.1"


def mosquitto_binary() -> str:
    """The mosquitto executable: on PATH, else Debian's /usr/sbin/mosquitto (sbin is often not on PATH)."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise RuntimeError("mosquitto is not installed (run ./setup.sh --dev)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _run(cmd: list[str], cwd: Path) -> None:
    """Run a helper tool (openssl, mosquitto_passwd); raise with its output if it fails."""
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}{res.stderr}")


def make_test_ca(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for `hosts` (as subjectAltNames), made with the openssl CLI.

    Returns (ca.crt, server.crt, server.key). EC P-256 keys, so this takes milliseconds; the server
    certificate carries the extensions strict verifiers want (SAN, serverAuth, key identifiers).
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _run(["openssl", "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca_crt), "-days", "3",
          "-subj", "/CN=sitekeeper test CA",
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign",
          "-addext", "subjectKeyIdentifier=hash"], directory)
    _run(["openssl", "req", "-new", *ec, "-keyout", str(key), "-out", str(csr),
          "-subj", f"/CN={hosts[0]}"], directory)
    sans = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() or ":" in h else f"DNS:{h}" for h in hosts)
    ext = directory / "server.ext"
    ext.write_text(f"subjectAltName={sans}\n"
                   "basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n"
                   "subjectKeyIdentifier=hash\n"
                   "authorityKeyIdentifier=keyid,issuer\n")
    _run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
          "-CAcreateserial", "-out", str(crt), "-days", "3", "-extfile", str(ext)], directory)
    return ca_crt, crt, key


class Broker:
    """A mosquitto subprocess on 127.0.0.1:<free port> with persistence, optional users and optional TLS."""

    def __init__(self, directory: Path | str | None = None, *, port: int | None = None,
                 users: dict[str, str] | None = None, tls: bool = False, verbose: bool = False,
                 extra_config: str = "") -> None:
        """Prepare (but do not start) a broker.

        directory: where the config, persistence database, password file, certificates and log go
            (a new temporary directory, removed by `cleanup()`, when None).
        port: a fixed port; by default a free one is picked (and re-picked if it was taken meanwhile).
        users: {"name": "password"}; when given, anonymous clients are refused.
        tls: serve MQTT over TLS with a throwaway CA (`ca_file`) instead of plain TCP.
        verbose: `log_type all` (every packet) instead of connections/subscriptions/errors only.
        extra_config: more mosquitto.conf lines (e.g. "max_queued_messages 10").
        """
        self._own_dir = directory is None
        self.dir = Path(tempfile.mkdtemp(prefix="mosquitto-")) if directory is None else Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self._fixed_port = port is not None
        self.port = port if port is not None else _free_port()
        self.users = dict(users or {})
        self.tls = tls
        self.verbose = verbose
        self.extra_config = extra_config
        self.conf_path = self.dir / "mosquitto.conf"
        self.log_path = self.dir / "mosquitto.log"
        self.persistence_dir = self.dir / "data"
        self.persistence_dir.mkdir(exist_ok=True)
        self.password_file: Path | None = None
        self.ca_file: Path | None = None
        self.cert_file: Path | None = None
        self.key_file: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        if self.users:
            self._write_password_file()
        if tls:
            self.ca_file, self.cert_file, self.key_file = make_test_ca(self.dir / "tls")
        self._write_config()

    # -- setup ------------------------------------------------------------------------------------------
    def _write_password_file(self) -> None:
        passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        self.password_file = self.dir / "passwd"
        for i, (name, password) in enumerate(self.users.items()):
            create = ["-c"] if i == 0 else []
            _run([passwd, "-b", *create, str(self.password_file), name, password], self.dir)

    def _write_config(self) -> None:
        lines = [
            "# written by tests/broker.py",
            "per_listener_settings false",
            f"listener {self.port} {self.host}",
        ]
        if self.tls:
            lines += [f"cafile {self.ca_file}", f"certfile {self.cert_file}", f"keyfile {self.key_file}"]
        lines += [
            "persistence true",
            # the trailing slash matters: mosquitto concatenates location + file name
            f"persistence_location {self.persistence_dir}/",
            "persistence_file mosquitto.db",
            "autosave_interval 0",  # 0 = save on shutdown (and on SIGUSR1, see save())
            f"allow_anonymous {'false' if self.users else 'true'}",
        ]
        if self.password_file:
            lines.append(f"password_file {self.password_file}")
        if os.geteuid() == 0:
            # as root, mosquitto 2.x drops to the "mosquitto" user, which cannot write our temp dir
            lines.append("user root")
        lines += ["log_dest stderr", "log_timestamp true", "log_timestamp_format %H:%M:%S",
                  "connection_messages true"]
        log_types = ["all"] if self.verbose else ["error", "warning", "notice", "information",
                                                  "subscribe", "unsubscribe"]
        lines += [f"log_type {t}" for t in log_types]
        if self.extra_config:
            lines.append(self.extra_config)
        self.conf_path.write_text("\n".join(lines) + "\n")

    # -- life cycle -------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> Broker:
        """Start mosquitto and wait until its port accepts connections. Raises with the log if it exits."""
        if self.running:
            return self
        for _attempt in range(3):
            try:
                return self._start_once(timeout)
            except _PortTaken:
                if self._fixed_port:
                    raise RuntimeError(f"port {self.port} is taken:\n{self.log()}") from None
                self.port = _free_port()
                self._write_config()
        raise RuntimeError(f"mosquitto found no free port:\n{self.log()}")

    def _start_once(self, timeout: float) -> Broker:
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            log.write(f"--- tests/broker.py: starting on {self.host}:{self.port}\n".encode())
            log.flush()
            self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(self.conf_path)], cwd=self.dir,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                self.proc = None
                text = self.log()[log_start:]
                if "Address already in use" in text:
                    raise _PortTaken()
                raise RuntimeError(f"mosquitto exited with {code}:\n{text}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"mosquitto did not accept connections on {self.port} within {timeout}s:\n"
                           f"{self.log()[log_start:]}")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait: mosquitto writes its persistence database on the way out. Returns the exit code."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
        return proc.wait(5)

    def kill(self) -> None:
        """SIGKILL: a crash. Nothing is saved (with autosave_interval 0, the database stays as last saved)."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)

    def save(self) -> None:
        """Ask the running broker to write its persistence database now (SIGUSR1)."""
        assert self.proc is not None, "broker is not running"
        db = self.persistence_dir / "mosquitto.db"
        before = db.stat().st_mtime_ns if db.exists() else 0
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if db.exists() and db.stat().st_mtime_ns != before:
                return
            time.sleep(0.02)

    def restart(self, timeout: float = 10.0) -> Broker:
        """stop() then start() on the same port with the same persistence database."""
        self.stop()
        return self.start(timeout)

    def cleanup(self) -> None:
        """Stop the broker; remove its directory if it was a temporary one made here."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # -- helpers ----------------------------------------------------------------------------------------
    def log(self) -> str:
        """Everything mosquitto has logged so far (all starts)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def subscriber(self, topic: str | None = "#", **kwargs: object) -> Subscriber:
        """A connected Subscriber to this broker (its CA when TLS); raises ConnectionError if refused.

        kwargs go to Subscriber (client_id, username, password, clean_start, session_expiry, ...).
        """
        if self.tls:
            kwargs.setdefault("ca_file", self.ca_file)
        sub = Subscriber(self.host, self.port, topic, **kwargs)  # type: ignore[arg-type]
        code = sub.connect()
        if code.is_failure:
            sub.close()
            raise ConnectionError(f"broker refused the connection: {code}")
        return sub

    def __repr__(self) -> str:
        return f"<Broker {self.url} {'running' if self.running else 'stopped'} dir={self.dir}>"


class _PortTaken(Exception):
    pass


@dataclass
class Received:
    """One message a Subscriber got."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    user_properties: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.payload.decode()


class Subscriber:
    """A paho-mqtt 2.x MQTT v5 client that subscribes to `topic` (QoS 1) and records what arrives.

    Also a publisher (`publish`). paho reconnects by itself after a dropped connection (0.1-1 s backoff)
    and this class re-subscribes whenever the broker did not resume the session.

    Runs paho's network loop in its own thread; `messages` is guarded by a condition variable, so tests
    read it through `wait_for` / `snapshot`.
    """

    def __init__(self, host: str, port: int, topic: str | None = "#", *, client_id: str = "",
                 username: str | None = None, password: str | None = None,
                 ca_file: Path | str | None = None, clean_start: bool = True,
                 session_expiry: int | None = None, keepalive: int = 30) -> None:
        """topic: the filter to subscribe to after connecting (None: do not subscribe).

        clean_start=False with a client_id and session_expiry (seconds) makes a persistent session:
        the broker keeps the subscription and queues QoS 1 messages while this client is away.
        """
        self.host, self.port = host, port
        self.topics: list[str] = [topic] if topic is not None else []
        self.clean_start = clean_start
        self.session_expiry = session_expiry
        self.keepalive = keepalive
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id, protocol=mqtt.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file))
        self.messages: list[Received] = []
        self.session_present: bool = False
        self.connack: ReasonCode | None = None
        self.disconnect_reason: ReasonCode | None = None
        self._cond = threading.Condition()
        self._connack_event = threading.Event()
        self._suback_event = threading.Event()
        self._suback_codes: list[ReasonCode] = []
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        # paho reconnects on its own (e.g. across a broker restart); keep that quick for tests
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=1)  # type: ignore[arg-type]
        self._loop_running = False

    # -- paho callbacks (network thread) ----------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        self.connack = reason_code
        self.session_present = bool(flags.session_present)
        if not reason_code.is_failure and self.topics and not self.session_present:
            # a new session (first connect, or paho's reconnect after a clean start): (re)subscribe
            client.subscribe([(t, 1) for t in self.topics])
        self._connack_event.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason_code: ReasonCode, properties: Properties | None) -> None:
        self.disconnect_reason = reason_code
        if not self._connack_event.is_set():  # refused or dropped before CONNACK
            self.connack = self.connack or reason_code
            self._connack_event.set()

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int,
                      reason_codes: list[ReasonCode], properties: Properties | None) -> None:
        self._suback_codes = list(reason_codes)
        self._suback_event.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg.properties, "UserProperty", None) or []
        rec = Received(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), dict(props))
        with self._cond:
            self.messages.append(rec)
            self._cond.notify_all()

    # -- API --------------------------------------------------------------------------------------------
    def connect(self, timeout: float = 5.0) -> ReasonCode:
        """Connect, wait for the CONNACK and return its reason code (check `.is_failure`).

        On success, subscribes to the topic filters with QoS 1 and waits for the SUBACK, unless the broker
        resumed a session (`session_present`), which already holds the subscriptions. (The same happens
        when paho reconnects by itself.) TLS errors (e.g. an unknown CA) raise ssl.SSLError from here; a
        refused CONNECT is returned, not raised.
        """
        self._connack_event.clear()
        self._suback_event.clear()
        self.connack = None
        props = Properties(PacketTypes.CONNECT)
        if self.session_expiry is not None:
            props.SessionExpiryInterval = self.session_expiry
        self.client.connect(self.host, self.port, keepalive=self.keepalive, clean_start=self.clean_start,
                            properties=props if self.session_expiry is not None else None)
        if not self._loop_running:
            self.client.loop_start()
            self._loop_running = True
        if not self._connack_event.wait(timeout):
            raise TimeoutError(f"no CONNACK from {self.host}:{self.port} within {timeout}s")
        assert self.connack is not None
        if self.connack.is_failure:
            # paho would retry on its own; a refused client stays refused
            self.client.disconnect()
            return self.connack
        if self.topics and not self.session_present:
            self._wait_suback(", ".join(self.topics), timeout)
        return self.connack

    def subscribe(self, topic: str, qos: int = 1, timeout: float = 5.0) -> None:
        """Subscribe (another) topic filter and wait for the SUBACK; raise if the broker refused it."""
        self._suback_event.clear()
        result, _mid = self.client.subscribe(topic, qos=qos)
        if result != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"subscribe {topic!r}: {mqtt.error_string(result)}")
        self.topics.append(topic)
        self._wait_suback(topic, timeout)

    def _wait_suback(self, what: str, timeout: float) -> None:
        if not self._suback_event.wait(timeout):
            raise TimeoutError(f"no SUBACK for {what!r} within {timeout}s")
        failed = [rc for rc in self._suback_codes if rc.is_failure]
        if failed:
            raise ConnectionError(f"subscribe {what!r} refused: {failed}")

    def publish(self, topic: str, payload: bytes | str = b"", qos: int = 1, retain: bool = False,
                user_properties: dict[str, str] | None = None, timeout: float = 5.0) -> None:
        """Publish and, for QoS > 0, wait until the broker acknowledged it."""
        props = None
        if user_properties:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = list(user_properties.items())
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"publish {topic!r}: {mqtt.error_string(info.rc)}")
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise TimeoutError(f"publish {topic!r} was not acknowledged within {timeout}s")

    def snapshot(self) -> list[Received]:
        """A copy of the messages received so far."""
        with self._cond:
            return list(self.messages)

    def wait_for(self, predicate: Callable[[Received], bool] | None = None,
                 timeout: float = 5.0) -> Received:
        """The first received message (already received or arriving within `timeout`) that matches.

        Raises AssertionError listing what did arrive if none matches in time.
        """
        def match() -> Received | None:
            return next((m for m in self.messages if predicate is None or predicate(m)), None)

        with self._cond:
            found = self._cond.wait_for(match, timeout)
            if found is None:
                raise AssertionError(f"no matching message within {timeout}s; received: {self.messages}")
            return found

    def clear(self) -> None:
        """Forget the messages received so far."""
        with self._cond:
            self.messages.clear()

    def close(self) -> None:
        """Disconnect cleanly (a persistent session stays on the broker) and stop the network thread."""
        try:
            if self.client.is_connected():
                self.client.disconnect()
        finally:
            if self._loop_running:
                self.client.loop_stop()
                self._loop_running = False

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
