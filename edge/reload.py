"""Reloading the config file on SIGHUP (`systemctl reload sitekeeper-edge`), without dropping a charger.

What the edge reads afresh for each new connection can change on the fly: which chargers may connect and
their passwords or certificate serial numbers, the TLS certificate and key it serves (a renewed certificate),
the chargers' CA (its certificates are added to those trusted; dropping a CA needs a restart) and operator
name (profile 3), and what it presents to upstream (passwords, CA, client certificates, compression). Connections already open keep going as they are. Everything else (mode, ports,
billing, MQTT, ...) is reported as needing a restart and left as it was. A file that does not load (a
misspelt key, a bad value, an unreadable certificate) changes nothing: the error is logged and the running
config stays.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from edge.config import Config

LIVE = {
    "ocpp": {"chargers", "allow_unknown_chargers", "tls_cert", "tls_key", "client_ca", "cpo_name"},
    "upstream": {"chargers", "ca_file", "cert_file", "key_file", "compression"},
}


def changes(old: Config, new: Config) -> tuple[list[str], list[str]]:
    """The keys that differ, as (applied on the fly, needing a restart), named ``section.key``."""
    live: list[str] = []
    restart: list[str] = []
    for f in dataclasses.fields(old):
        if f.name == "source":
            continue
        a, b = getattr(old, f.name), getattr(new, f.name)
        if not dataclasses.is_dataclass(a):
            if _plain(a) != _plain(b):
                restart.append(f.name)
            continue
        for key in (g.name for g in dataclasses.fields(a)):
            if _plain(getattr(a, key)) != _plain(getattr(b, key)):
                (live if key in LIVE.get(f.name, ()) else restart).append(f"{f.name}.{key}")
    return live, restart


def apply(old: Config, new: Config) -> None:
    """Copy every key that may change on the fly from `new` into the running `old`, in place (everyone holds
    `old`). All of them, changed or not: a password written in plain text is hashed with a new salt at each
    load, so whether it changed cannot be told, and it is simply taken again."""
    for section, keys in LIVE.items():
        for key in keys:
            setattr(getattr(old, section), key, getattr(getattr(new, section), key))


def _plain(value: Any) -> Any:
    """A comparable form: dataclasses as dicts, without password hashes (salted afresh at each load)."""
    if dataclasses.is_dataclass(value):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items() if k != "password_hash"}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
