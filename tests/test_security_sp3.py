"""OCPP security profile 3 (TLS with client-side certificates) against the real daemon over real sockets:
toward the chargers (the edge verifies the certificate path, that CN is the charger's serial number and that
O is the operator: 1.6 security whitepaper A00.FR.403-407) and toward the upstream CSMS (the edge presents a
client certificate, the site's or a charger's own)."""

from __future__ import annotations

import asyncio
import ssl
import subprocess

import pytest
from conftest import SITEKEEPER, free_port
from peers import Charger, Csms
from pki import Pki, make_pki
from test_security import refused_status
from websockets.exceptions import InvalidMessage


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki3"))


def profile3(pki: Pki, **ocpp) -> dict:
    return {"ocpp": {"security_profile": 3, "tls_cert": str(pki.server_cert), "tls_key": str(pki.server_key),
                     "client_ca": str(pki.ca_cert), "cpo_name": "Acme CPO", **ocpp}}


async def boots(url: str, charger_id: str, tls: ssl.SSLContext, version: str = "1.6") -> None:
    ch = await Charger(url, charger_id, version, ssl=tls).connect()
    try:
        boot = await (ch.boot16() if version == "1.6" else ch.boot201())
        assert boot.status == "Accepted"
    finally:
        await ch.close()


async def tls_refused(url: str, charger_id: str, tls: ssl.SSLContext) -> None:
    """The TLS handshake itself fails: no HTTP answer of any kind."""
    ch = Charger(url, charger_id, "1.6", ssl=tls)
    try:
        with pytest.raises((ssl.SSLError, ConnectionError, EOFError, OSError, InvalidMessage)):
            await ch.connect()
    finally:
        await ch.close()


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_charger_with_its_certificate_gets_in_without_a_password(edge_factory, pki: Pki, version: str):
    edge = edge_factory(profile3(pki))
    assert edge.url.startswith("wss://")
    await boots(edge.url, "CP1", pki.client_context("cp1"), version)
    assert edge.query("SELECT id FROM chargers") == [("CP1",)]


async def test_wrong_or_missing_certificates_are_refused_and_the_site_goes_on(edge_factory, pki: Pki):
    edge = edge_factory(profile3(pki))
    # no certificate, or one from a CA the site does not trust: the TLS handshake itself fails
    for tls in (pki.client_context(), pki.client_context("cp1-rogue")):
        await tls_refused(edge.url, "CP1", tls)
    # a valid certificate, but another charger's, or another operator's: 403
    for cert in ("cp2", "cp1-other-cpo"):
        err = await refused_status(edge.url, "CP1", tls=pki.client_context(cert))
        assert err.response.status_code == 403, cert
    assert edge.query("SELECT count(*) FROM chargers") == [(0,)], "no refused charger may be recorded"
    log = edge.log()
    assert "CP2" in log and "Other CPO" in log, "each refusal says why"
    await boots(edge.url, "CP1", pki.client_context("cp1"))
    await boots(edge.url, "CP2", pki.client_context("cp2"))


async def test_only_listed_chargers_when_unknown_ones_are_not_allowed(edge_factory, pki: Pki):
    edge = edge_factory(profile3(pki, allow_unknown_chargers=False, chargers={"CP1": {"serial": "CP1"}}))
    await boots(edge.url, "CP1", pki.client_context("cp1"))
    err = await refused_status(edge.url, "CP2", tls=pki.client_context("cp2"))  # its own, valid certificate
    assert err.response.status_code == 403
    assert "not listed" in edge.log()


async def test_a_configured_serial_number_is_what_the_certificate_must_name(edge_factory, pki: Pki):
    """A charger whose id is not its serial number: `serial` says what CN must be."""
    edge = edge_factory(profile3(pki, chargers={"bay-4": {"serial": "CP2"}}))
    await boots(edge.url, "bay-4", pki.client_context("cp2"))
    err = await refused_status(edge.url, "bay-4", tls=pki.client_context("cp1"))
    assert err.response.status_code == 403


async def test_simulate_presents_each_chargers_own_certificate(edge_factory, pki: Pki):
    edge = edge_factory(profile3(pki))
    args = [SITEKEEPER, "simulate", "--url", edge.url, "--chargers", "2", "--meter-interval", "0.05",
            "--ca", str(pki.ca_cert), "--cert", str(pki.dir / "{id}.pem"), "--key", str(pki.dir / "{id}.key")]
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode() + err.decode()
    assert "SIM0001: 1 session(s)" in out.decode() and "SIM0002: 1 session(s)" in out.decode()
    assert edge.query("SELECT id FROM chargers ORDER BY id") == [("SIM0001",), ("SIM0002",)]
    # a third simulated charger has no certificate of its own: it says so, and the others are not harmed
    proc = await asyncio.create_subprocess_exec(*args[:5], "3", *args[6:], stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1 and "SIM0003: 0 session(s)" in out.decode() and "TLS material" in out.decode()


def test_profile3_needs_the_chargers_ca(tmp_path, pki: Pki):
    cfg = tmp_path / "site.toml"
    cfg.write_text(f'[ocpp]\nsecurity_profile = 3\ntls_cert = "{pki.server_cert}"\ntls_key = "{pki.server_key}"\n')
    out = subprocess.run([SITEKEEPER, "--config", str(cfg), "run"], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "ocpp.client_ca" in out.stderr and len(out.stderr.strip().splitlines()) == 1


# -- toward upstream: a client certificate ------------------------------------------------------------------

def upstream_config(csms: Csms, pki: Pki, **upstream) -> dict:
    return {"upstream": {"mode": "proxy", "url": csms.url, "ca_file": str(pki.ca_cert), "strict": True,
                         "call_timeout": 5, **upstream}}


def peer_cn(csms: Csms, charger_id: str) -> str:
    cert = csms.peers[charger_id].ws.transport.get_extra_info("peercert")
    return dict(rdn[0] for rdn in cert["subject"])["commonName"]


async def test_upstream_gets_the_sites_certificate_or_the_chargers_own(edge_factory, pki: Pki):
    csms = await Csms(free_port(), ssl=pki.server_context(require_client_cert=True)).start()
    try:
        site_cert, site_key = pki.client("site")
        cp1_cert, cp1_key = pki.client("cp1")
        edge = edge_factory(upstream_config(csms, pki, cert_file=str(site_cert), key_file=str(site_key),
                                            chargers={"CP1": {"cert_file": str(cp1_cert),
                                                              "key_file": str(cp1_key)}}))
        for charger_id, expected in (("CP1", "CP1"), ("CP7", "site-depot-7")):
            ch = await Charger(edge.url, charger_id, "1.6").connect()
            try:
                assert (await ch.boot16()).status == "Accepted"
            finally:
                await ch.close()
            assert peer_cn(csms, charger_id) == expected
            assert [m[2] for m in csms.calls(charger_id)] == ["BootNotification"]
    finally:
        await csms.stop()


async def test_without_a_client_certificate_that_upstream_refuses(edge_factory, pki: Pki):
    csms = await Csms(free_port(), ssl=pki.server_context(require_client_cert=True)).start()
    try:
        edge = edge_factory(upstream_config(csms, pki))
        err = await refused_status(edge.url, "CP1")
        assert err.response.status_code == 502  # strict: no upstream, no charger
        await asyncio.sleep(0.1)
        assert csms.history == []
    finally:
        await csms.stop()
