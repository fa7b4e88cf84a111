"""Security against the real daemon over real sockets: OCPP security profiles 1 (HTTP Basic) and 2 (TLS +
Basic) toward the chargers, Basic auth + TLS toward the upstream CSMS, and start-up refusal of bad configs.

TLS material comes from tests/pki.py (the `openssl` command line), made once per test module.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import SITEKEEPER, EdgeProcess, free_port
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from peers import Charger, Csms
from pki import Pki, make_pki
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

EdgeFactory = Callable[..., EdgeProcess]

PASSWORD = "s3cret-pass"
UP_PASSWORD = "up-pass"
HASH_RE = re.compile(r"pbkdf2_sha256\$\d+\$[0-9a-f]{32}\$[0-9a-f]{64}")


def basic(user: str, password: str) -> dict[str, str]:
    """The HTTP Basic `Authorization` header for `user`/`password`."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def profile1(password: str = PASSWORD) -> dict:
    return {"ocpp": {"security_profile": 1, "chargers": {"CP1": {"password": password}}}}


async def refused_status(url: str, charger_id: str, headers: dict[str, str] | None = None,
                         tls: ssl.SSLContext | None = None) -> InvalidStatus:
    """Connect and expect the handshake to be refused with an HTTP status; return the exception."""
    ch = Charger(url, charger_id, "1.6", headers=headers, ssl=tls)
    try:
        with pytest.raises(InvalidStatus) as info:
            await ch.connect()
    finally:
        await ch.close()
    return info.value


async def boots(url: str, charger_id: str, version: str = "1.6", headers: dict[str, str] | None = None,
                tls: ssl.SSLContext | None = None) -> None:
    """Connect, send a BootNotification, expect Accepted, disconnect."""
    ch = await Charger(url, charger_id, version, headers=headers, ssl=tls).connect()
    try:
        boot = await (ch.boot16() if version == "1.6" else ch.boot201())
        assert boot.status == "Accepted"
    finally:
        await ch.close()


