"""`sitekeeper doctor` on a real site: each check says what it found in one line, with the fix when it is not
well; a broken ledger, an unreachable broker or upstream, and a stopped edge are each found and named."""

from __future__ import annotations

import asyncio
import json
import subprocess

from conftest import SITEKEEPER, free_port
from peers import Charger
from test_taps import add_card

from edge.store.sqlite import Store


def doctor(edge) -> tuple[int, dict]:
    out = subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "doctor", "--json"], capture_output=True,
                         text=True, timeout=60)
    return out.returncode, {r["check"]: r for r in json.loads(out.stdout)}


async def test_a_well_site_and_what_breaks_it(edge_factory):
    closed = free_port()
    edge = edge_factory({"mqtt": {"host": "127.0.0.1", "port": closed}})
    add_card(edge, "04AB12CD", "commercial", topup=10_000)
    charger = await Charger(edge.url, "CP-DOC", "1.6").connect()
    await charger.boot16()
    code, found = doctor(edge)
    assert found["config"]["status"] == "ok" and found["database"]["status"] == "ok"
    assert "integrity ok" in found["database"]["message"] and found["ledger"]["status"] == "ok"
    assert found["edge"]["status"] == "ok" and "1 charger(s) connected" in found["edge"]["message"]
    assert found["disk"]["status"] in ("ok", "warn") and found["reader kiosk"]["status"] == "ok"
    assert found["mqtt"]["status"] == "fail" and f"nothing listens on 127.0.0.1:{closed}" in found["mqtt"]["message"]
    assert found["mqtt"]["fix"] and code == 1, "a failing check fails the whole"
    await charger.close()
    store = Store.open(edge.db_path)
    store.write_now(lambda c: c.execute("UPDATE accounts SET balance_minor = balance_minor + 500"))  # not by the ledger
    store.close()
    edge.stop()
    code, found = doctor(edge)
    assert found["ledger"]["status"] == "fail" and "1 account(s) differ" in found["ledger"]["message"]
    assert found["edge"]["status"] == "fail" and "does not answer" in found["edge"]["message"]
    assert "systemctl start sitekeeper-edge" in found["edge"]["fix"]
    human = subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "doctor"], capture_output=True, text=True,
                           timeout=60)
    assert human.returncode == 1 and "FAIL  ledger" in human.stdout and "fix:" in human.stdout


async def test_proxy_upstream_unreachable_is_named_and_reachable_is_ok(edge_factory):
    from peers import Csms

    port = free_port()
    edge = edge_factory({"upstream": {"mode": "proxy", "url": f"ws://127.0.0.1:{port}/csms"}}, start=False)
    subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "init"], check=True, capture_output=True)
    code, found = doctor(edge)
    assert found["upstream"]["status"] == "fail" and "nothing listens" in found["upstream"]["message"]
    assert code == 1
    csms = await Csms(port).start()
    try:
        _, found = await asyncio.to_thread(doctor, edge)
        assert found["upstream"]["status"] == "ok" and "handshake works" in found["upstream"]["message"]
    finally:
        await csms.stop()
