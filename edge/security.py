"""Credentials: chargers' passwords (OCPP security profiles 1 and 2: hashing, checking, HTTP Basic parsing),
client certificates (profile 3: whose they are), and people's passwords and PINs (scrypt, memory-hard).

Passwords are kept only as PBKDF2-SHA256 hashes (``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>``);
a config value that already has that form is taken as a hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

PREFIX = "pbkdf2_sha256"
ITERATIONS = 20_000


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """Return the stored form of `password` (a value already in stored form is returned as is)."""
    if password.startswith(PREFIX + "$"):
        return password
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{PREFIX}${iterations}${salt.hex()}${digest.hex()}"


def is_valid_hash(stored: str) -> bool:
    parts = stored.split("$")
    if len(parts) != 4 or parts[0] != PREFIX or not parts[1].isdigit() or int(parts[1]) < 1:
        return False
    try:
        return bool(bytes.fromhex(parts[2])) and len(bytes.fromhex(parts[3])) == 32
    except ValueError:
        return False


# Checked when the charger id is unknown, so that a refusal takes as long whether or not the id exists.
_DUMMY = hash_password("sitekeeper-dummy", salt=b"\0" * 16)


def check_password(password: str, stored: str) -> bool:
    """True if `password` matches the stored hash (constant-time compare); an empty `stored` never matches
    but costs the same time."""
    if not stored:
        check_password(password, _DUMMY)
        return False
    try:
        prefix, iterations, salt, digest = stored.split("$")
        if prefix != PREFIX:
            return False
        got = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """Split an ``Authorization: Basic ...`` header into (user, password), or None if absent or bad."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8", "replace")
    except ValueError:
        return None
    user, sep, password = raw.partition(":")
    return (user, password) if sep else None


def basic_auth_header(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"Basic {token}"


def certificate_problem(cert: dict | None, serial: str, cpo_name: str = "") -> str | None:
    """Why a charger's verified TLS client certificate does not admit it, or None if it does: its subject's
    CN must be the charger's serial number and, if `cpo_name` is set, its O must contain the operator's name
    (OCPP 1.6 security whitepaper A00.FR.404/405; 2.0.1 A00.FR.4xx alike). `cert` is `getpeercert()`'s dict;
    the TLS layer has checked the certification path already."""
    if not cert:
        return "no client certificate"
    subject: dict[str, list[str]] = {}
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            subject.setdefault(key, []).append(value)
    names = subject.get("commonName", [])
    if names != [serial]:
        return f"certificate CN {', '.join(names) or 'missing'!s} is not the charger's serial number {serial!r}"
    if cpo_name and not any(cpo_name in o for o in subject.get("organizationName", [])):
        return (f"certificate O {', '.join(subject.get('organizationName', [])) or 'missing'!s} does not name "
                f"the operator {cpo_name!r}")
    return None


# -- people's passwords and PINs (owner backend accounts, wallet PINs) ----------------------------------------
# scrypt, memory-hard (16 MiB per check at these parameters): ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>``
SCRYPT = (2**14, 8, 1)


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    """The stored form of a person's password or PIN."""
    n, r, p = SCRYPT
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


_DUMMY_SECRET = hash_secret("sitekeeper-dummy", salt=b"\0" * 16)


def check_secret(secret: str, stored: str | None) -> bool:
    """True if `secret` matches `stored` (constant-time); no `stored` never matches but costs the same."""
    if not stored:
        check_secret(secret, _DUMMY_SECRET)
        return False
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=64 * 1024 * 1024, dklen=32)
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)
