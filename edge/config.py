"""Site configuration: one TOML file, every key with a default.

`load(path)` returns a `Config`; a misspelt key or a bad value raises `ConfigError` whose message names the
key (``ocpp.port: expected an integer from 1 to 65535, got 'abc'``), so that start-up stops with one line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.money import MoneyError, to_minor
from edge.security import PREFIX as HASH_PREFIX
from edge.security import hash_password, is_valid_hash


class ConfigError(ValueError):
    """A configuration key is unknown or has a bad value; the message names the key."""


MIN_CURRENT_A = 6.0  # IEC 61851: the least current an EV charges on


@dataclass
class SiteConfig:
    id: str = "site-1"
    name: str = "Demo site"
    accept_unknown_cards: bool = True  # standalone: a card the site does not know may charge (demo default)
    # for time-of-use bands and daily reports; by default the machine's own zone (a Manila site's peak band
    # was once charged at UTC's 18:00)
    timezone: str = field(default_factory=lambda: system_timezone())
    # the current the site's supply gives its chargers, shared among the sessions (amps per phase; 0: no limit;
    # `edge.operations.current_limits`)
    max_current_a: float = 0.0


@dataclass
class StoreConfig:
    path: str = "sitekeeper.db"
    journal_max_rows: int = 2000  # per charger
    # seconds meter samples, heartbeats and the journal wait to share a commit (SD-card wear: bench/writes.py);
    # what money and the upstream queue need is committed before the charger is answered, whatever this is
    background_delay: float = 30.0
    journal_max_age_days: int = 14


@dataclass
class ChargerAuth:
    """A charger listed under [ocpp.chargers.<id>]: how it proves who it is, and what it understands."""

    password_hash: str = ""
    serial: str = ""  # security profile 3: the CN its certificate must carry (default: the charger id)
    # tell it the cost on its display: 1.6 California pricing DataTransfers (SetUserPrice, RunningCost,
    # FinalCost); 2.0.1 CostUpdated and personalMessage (also when its device model says TariffCostCtrlr Cost)
    cost_messages: bool = False
    max_current_a: float = 0.0  # the current its supply gives it, shared among its sessions (0: no limit)


@dataclass
class OcppConfig:
    host: str = "127.0.0.1"
    port: int = 9000
    security_profile: int = 0
    allow_unknown_chargers: bool = True
    # standalone: a charger not listed under [ocpp.chargers] and not yet approved is "accept"ed at once, or its
    # BootNotification is answered Pending / Rejected until the owner approves it (`sitekeeper charger ID approve`)
    new_chargers: str = "accept"
    tls_cert: str = ""
    tls_key: str = ""
    client_ca: str = ""  # security profile 3: the CA(s) the chargers' certificates must chain to
    cpo_name: str = ""  # security profile 3: when set, a certificate's O must contain it (A00.FR.404)
    heartbeat_interval: int = 300
    compression: bool = True  # accept permessage-deflate (RFC 7692) when a charger offers it
    # with security profile 0 or 1: a TLS port as well (tls_cert, tls_key; client_ca for profile 3), for the
    # chargers raised to profile 2 or 3 over OCPP (`sitekeeper charger ID security-profile N`); 0: none
    tls_port: int = 0
    chargers: dict[str, ChargerAuth] = field(default_factory=dict)


@dataclass
class UpstreamCharger:
    password: str = ""
    cert_file: str = ""  # this charger's own client certificate toward upstream (else the site's)
    key_file: str = ""


@dataclass
class UpstreamConfig:
    mode: str = "standalone"
    url: str = ""
    strict: bool = False
    offline_accept_unknown: bool = False
    call_timeout: float = 10.0  # an answer later than this: the charger is answered locally (the call stays open)
    stall_timeout: float = 60.0  # no answer to an outstanding call for this long: the link is reset
    reconnect_min: float = 0.5  # backoff between upstream connections: exponential with jitter, from this
    reconnect_max: float = 30.0  # up to this
    max_connects_per_second: float = 20.0  # the whole site's new upstream connections (staggered after outages)
    replay_without_charger: bool = True  # replay a queue upstream even while its charger is not connected
    queue_alert_minutes: float = 15.0  # a queued message older than this is an alert (/healthz, /metrics)
    auth_cache_ttl_hours: float = 24.0
    ca_file: str = ""
    cert_file: str = ""  # a client certificate for upstream (security profile 3); PEM, key in key_file
    key_file: str = ""
    compression: bool = True  # offer permessage-deflate (RFC 7692); upstream decides
    chargers: dict[str, UpstreamCharger] = field(default_factory=dict)


@dataclass
class BillingConfig:
    currency: str = "PHP"
    currency_exponent: int = 2  # digits of the minor unit (2: centavos)
    min_start_balance: str = "50.00"  # major units, as decimal strings
    max_hold: str = "1000.00"
    overdraft_limit: str = "0.00"
    authority: str = "edge"  # "edge": the edge decides for cards it knows; "upstream": upstream, while up
    push_local_list: bool = True  # keep the chargers' local authorization lists in step with the cards


@dataclass
class TariffConfig:
    per_kwh: str = "15.00"
    per_minute: str = "0.00"
    session_fee: str = "0.00"
    idle_per_minute: str = "0.00"
    idle_grace_minutes: float = 15.0
    bands: list = field(default_factory=list)  # [[tariff.bands]] start = "18:00", end = "22:00", per_kwh = "20.00"


@dataclass
class MqttConfig:
    host: str = ""  # empty: cloud_sync stays idle and the outbox simply grows
    port: int = 1883
    username: str = ""
    password: str = ""
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""  # client certificate (optional)
    key_file: str = ""
    client_id: str = ""  # default: sitekeeper-<site.id>
    keepalive: int = 60
    topic_prefix: str = "sitekeeper"
    max_inflight: int = 100  # records published and not yet PUBACKed
    session_expiry_hours: float = 168.0  # how long the broker keeps commands for an offline site
    retention_days: float = 7.0  # done outbox rows are pruned after this


@dataclass
class ReaderConfig:
    backend: str = "sim"  # "pcsc" (pyscard over pcscd), "mfrc522" (SPI RC522 on a Pi), "sim" (`sitekeeper tap`)
    connector: str = ""  # "<charger-id>:<connector>": a tap starts/stops charging there; "" = the kiosk's reader
    device: str = ""  # pcsc: part of the reader's name to pick (e.g. "ACR122"); "" = the first reader
    key: str = ""  # pcsc: a MIFARE Classic key (12 hex digits) to read `block` with
    block: int = -1  # pcsc: the block to read after the UID (-1: none)
    spi_bus: int = 0  # mfrc522
    spi_device: int = 0
    rst_pin: int = 25  # mfrc522 reset (BCM numbering)
    poll_interval: float = 0.15  # seconds


@dataclass
class GpioConfig:
    enabled: bool = False  # true on a Pi with the feedback parts wired
    green_led: int = 17  # BCM pin numbers; 0 = not fitted
    red_led: int = 27
    buzzer: int = 22
    relay: int = 0
    relay_seconds: float = 3.0


@dataclass
class WebConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    tls_cert: str = ""  # the owner's pages and the API over HTTPS (both, or neither)
    tls_key: str = ""
    metrics_token: bool = False  # true: /metrics needs a bearer token (any role), as a scraper can send


@dataclass
class OperationsConfig:
    in_proxy: bool = True  # proxy mode: may the site's owner operate chargers (the cloud away, a stuck cable)?
    # the address at which chargers reach the edge's web server, for firmware downloads and log uploads
    # ("" = http://<web.host>:<web.port>, which chargers reach only if web.host is the site network's address)
    files_url: str = ""
    max_upload_mb: float = 50.0  # a charger's log upload larger than this is refused
    reservation_minutes: int = 15  # how long a reservation holds a connector unless said otherwise


@dataclass
class PaymongoConfig:
    secret_key: str = ""  # sk_test_... / sk_live_...: the API's Basic user
    webhook_secret: str = ""  # whsk_...: signs the webhooks (Paymongo-Signature)
    api_base: str = "https://api.paymongo.com"
    timeout: float = 10.0  # seconds for one API request
    webhook_tolerance: int = 300  # seconds a webhook's signed time may be off


@dataclass
class PayConfig:
    enabled: bool = True  # /pay pages for drivers (the wallet way needs nothing else)
    public_url: str = ""  # the address phones reach (the QR stickers'); "" = http://<web.host>:<web.port>
    provider: str = ""  # "" (the site wallet only) or "paymongo" (QR Ph through PayMongo)
    start_timeout: float = 90.0  # seconds the charger has to start once the money is held
    payment_minutes: float = 10.0  # how long a QR Ph code waits for its payment
    amounts: str = "100.00, 200.00, 500.00"  # QR Ph: the amounts offered (any amount between the limits too)
    min_amount: str = "50.00"
    max_amount: str = "2000.00"
    paymongo: PaymongoConfig = field(default_factory=PaymongoConfig)


@dataclass
class KioskConfig:
    edge_url: str = ""  # "" = http://127.0.0.1:<web.port>
    reader: str = "kiosk"  # the reader whose taps the kiosk acts on ([reader.<name>] without a connector)
    width: int = 800  # the panel, in pixels as it is mounted before `rotate` (official 7-inch: 800x480)
    height: int = 480
    rotate: int = 0  # 0, 90, 180, 270: the screen turned clockwise (a portrait mount), touch turned with it
    px_per_mm: float = 0.0  # 0: a 7-inch panel's (the long side over 154 mm)
    language: str = "en"  # the first screen's language: en, fil, zh


@dataclass
class Config:
    site: SiteConfig = field(default_factory=SiteConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    ocpp: OcppConfig = field(default_factory=OcppConfig)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    billing: BillingConfig = field(default_factory=BillingConfig)
    tariff: TariffConfig = field(default_factory=TariffConfig)
    web: WebConfig = field(default_factory=WebConfig)
    operations: OperationsConfig = field(default_factory=OperationsConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    reader: dict[str, ReaderConfig] = field(default_factory=lambda: {"kiosk": ReaderConfig()})
    gpio: GpioConfig = field(default_factory=GpioConfig)
    pay: PayConfig = field(default_factory=PayConfig)
    kiosk: KioskConfig = field(default_factory=KioskConfig)
    source: str = ""  # the file it came from, "" for defaults


def _check(key: str, value: Any, kind: type, default: Any) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        value = float(value)
    elif kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def _fill(obj: Any, table: Any, prefix: str) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{prefix}: expected a table, got {table!r}")
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in table.items():
        name = f"{prefix}.{key}"
        if key not in fields or key == "source" or key == "password_hash":
            raise ConfigError(f"{name}: unknown key (known: {', '.join(k for k in fields if k != 'source')})")
        current = getattr(obj, key)
        if key == "chargers":
            setattr(obj, key, _chargers(name, value, type(obj)))
        elif key == "bands":
            setattr(obj, key, _bands(name, value))
        elif dataclasses.is_dataclass(current):
            _fill(current, value, name)
        else:
            setattr(obj, key, _check(name, value, type(current), current))


def _chargers(prefix: str, table: Any, owner: type) -> dict:
    if not isinstance(table, dict):
        raise ConfigError(f"{prefix}: expected a table of chargers, got {table!r}")
    out: dict = {}
    for cid, entry in table.items():
        name = f"{prefix}.{cid}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{name}: expected a table, got {entry!r}")
        known = {"password": "", "serial": "", "cost_messages": False, "max_current_a": 0.0} \
            if owner is OcppConfig else \
            {"password": "", "cert_file": "", "key_file": ""}
        unknown = set(entry) - set(known)
        if unknown:
            raise ConfigError(f"{name}.{sorted(unknown)[0]}: unknown key (known: {', '.join(known)})")
        values = {k: _check(f"{name}.{k}", entry.get(k, default), type(default), default)
                  for k, default in known.items()}
        password = values.pop("password")
        if owner is OcppConfig:
            if password.startswith(HASH_PREFIX + "$") and not is_valid_hash(password):
                raise ConfigError(f"{name}.password: malformed hash (make one with `sitekeeper hash-password`)")
            out[cid] = ChargerAuth(password_hash=hash_password(password) if password else "", **values)
        else:
            out[cid] = UpstreamCharger(password=password, **values)
    return out


def _readers(table: Any) -> dict[str, ReaderConfig]:
    """[reader.<name>] tables (several allowed); when any is given, they replace the default sim reader."""
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise ConfigError("reader: expected tables such as [reader.kiosk] backend = \"pcsc\"")
    out = {}
    for name, entry in table.items():
        rc = ReaderConfig()
        _fill(rc, entry, f"reader.{name}")
        if rc.backend not in ("pcsc", "mfrc522", "sim"):
            raise ConfigError(f"reader.{name}.backend: expected 'pcsc', 'mfrc522' or 'sim', got {rc.backend!r}")
        if rc.connector:
            charger, _, number = rc.connector.rpartition(":")
            if not charger or not number.isdigit() or int(number) < 1:
                raise ConfigError(f"reader.{name}.connector: expected '<charger-id>:<connector number>', "
                                  f"got {rc.connector!r}")
        if rc.key and (len(rc.key) != 12 or any(c not in "0123456789abcdefABCDEF" for c in rc.key)):
            raise ConfigError(f"reader.{name}.key: expected 12 hex digits (a MIFARE key), got {rc.key!r}")
        if rc.poll_interval <= 0:
            raise ConfigError(f"reader.{name}.poll_interval: must be above 0")
        out[name] = rc
    return out


def _bands(prefix: str, value: Any) -> list:
    """[[tariff.bands]]: the tables themselves are checked with the rest of the tariff (`build_tariff`)."""
    if not isinstance(value, list):
        raise ConfigError(f"{prefix}: expected a list of tables ([[tariff.bands]]), got {value!r}")
    return [dict(band) if isinstance(band, dict) else band for band in value]


def _validate(cfg: Config) -> None:
    if not 1 <= cfg.ocpp.port <= 65535:
        raise ConfigError(f"ocpp.port: expected 1..65535, got {cfg.ocpp.port}")
    if not 0 <= cfg.web.port <= 65535:
        raise ConfigError(f"web.port: expected 0..65535 (0 turns the web app off), got {cfg.web.port}")
    sp = cfg.ocpp.security_profile
    if sp not in (0, 1, 2, 3):
        raise ConfigError(f"ocpp.security_profile: expected 0, 1, 2 or 3, got {sp}")
    if sp >= 2 and not (cfg.ocpp.tls_cert and cfg.ocpp.tls_key):
        raise ConfigError(f"ocpp.tls_cert: security profile {sp} needs ocpp.tls_cert and ocpp.tls_key")
    tp = cfg.ocpp.tls_port
    if tp and (not 1 <= tp <= 65535 or tp == cfg.ocpp.port or sp >= 2):
        raise ConfigError(f"ocpp.tls_port: expected a port of 1..65535 other than ocpp.port, beside a profile 0 or 1"
                          f" ocpp.port (with profile 2 or 3 ocpp.port itself speaks TLS), got {tp}")
    if tp and not (cfg.ocpp.tls_cert and cfg.ocpp.tls_key):
        raise ConfigError("ocpp.tls_cert: ocpp.tls_port needs ocpp.tls_cert and ocpp.tls_key")
    if bool(cfg.web.tls_cert) != bool(cfg.web.tls_key):
        raise ConfigError("web.tls_cert: HTTPS for the web app needs both web.tls_cert and web.tls_key")
    if sp == 3 and not cfg.ocpp.client_ca:
        raise ConfigError("ocpp.client_ca: security profile 3 needs the CA file the chargers' certificates chain to")
    files = [("ocpp.tls_cert", cfg.ocpp.tls_cert), ("ocpp.tls_key", cfg.ocpp.tls_key),
             ("ocpp.client_ca", cfg.ocpp.client_ca), ("upstream.ca_file", cfg.upstream.ca_file),
             ("upstream.cert_file", cfg.upstream.cert_file), ("upstream.key_file", cfg.upstream.key_file),
             ("mqtt.ca_file", cfg.mqtt.ca_file), ("mqtt.cert_file", cfg.mqtt.cert_file),
             ("mqtt.key_file", cfg.mqtt.key_file), ("web.tls_cert", cfg.web.tls_cert),
             ("web.tls_key", cfg.web.tls_key)]
    for cid, uc in cfg.upstream.chargers.items():
        files += [(f"upstream.chargers.{cid}.cert_file", uc.cert_file), (f"upstream.chargers.{cid}.key_file", uc.key_file)]
    for key, value in files:
        if value and not os.access(value, os.R_OK):
            raise ConfigError(f"{key}: cannot read {value!r}")
    for key, cert, pkey in [("upstream", cfg.upstream.cert_file, cfg.upstream.key_file)] + [
            (f"upstream.chargers.{cid}", uc.cert_file, uc.key_file) for cid, uc in cfg.upstream.chargers.items()]:
        if pkey and not cert:
            raise ConfigError(f"{key}.key_file: given without {key}.cert_file")
        if cert and cfg.upstream.mode == "proxy" and not cfg.upstream.url.startswith("wss://"):
            raise ConfigError(f"{key}.cert_file: a client certificate needs a wss:// upstream.url")
    for key, amps in [("site.max_current_a", cfg.site.max_current_a)] + [
            (f"ocpp.chargers.{cid}.max_current_a", c.max_current_a) for cid, c in cfg.ocpp.chargers.items()]:
        if amps and not MIN_CURRENT_A <= amps <= 2000:
            raise ConfigError(f"{key}: expected 0 (no limit) or {MIN_CURRENT_A:g} to 2000 amps, got {amps:g}"
                              f" (an EV cannot charge on less than {MIN_CURRENT_A:g} A)")
    if cfg.ocpp.new_chargers not in ("accept", "pending", "reject"):
        raise ConfigError(f"ocpp.new_chargers: expected 'accept', 'pending' or 'reject', got {cfg.ocpp.new_chargers!r}")
    if cfg.upstream.mode not in ("standalone", "proxy"):
        raise ConfigError(f"upstream.mode: expected 'standalone' or 'proxy', got {cfg.upstream.mode!r}")
    if cfg.upstream.mode == "proxy" and not cfg.upstream.url.startswith(("ws://", "wss://")):
        raise ConfigError(f"upstream.url: proxy mode needs a ws:// or wss:// URL, got {cfg.upstream.url!r}")
    if cfg.upstream.call_timeout <= 0:
        raise ConfigError("upstream.call_timeout: must be above 0")
    if cfg.upstream.stall_timeout < cfg.upstream.call_timeout:
        raise ConfigError("upstream.stall_timeout: must be at least upstream.call_timeout")
    if not 0 <= cfg.upstream.reconnect_min <= cfg.upstream.reconnect_max:
        raise ConfigError("upstream.reconnect_min: must be ≥ 0 and at most upstream.reconnect_max")
    if cfg.upstream.max_connects_per_second <= 0:
        raise ConfigError("upstream.max_connects_per_second: must be above 0")
    if cfg.upstream.queue_alert_minutes <= 0:
        raise ConfigError("upstream.queue_alert_minutes: must be above 0")
    if not 0 < cfg.mqtt.port <= 65535:
        raise ConfigError(f"mqtt.port: expected 1..65535, got {cfg.mqtt.port}")
    if cfg.mqtt.max_inflight < 1 or cfg.mqtt.keepalive < 5:
        raise ConfigError("mqtt.max_inflight: must be ≥ 1 (and mqtt.keepalive ≥ 5)")
    if "/" in cfg.site.id or "+" in cfg.site.id or "#" in cfg.site.id or not cfg.site.id:
        raise ConfigError(f"site.id: must be non-empty without '/', '+' or '#' (it is an MQTT topic level), "
                          f"got {cfg.site.id!r}")
    if cfg.billing.authority not in ("edge", "upstream"):
        raise ConfigError(f"billing.authority: expected 'edge' or 'upstream', got {cfg.billing.authority!r}")
    if not (len(cfg.billing.currency) == 3 and cfg.billing.currency.isalpha() and cfg.billing.currency.isupper()):
        raise ConfigError(f"billing.currency: expected an ISO 4217 code such as 'PHP', got {cfg.billing.currency!r}")
    if not 0 <= cfg.billing.currency_exponent <= 4:
        raise ConfigError("billing.currency_exponent: expected 0..4")
    if cfg.store.journal_max_rows < 10:
        raise ConfigError("store.journal_max_rows: must be at least 10")
    if not 0 <= cfg.store.background_delay <= 120:
        raise ConfigError("store.background_delay: expected 0..120 seconds")
    _validate_pay(cfg.pay, cfg.billing.currency_exponent)
    k = cfg.kiosk
    for key, bad, want in (("rotate", k.rotate not in (0, 90, 180, 270), "0, 90, 180 or 270"),
                           ("language", k.language not in ("en", "fil", "zh"), "en, fil or zh"),
                           ("width", min(k.width, k.height) < 240, "at least 240 (and kiosk.height too)")):
        if bad:
            raise ConfigError(f"kiosk.{key}: expected {want}, got {getattr(k, key)!r}")


def pay_amounts(pay: PayConfig, exponent: int) -> tuple[list[int], int, int]:
    """(the offered amounts, the least, the most), in minor units; raises `ConfigError` naming the key."""
    def one(key: str, text: str) -> int:
        try:
            value = to_minor(text.strip(), exponent)
        except MoneyError as e:
            raise ConfigError(f"pay.{key}: {e}") from None
        if value <= 0:
            raise ConfigError(f"pay.{key}: must be above 0, got {text!r}")
        return value

    low, high = one("min_amount", pay.min_amount), one("max_amount", pay.max_amount)
    offered = [one("amounts", part) for part in pay.amounts.split(",") if part.strip()]
    if low > high:
        raise ConfigError("pay.min_amount: must not be above pay.max_amount")
    for value, text in zip(offered, pay.amounts.split(","), strict=False):
        if not low <= value <= high:
            raise ConfigError(f"pay.amounts: {text.strip()} is outside pay.min_amount..pay.max_amount")
    return offered, low, high


def _validate_pay(pay: PayConfig, exponent: int) -> None:
    if pay.provider not in ("", "paymongo"):
        raise ConfigError(f"pay.provider: expected '' (the site wallet only) or 'paymongo', got {pay.provider!r}")
    if pay.provider == "paymongo" and not (pay.paymongo.secret_key and pay.paymongo.webhook_secret):
        raise ConfigError("pay.paymongo.secret_key: QR Ph through PayMongo needs pay.paymongo.secret_key and"
                          " pay.paymongo.webhook_secret (from PayMongo's dashboard)")
    for key, url in (("pay.public_url", pay.public_url), ("pay.paymongo.api_base", pay.paymongo.api_base)):
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError(f"{key}: expected an http:// or https:// address, got {url!r}")
    if not 10 <= pay.start_timeout <= 600:
        raise ConfigError("pay.start_timeout: expected 10..600 seconds")
    if not 0.25 <= pay.payment_minutes <= 30:  # PayMongo's QR Ph codes end after 30 minutes
        raise ConfigError("pay.payment_minutes: expected 0.25..30")
    pay_amounts(pay, exponent)


SYSTEM_CONFIG = "/etc/sitekeeper/sitekeeper.toml"  # what `setup.sh --install` writes


def system_timezone() -> str:
    """The machine's time zone name: `$TZ`, else /etc/timezone, else where /etc/localtime points; "UTC" if
    none of them names a zone this machine knows."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text().strip().splitlines()[0])
    with contextlib.suppress(OSError):
        candidates.append(os.readlink("/etc/localtime").partition("zoneinfo/")[2])
    for name in candidates:
        if name and not name.startswith("/"):
            try:
                ZoneInfo(name)
                return name
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return "UTC"