def hash_password_cli(password: str) -> str:
    out = subprocess.run([SITEKEEPER, "hash-password", password], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


# -- TLS material -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA, a server certificate (SAN IP:127.0.0.1, DNS:localhost) and client certificates."""
    return make_pki(tmp_path_factory.mktemp("pki"))


# -- security profile 1: HTTP Basic toward the chargers ----------------------------------------------------

@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_profile1_right_credentials_connect(edge_factory: EdgeFactory, version: str) -> None:
    edge = edge_factory(profile1())
    await boots(edge.url, "CP1", version, headers=basic("CP1", PASSWORD))


async def test_profile1_refuses_bad_credentials_with_401(edge_factory: EdgeFactory) -> None:
    edge = edge_factory(profile1())
    cases: dict[str, tuple[str, dict[str, str] | None]] = {
        "wrong password": ("CP1", basic("CP1", "wrong-pass")),
        "password with a suffix": ("CP1", basic("CP1", PASSWORD + "x")),
        "empty password": ("CP1", basic("CP1", "")),
        "no credentials": ("CP1", None),
        "not Basic": ("CP1", {"Authorization": f"Bearer {PASSWORD}"}),
        "user is not the charger id": ("CP1", basic("CP2", PASSWORD)),
        "unknown charger id": ("CP9", basic("CP9", PASSWORD)),
    }
    for name, (charger_id, headers) in cases.items():
        err = await refused_status(edge.url, charger_id, headers)
        assert err.response.status_code == 401, name
        assert "basic" in err.response.headers.get("WWW-Authenticate", "").lower(), name
    assert edge.query("SELECT count(*) FROM chargers") == [(0,)], "no refused charger may be recorded"
    # the log says which it was: an unlisted charger was once logged as "wrong or missing password"
    log = edge.log()
    assert "charger 'CP9' refused: not listed under [ocpp.chargers]" in log
    assert "charger 'CP1' refused: wrong password" in log and "charger 'CP1' refused: no password sent" in log
    assert "charger 'CP1' refused: sent the user name 'CP2', not its own id" in log
    # the refusals did not harm the server: the right credentials still get in
    await boots(edge.url, "CP1", headers=basic("CP1", PASSWORD))


async def test_a_path_without_a_charger_id_and_an_unserved_subprotocol_are_refused(edge_factory: EdgeFactory) -> None:
    """`ws://site:9000/ocpp` once made a charger named "ocpp"; `ocpp2.1` was accepted though 2.1 is not served."""
    import websockets

    edge = edge_factory()
    base = edge.url.rsplit("/", 1)[0]
    for url in (f"{base}/ocpp", f"{base}/ocpp/", f"{base}/"):
        with pytest.raises(InvalidStatus) as info:
            await websockets.connect(url, subprotocols=["ocpp1.6"])
        assert info.value.response.status_code == 404, url
    with pytest.raises(InvalidStatus) as info:
        await websockets.connect(f"{edge.url}/CP21", subprotocols=["ocpp2.1"])
    assert info.value.response.status_code == 400
    async with websockets.connect(f"{edge.url}/CP21", subprotocols=["ocpp2.1", "ocpp2.0.1"]) as ws:
        assert ws.subprotocol == "ocpp2.0.1", "the one it offered that is served"
    assert [r for r in edge.query("SELECT id FROM chargers") if r[0] == "ocpp"] == []


def test_hash_password_command() -> None:
    first = hash_password_cli(PASSWORD)
    second = hash_password_cli(PASSWORD)
    assert HASH_RE.fullmatch(first), first
    assert first != second, "each hash must have its own salt"
    assert PASSWORD not in first
    empty = subprocess.run([SITEKEEPER, "hash-password", ""], capture_output=True, text=True, timeout=30)
    assert empty.returncode == 2 and empty.stdout == ""


async def test_profile1_password_given_as_hash(edge_factory: EdgeFactory) -> None:
    edge = edge_factory(profile1(hash_password_cli(PASSWORD)))
    await boots(edge.url, "CP1", headers=basic("CP1", PASSWORD))
    assert (await refused_status(edge.url, "CP1", basic("CP1", "wrong-pass"))).response.status_code == 401
    assert (await refused_status(edge.url, "CP1")).response.status_code == 401
    # the hash is what is stored, not a password: presenting the hash itself must not get in
    stored = edge.config["ocpp"]["chargers"]["CP1"]["password"]
    assert (await refused_status(edge.url, "CP1", basic("CP1", stored))).response.status_code == 401


async def test_plain_password_never_in_database_or_log(edge_factory: EdgeFactory) -> None:
    wrong = "wr0ng-guess-pass"
    edge = edge_factory(profile1())
    await boots(edge.url, "CP1", headers=basic("CP1", PASSWORD))
    await refused_status(edge.url, "CP1", basic("CP1", wrong))
    served = edge.http("/metrics") + edge.http("/api/chargers") + edge.http("/healthz")
    assert edge.stop() == 0
    secrets = [s.encode() for s in (PASSWORD, wrong)]
    secrets += [basic("CP1", p)["Authorization"].split()[1].encode() for p in (PASSWORD, wrong)]
    files = [p for p in edge.workdir.iterdir() if p.is_file() and p != edge.config_path]
    assert Path(edge.db_path) in files and edge.log_path in files
    assert "refused" in edge.log(), "the refusal is logged (without the password)"
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret not in data, f"{secret!r} found in {path.name}"
    for secret in secrets:
        assert secret.decode() not in served


# -- security profile 2: TLS + HTTP Basic ------------------------------------------------------------------

def profile2(pki: Pki) -> dict:
    cfg = profile1()
    cfg["ocpp"].update(security_profile=2, tls_cert=str(pki.server_cert), tls_key=str(pki.server_key))
    return cfg


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_profile2_tls_and_basic(edge_factory: EdgeFactory, pki: Pki, version: str) -> None:
    edge = edge_factory(profile2(pki))
    assert edge.url.startswith("wss://")
    await boots(edge.url, "CP1", version, headers=basic("CP1", PASSWORD), tls=pki.client_context())
    # TLS does not replace the password
    for headers in (None, basic("CP1", "wrong-pass")):
        err = await refused_status(edge.url, "CP1", headers, tls=pki.client_context())
        assert err.response.status_code == 401


async def test_profile2_plain_ws_fails(edge_factory: EdgeFactory, pki: Pki) -> None:
    edge = edge_factory(profile2(pki))
    plain_url = edge.url.replace("wss://", "ws://", 1)
    ch = Charger(plain_url, "CP1", "1.6", headers=basic("CP1", PASSWORD))
    try:
        # no HTTP answer of any kind: the port speaks TLS only
        with pytest.raises((InvalidMessage, ConnectionClosed, OSError, EOFError, TimeoutError)):
            await ch.connect()
    finally:
        await ch.close()
    assert edge.query("SELECT count(*) FROM chargers") == [(0,)]
    # the TLS port is still serving
    await boots(edge.url, "CP1", headers=basic("CP1", PASSWORD), tls=pki.client_context())


# -- toward upstream: TLS + HTTP Basic ---------------------------------------------------------------------

def proxy_config(csms: Csms, ca_file: Path | None, strict: bool = False) -> dict:
    cfg = profile1()  # the chargers' own password differs from the one upstream expects
    cfg["upstream"] = {"mode": "proxy", "url": csms.url, "strict": strict, "call_timeout": 5,
                       "chargers": {"CP1": {"password": UP_PASSWORD}}}
    if ca_file is not None:
        cfg["upstream"]["ca_file"] = str(ca_file)
    return cfg


async def wait_upstream_links(edge: EdgeProcess, count: int, timeout: float = 10.0) -> None:
    """Wait until /metrics reports `count` open upstream links."""
    want = f"sitekeeper_upstream_links_up {count}"
    deadline = asyncio.get_running_loop().time() + timeout
    while want not in edge.http("/metrics").splitlines():
        assert asyncio.get_running_loop().time() < deadline, f"no {want!r} in /metrics"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_upstream_gets_basic_auth_over_tls(edge_factory: EdgeFactory, pki: Pki, version: str) -> None:
    csms = await Csms(free_port(), ssl=pki.server_context()).start()
    try:
        assert csms.url.startswith("wss://127.0.0.1:")
        edge = edge_factory(proxy_config(csms, pki.ca_cert))
        ch = await Charger(edge.url, "CP1", version, headers=basic("CP1", PASSWORD)).connect()
        try:
            # the first frame right after the handshake has a test of its own (below)
            await wait_upstream_links(edge, 1)
            boot = await (ch.boot16() if version == "1.6" else ch.boot201())
            assert boot.status == "Accepted"
            await ch.call(call16.Heartbeat() if version == "1.6" else call201.Heartbeat())
        finally:
            await ch.close()
        peer = csms.history[0]
        assert peer.charger_id == "CP1"
        headers = {k.lower(): v for k, v in peer.headers.items()}
        assert headers.get("authorization") == basic("CP1", UP_PASSWORD)["Authorization"]
        # frames pass both ways with their own text
        assert [m[2] for m in csms.calls("CP1")] == ["BootNotification", "Heartbeat"]
        assert peer.received == ch.sent
        assert peer.sent == ch.received
    finally:
        await csms.stop()


async def test_upstream_answers_the_first_frame_after_the_handshake(edge_factory: EdgeFactory,
                                                                    pki: Pki) -> None:
    """The upstream link is opened during the charger's handshake, so a Boot sent the moment the handshake
    completes must already go to upstream and get upstream's answer (not a local "offline" one)."""
    csms = await Csms(free_port(), ssl=pki.server_context()).start()
    try:
        edge = edge_factory(proxy_config(csms, pki.ca_cert))
        for attempt in range(6):
            msg_id = f"boot-{attempt}"
            boot = f'[2,"{msg_id}","BootNotification",{{"chargePointModel":"m","chargePointVendor":"v"}}]'
            ch = await Charger(edge.url, "CP1", "1.6", headers=basic("CP1", PASSWORD)).connect()
            try:
                n = len(ch.received)
                await ch.raw(boot)
                got = ch.received[n]
            finally:
                await ch.close()
            upstream_answers = [t for p in csms.history for t in p.sent if f'"{msg_id}"' in t]
            assert upstream_answers == [got], (
                f"connection {attempt}: the charger got {got!r}, upstream answered {upstream_answers!r}")
    finally:
        await csms.stop()


async def test_upstream_certificate_is_verified(edge_factory: EdgeFactory, pki: Pki) -> None:
    """Without `ca_file` the throwaway CA is not trusted, so the edge must not talk to that upstream."""
    csms = await Csms(free_port(), ssl=pki.server_context()).start()
    try:
        edge = edge_factory(proxy_config(csms, None, strict=True))
        err = await refused_status(edge.url, "CP1", basic("CP1", PASSWORD))
        assert err.response.status_code == 502
        assert csms.history == []
        assert re.search(r"certificate[ _]verify[ _]failed", edge.log().lower())
    finally:
        await csms.stop()


# -- config errors stop start-up ---------------------------------------------------------------------------

@pytest.mark.parametrize(("toml", "key"), [
    ("[ocpp]\nsecurty_profile = 1\n", "ocpp.securty_profile"),
    ('[ocpp]\nport = "abc"\n', "ocpp.port"),
    ("[ocpp]\nsecurity_profile = 2\n", "ocpp.tls_cert"),
    ("[ocpp]\nsecurity_profile = 4\n", "ocpp.security_profile"),
    ('[ocpp.chargers.CP1]\npasword = "x"\n', "ocpp.chargers.CP1.pasword"),
    ('[upstream]\nmode = "proxy"\n', "upstream.url"),
    ('[upstream]\nmode = "proxy"\nurl = "ws://127.0.0.1:9/"\ncert_file = "bad.toml"\n', "upstream.cert_file"),
    ('[upstream.chargers.CP1]\nkey_file = "bad.toml"\n', "upstream.chargers.CP1.key_file"),
    ('[upstream.chargers.CP1]\ncert_file = "missing.pem"\n', "upstream.chargers.CP1.cert_file"),
])
@pytest.mark.parametrize("config_first", [True, False], ids=["--config-run", "run---config"])
def test_config_error_stops_startup(tmp_path: Path, toml: str, key: str, config_first: bool) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[store]\npath = "site.db"\n[web]\nport = {free_port()}\n{toml}')
    args = ["--config", str(bad), "run"] if config_first else ["run", "--config", str(bad)]
    out = subprocess.run([SITEKEEPER, *args], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert key in lines[0]
    assert "ready:" not in out.stdout
    assert not (tmp_path / "site.db").exists(), "nothing may start: no database is created"


def test_missing_tls_certificate_file_names_the_key(tmp_path: Path) -> None:
    """A certificate path that does not exist is a bad value like any other: exit 2, one line, the key."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[store]\npath = "site.db"\n[web]\nport = 0\n'
                   f'[ocpp]\nport = {free_port()}\nsecurity_profile = 2\n'
                   f'tls_cert = "{tmp_path / "missing.pem"}"\ntls_key = "{tmp_path / "missing.key"}"\n')
    out = subprocess.run([SITEKEEPER, "--config", str(bad), "run"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert "ocpp.tls_cert" in lines[0]
    assert not (tmp_path / "site.db").exists(), "nothing may start: no database is created"
