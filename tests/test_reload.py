"""SIGHUP re-reads the config file (`systemctl reload`) against the real daemon: a charger added, a password
changed and a renewed TLS certificate take effect for new connections while connected chargers stay
connected; a file that does not load changes nothing; keys that need a restart are named and left alone."""

from __future__ import annotations

import asyncio
import shutil
import signal
import ssl

import pytest
from conftest import to_toml
from ocpp.v16 import call as call16
from peers import Charger
from pki import Pki, make_pki
from test_security import PASSWORD, basic, boots, refused_status


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki-reload"))


async def reload(edge, config: dict) -> str:
    """Write `config`, send SIGHUP, return the log lines the reload wrote."""
    before = edge.log().count("config reload")
    edge.config_path.write_text(to_toml(config))
    edge.proc.send_signal(signal.SIGHUP)
    for _ in range(100):
        lines = [line for line in edge.log().splitlines() if "config reload" in line]
        if len(lines) > before:
            return "\n".join(lines[before:])
        await asyncio.sleep(0.05)
    raise AssertionError("no reload in the log:\n" + edge.log())


async def test_a_new_charger_and_a_new_password_without_a_restart(edge_factory):
    edge = edge_factory({"ocpp": {"security_profile": 1, "chargers": {"CP1": {"password": PASSWORD}}}})
    cp1 = await Charger(edge.url, "CP1", "1.6", headers=basic("CP1", PASSWORD)).connect()
    try:
        await cp1.boot16()
        assert (await refused_status(edge.url, "CP2", basic("CP2", "two-pass"))).response.status_code == 401
        config = {**edge.config, "site": {"name": "Depot 7, renamed"}}
        config["ocpp"] = {**config["ocpp"], "chargers": {"CP1": {"password": "new-pass"},
                                                         "CP2": {"password": "two-pass"}}}
        said = await reload(edge, config)
        assert "ocpp.chargers" in said and "needs a restart (left as it was): site.name" in said
        await boots(edge.url, "CP2", headers=basic("CP2", "two-pass"))
        assert (await refused_status(edge.url, "CP1", basic("CP1", PASSWORD))).response.status_code == 401
        await cp1.call(call16.Heartbeat())  # the charger that was connected never noticed
        await boots(edge.url, "CP1", headers=basic("CP1", "new-pass"))
    finally:
        await cp1.close()
    assert edge.proc.poll() is None


async def test_a_file_that_does_not_load_changes_nothing(edge_factory):
    edge = edge_factory({"ocpp": {"security_profile": 1, "chargers": {"CP1": {"password": PASSWORD}}}})
    bad = {**edge.config, "ocpp": {**edge.config["ocpp"], "chargers": {"CP1": {"pasword": "x"}}}}
    said = await reload(edge, bad)
    assert "config reload failed" in said and "ocpp.chargers.CP1.pasword" in said
    other = {**edge.config, "ocpp": {**edge.config["ocpp"], "security_profile": 0}}
    said = await reload(edge, other)
    assert "config reload failed" in said and "security_profile" in said
    await boots(edge.url, "CP1", headers=basic("CP1", PASSWORD))
    assert edge.proc.poll() is None


def served_cert(ch: Charger) -> bytes:
    return ch.ws.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)


def der(path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


async def test_a_renewed_certificate_is_served_to_new_connections(edge_factory, tmp_path, pki: Pki):
    live_cert, live_key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(pki.server_cert, live_cert)
    shutil.copy(pki.server_key, live_key)
    edge = edge_factory({"ocpp": {"security_profile": 2, "tls_cert": str(live_cert), "tls_key": str(live_key),
                                  "chargers": {"CP1": {"password": PASSWORD}}}})
    first = await Charger(edge.url, "CP1", "1.6", headers=basic("CP1", PASSWORD),
                          ssl=pki.client_context()).connect()
    try:
        assert served_cert(first) == der(pki.server_cert)
        renewed, renewed_key = pki.client("server-renewed")
        shutil.copy(renewed, live_cert)
        shutil.copy(renewed_key, live_key)
        said = await reload(edge, edge.config)
        assert "config reloaded" in said
        second = await Charger(edge.url, "CP1", "1.6", headers=basic("CP1", PASSWORD),
                               ssl=pki.client_context()).connect()
        try:
            assert served_cert(second) == der(renewed) != der(pki.server_cert)
            assert (await second.boot16()).status == "Accepted"
        finally:
            await second.close()
        # a key that does not match its certificate: refused, the renewed pair stays in use
        shutil.copy(pki.server_key, live_key)
        said = await reload(edge, edge.config)
        assert "config reload failed" in said
        _, writer = await asyncio.open_connection("127.0.0.1", edge.ocpp_port, ssl=pki.client_context())
        try:
            assert writer.get_extra_info("ssl_object").getpeercert(binary_form=True) == der(renewed)
        finally:
            writer.close()
    finally:
        await first.close()