def _me() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def locate(explicit: str | None) -> str | None:
    """Which config file to use, as the daemon and every command find it: `--config`, else
    `$SITEKEEPER_CONFIG`, else /etc/sitekeeper/sitekeeper.toml if it exists, else None (the built-in demo)."""
    if explicit:
        return explicit
    if os.environ.get("SITEKEEPER_CONFIG"):
        return os.environ["SITEKEEPER_CONFIG"]
    return SYSTEM_CONFIG if Path(SYSTEM_CONFIG).is_file() else None


def _state_directory(cfg: Config) -> None:
    """No store.path given: under systemd, the service's state directory ($STATE_DIRECTORY, what the unit's
    StateDirectory= makes writable), not beside the config (/etc/sitekeeper, read-only under the unit)."""
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        cfg.store.path = str(Path(state) / "site.db")


def load(path: str | Path | None = None) -> Config:
    """Read a TOML config file (or none: all defaults) and return the checked `Config`."""
    cfg = Config()
    if path is None:
        _state_directory(cfg)
        _validate(cfg)
        return cfg
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {p} is a folder, not a file") from None
    except PermissionError:
        raise ConfigError(f"cannot read {p} as {_me()} (run as the service user: sudo -u sitekeeper sitekeeper ...,"
                          " see docs/operations.md)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a text file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    sections = {f.name for f in dataclasses.fields(cfg)} - {"source"}
    for key, value in data.items():
        if key not in sections:
            raise ConfigError(f"{key}: unknown section (known: {', '.join(sorted(sections))})")
        if key == "reader":
            cfg.reader = _readers(value)
        else:
            _fill(getattr(cfg, key), value, key)
    cfg.source = str(p)
    if "path" not in (data.get("store") or {}):
        _state_directory(cfg)
    # Relative paths are relative to the config file (a service's working directory is often /).
    paths = [(getattr(cfg, section), key) for section, key in (
        ("store", "path"), ("ocpp", "tls_cert"), ("ocpp", "tls_key"), ("ocpp", "client_ca"), ("upstream", "ca_file"),
        ("upstream", "cert_file"), ("upstream", "key_file"), ("mqtt", "ca_file"), ("mqtt", "cert_file"),
        ("mqtt", "key_file"))]
    paths += [(uc, key) for uc in cfg.upstream.chargers.values() for key in ("cert_file", "key_file")]
    for obj, key in paths:
        value = getattr(obj, key)
        if value and not Path(value).is_absolute():
            setattr(obj, key, str((p.parent / value).resolve()))
    _validate(cfg)
    return cfg
