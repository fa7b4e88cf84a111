"""cloud_sync against a real Mosquitto started by the tests: records out in order, acks, outages, kill -9,
commands applied once, TLS, wrong passwords, and the operator's view."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import SITEKEEPER, to_toml, wait_until

from edge.billing import cards, ledger
from edge.store.sqlite import Store

SITE = "depot-7"


class Sync:
    """`sitekeeper sync` as a subprocess with its own config and database."""

    def __init__(self, tmp: Path, broker=None, **mqtt):
        self.db = str(tmp / "site.db")
        cfg: dict = {"site": {"id": SITE}, "store": {"path": self.db}, "billing": {"currency": "PHP"}}
        if broker is not None:
            cfg["mqtt"] = {"host": broker.host, "port": broker.port, "max_inflight": 50, **mqtt}
        self.config = tmp / "sitekeeper.toml"
        self.config.write_text(to_toml(cfg))
        self.log = tmp / "sync.log"
        self.proc: subprocess.Popen | None = None
        Store.open(self.db).close()  # the schema exists before the test writes records

    def start(self) -> Sync:
        self.proc = subprocess.Popen([SITEKEEPER, "--config", str(self.config), "sync"],
                                     stdout=open(self.log, "a"), stderr=subprocess.STDOUT)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            self.proc.send_signal(sig)
            self.proc.wait(15)
            self.proc = None

    def status(self) -> dict:
        out = subprocess.run([SITEKEEPER, "--config", str(self.config), "sync", "--status", "--json"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def write(self, fn):
        store = Store.open(self.db)
        try:
            return store.write_now(fn)
        finally:
            store.close()

    def topups(self, uid: str, n: int, amount: int = 100) -> list[str]:
        def fn(conn):
            card = cards.get_card(conn, uid) or cards.add_card(conn, uid, "commercial", name=f"Owner {uid}")
            return [ledger.post(conn, card.account_id, "topup", amount, key=f"t:{uid}:{i}", currency="PHP")[0]
                    for i in range(n)]
        return self.write(fn)

    def balance(self, uid: str) -> int:
        return self.write(lambda c: ledger.balance(c, cards.get_card(c, uid).account_id))


@pytest.fixture
def sync_factory(tmp_path):
    made: list[Sync] = []

    def make(broker=None, **mqtt) -> Sync:
        d = tmp_path / f"sync{len(made)}"
        d.mkdir()
        s = Sync(d, broker, **mqtt)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def records(sub) -> list:
    return [m for m in sub.snapshot() if "/records/" in m.topic]


def test_records_published_in_order_with_payloads_then_acked(broker, sync_factory):
    sync = sync_factory(broker)
    sync.topups("04A1B2C3", 3, amount=2500)
    sub = broker.subscriber(f"sitekeeper/{SITE}/#")
    sync.start()
    wait_until(lambda: len(records(sub)) == 4, what="4 records")  # the card, then three top-ups
    got = records(sub)
    assert [m.topic.rsplit("/", 1)[1] for m in got] == ["card", "ledger", "ledger", "ledger"]
    bodies = [json.loads(m.payload) for m in got]
    assert [b["seq"] for b in bodies] == [1, 2, 3, 4], "gap-free, in order"
    assert all(b["site"] == SITE for b in bodies)
    assert bodies[1]["kind"] == "ledger" and bodies[1]["entry_kind"] == "topup"
    assert bodies[1]["amount_minor"] == 2500 and bodies[3]["balance_minor"] == 7500
    assert bodies[1]["key"] == "ledger:t:04A1B2C3:0" and isinstance(bodies[1]["clock_synced"], bool)
    assert got[1].user_properties == {"key": bodies[1]["key"], "seq": "2"}
    assert bodies[0]["uid"] == "04A1B2C3" and bodies[0]["kind"] == "card" and bodies[0]["card_kind"] == "commercial"
    online = sub.wait_for(lambda m: m.topic == f"sitekeeper/{SITE}/status")
    assert json.loads(online.payload)["online"] is True
    wait_until(lambda: sync.status()["unsent"] == 0, what="PUBACKs")
    st = sync.status()
    assert st["connected"] and st["backlog"] == 4 and st["last_ack_seq"] == 0
    sub.publish(f"sitekeeper/{SITE}/ack", json.dumps({"seq": 3}))
    wait_until(lambda: sync.status()["last_ack_seq"] == 3, what="ack")
    assert sync.status()["backlog"] == 1
    sync.stop()
    offline = [m for m in sub.snapshot() if m.topic == f"sitekeeper/{SITE}/status"][-1]
    assert json.loads(offline.payload)["online"] is False


def test_broker_down_then_everything_arrives(broker, sync_factory):
    sync = sync_factory(broker)
    sync.start()
    wait_until(lambda: sync.status()["connected"], what="connected")
    broker.stop()
    wait_until(lambda: not sync.status()["connected"], what="disconnect noticed")
    sync.topups("04B00001", 20)
    assert sync.status()["unsent"] == 21
    broker.restart()
    sub = broker.subscriber(f"sitekeeper/{SITE}/records/#")
    wait_until(lambda: len({json.loads(m.payload)["seq"] for m in records(sub)}) == 21, what="all records")
    assert sorted({json.loads(m.payload)["seq"] for m in records(sub)}) == list(range(1, 22))


def test_kill9_mid_drain_loses_nothing_and_duplicates_only_as_resends(broker, sync_factory):
    sync = sync_factory(broker)
    sync.topups("04C00001", 1500)
    keys = {f"ledger:t:04C00001:{i}" for i in range(1500)} | {"card:04C00001:1"}
    sub = broker.subscriber(f"sitekeeper/{SITE}/records/#")
    sync.start()
    wait_until(lambda: len(records(sub)) >= 200, what="a part of the backlog")
    sync.stop(signal.SIGKILL)
    sync.start()
    wait_until(lambda: {json.loads(m.payload)["key"] for m in records(sub)} >= keys, timeout=60,
               what="everything after the restart")
    seen: dict[str, bytes] = {}
    for m in records(sub):
        key = json.loads(m.payload)["key"]
        assert seen.setdefault(key, m.payload) == m.payload, "a duplicate is the same record, re-sent"
    assert set(seen) == keys


def test_command_applied_once_and_bad_commands_refused(broker, sync_factory):
    sync = sync_factory(broker)
    sync.topups("04D00001", 1, amount=1000)
    sub = broker.subscriber(f"sitekeeper/{SITE}/cmd_ack/#")
    sync.start()
    wait_until(lambda: sync.status()["connected"], what="connected")
    cmd = json.dumps({"id": "c-1", "uid": "04d0:0001", "amount_minor": 5000, "note": "cloud"})
    sub.publish(f"sitekeeper/{SITE}/cmd/topup", cmd)
    sub.publish(f"sitekeeper/{SITE}/cmd/topup", cmd)  # delivered twice
    wait_until(lambda: len([m for m in sub.snapshot() if m.topic.endswith("/c-1")]) == 2, what="two acks")
    acks = [json.loads(m.payload) for m in sub.snapshot() if m.topic.endswith("/c-1")]
    assert [a["ok"] for a in acks] == [True, True] and acks[0]["balance_minor"] == 6000
    assert sync.balance("04D00001") == 6000, "applied once"
    for cmd_id, kind, body, reason in [
        ("c-2", "topup", {"uid": "04D00001", "amount_minor": -5}, "amount_minor"),
        ("c-3", "topup", {"uid": "04FFFFFF", "amount_minor": 100}, "unknown card"),
        ("c-4", "card", {"action": "add", "uid": "not-a-uid", "kind": "commercial", "name": "X"}, "card id"),
        ("c-5", "tariff", {"valid_from": "2026-01-01T00:00:00Z", "tariff": {"per_kwh": 12}}, "tariff.per_kwh"),
        ("c-6", "dance", {}, "unknown command kind"),
        ("c-6b", "card", {"action": "update", "uid": "04D00001", "expires": "someday"}, "not a date"),
    ]:
        sub.publish(f"sitekeeper/{SITE}/cmd/{kind}", json.dumps({"id": cmd_id, **body}))
        ack = json.loads(sub.wait_for(lambda m, cmd_id=cmd_id: m.topic.endswith("/" + cmd_id)).payload)
        assert ack["ok"] is False and reason in ack["error"], ack
    sub.publish(f"sitekeeper/{SITE}/cmd/topup", b"{not json")
    assert json.loads(sub.wait_for(lambda m: m.topic.endswith("/invalid")).payload)["ok"] is False
    assert sync.balance("04D00001") == 6000, "bad commands changed nothing"
    sub.publish(f"sitekeeper/{SITE}/cmd/card", json.dumps({"id": "c-7", "action": "block", "uid": "04D00001"}))
    assert json.loads(sub.wait_for(lambda m: m.topic.endswith("/c-7")).payload)["ok"] is True
    assert sync.write(lambda c: cards.get_card(c, "04D00001").status) == "blocked"
    sub.publish(f"sitekeeper/{SITE}/cmd/card", json.dumps({"id": "c-8", "action": "update", "uid": "04D00001",
                                                           "expires": "2027-06-30T23:59:59+08:00"}))
    ack = json.loads(sub.wait_for(lambda m: m.topic.endswith("/c-8")).payload)
    assert ack["ok"] is True and ack["expires"] == "2027-06-30T15:59:59Z", "kept in UTC"
    assert sync.write(lambda c: cards.get_card(c, "04D00001").expires) == "2027-06-30T15:59:59Z"


def test_one_command_id_with_other_content_is_refused_and_changes_nothing(broker, sync_factory):
    """Re-sent with the same id but another amount: once acked ok with `repeat` and silently not applied."""
    sync = sync_factory(broker)
    sync.topups("04D00002", 1, amount=1000)
    sub = broker.subscriber(f"sitekeeper/{SITE}/cmd_ack/#")
    sync.start()
    wait_until(lambda: sync.status()["connected"], what="connected")
    sub.publish(f"sitekeeper/{SITE}/cmd/topup", json.dumps({"id": "d-1", "uid": "04D00002", "amount_minor": 5000}))
    sub.publish(f"sitekeeper/{SITE}/cmd/topup", json.dumps({"amount_minor": 5000, "uid": "04D00002", "id": "d-1"}))
    sub.publish(f"sitekeeper/{SITE}/cmd/topup", json.dumps({"id": "d-1", "uid": "04D00002", "amount_minor": 9000}))
    wait_until(lambda: len([m for m in sub.snapshot() if m.topic.endswith("/d-1")]) == 3, what="three acks")
    acks = [json.loads(m.payload) for m in sub.snapshot() if m.topic.endswith("/d-1")]
    assert [a["ok"] for a in acks] == [True, True, False], "the same words in another order are the same command"
    assert "different command" in acks[2]["error"] and "not applied" in acks[2]["error"]
    assert sync.balance("04D00002") == 6000, "only the first was applied"


def test_an_ack_beyond_what_was_sent_is_refused(broker, sync_factory):
    sync = sync_factory(broker)
    sync.topups("04D00003", 2)
    sub = broker.subscriber(f"sitekeeper/{SITE}/records/#")
    sync.start()
    wait_until(lambda: len(records(sub)) == 3 and sync.status()["unsent"] == 0, what="3 records sent")
    sub.publish(f"sitekeeper/{SITE}/ack", json.dumps({"seq": 50}))
    sub.publish(f"sitekeeper/{SITE}/ack", json.dumps({"seq": 2}))  # after the bad one: this one counts
    wait_until(lambda: sync.status()["last_ack_seq"] == 2, what="the good ack")
    assert sync.status()["backlog"] == 1, "seq 3 is still owed to the cloud"
    assert "refused an ack up to seq 50" in sync.log.read_text()
    sync.topups("04D00004", 1)  # seq 4 and 5 (its card, its top-up): none was done by the bad ack
    wait_until(lambda: len(records(sub)) == 5, what="the new records")
    assert sync.status()["backlog"] == 3


def test_seq_has_no_hole_after_repeated_stops_and_top_ups(tmp_path):
    """A repeated StopTransaction and a top-up sent twice with the same key each once burned a seq: the cloud
    waiting for the missing number would wait forever."""
    from edge.billing import owner
    from edge.billing import sessions as billing
    from edge.controller import observe
    from edge.ocpp import persist

    store = Store.open(str(tmp_path / "s.db"))
    billing.configure(billing.BillingSettings(currency="PHP", min_start_balance=0))

    def day(conn):
        cards.add_card(conn, "04AB0A0B", "commercial", name="T")
        for i in range(3):
            for _ in range(2):  # the same top-up twice (a retried CLI call, a re-sent command)
                owner.topup(conn, "04AB0A0B", 10_000, currency="PHP", key=f"k{i}")
            tx = vars(observe.start_op_16("CP", 10 + i, {"connectorId": 1, "idTag": "04AB0A0B", "meterStart": 0,
                                                         "timestamp": f"2026-03-01T1{i}:00:00Z"}, offline=False))
            billing.decide(conn, uid="04AB0A0B", charger_id="CP", version="1.6", kind="start", tx=tx)
            stop = {"transactionId": 10 + i, "meterStop": 1000, "timestamp": f"2026-03-01T1{i}:30:00Z"}
            for _ in range(3):  # the charger did not hear the answer: the same Stop again
                persist.apply(conn, observe.stop_ops_16("CP", stop))
    store.write_now(day)
    seqs = [r[0] for r in store.db.execute("SELECT seq FROM outbox ORDER BY seq").fetchall()]
    kinds = [r[0] for r in store.db.execute("SELECT kind FROM outbox ORDER BY seq").fetchall()]
    assert kinds.count("session") == 3 and seqs == list(range(1, len(seqs) + 1)), seqs
    store.close()


def test_commands_wait_at_the_broker_while_the_site_is_offline(broker, sync_factory):
    sync = sync_factory(broker)
    sync.topups("04E00001", 1, amount=1000)
    sync.start()
    wait_until(lambda: sync.status()["connected"], what="first connection (makes the persistent session)")
    sync.stop()
    cloud = broker.subscriber(None)
    cloud.publish(f"sitekeeper/{SITE}/cmd/topup", json.dumps({"id": "late-1", "uid": "04E00001",
                                                              "amount_minor": 700}))
    broker.restart()  # even across a broker restart
    sync.start()
    wait_until(lambda: sync.balance("04E00001") == 1700, what="the queued command applied")


def test_tls_with_a_test_ca(broker_factory, sync_factory):
    tls_broker = broker_factory(tls=True)
    sync = sync_factory(tls_broker, tls=True, ca_file=str(tls_broker.ca_file))
    sync.topups("04F00001", 2)
    sub = tls_broker.subscriber(f"sitekeeper/{SITE}/records/#")
    sync.start()
    wait_until(lambda: len(records(sub)) == 3, what="records over TLS")


def test_wrong_password_refused_and_reported(broker_factory, sync_factory):
    secured = broker_factory(users={"site": "right-pass"})
    sync = sync_factory(secured, username="site", password="wrong-pass")
    sync.topups("04F00002", 1)
    sync.start()
    wait_until(lambda: "refused" in sync.status()["last_error"], what="the refusal reported")
    st = sync.status()
    assert not st["connected"] and st["unsent"] == 2
    out = subprocess.run([SITEKEEPER, "--config", str(sync.config), "sync", "--status"], capture_output=True,
                         text=True, timeout=30).stdout
    assert "refused" in out and "2 not yet sent" in out


def test_no_broker_configured_stays_idle_and_says_so(sync_factory):
    sync = sync_factory(None)
    sync.topups("04F00003", 2)
    sync.start()
    wait_until(lambda: sync.status()["running"], what="running")
    st = sync.status()
    assert st["configured"] is False and st["unsent"] == 3 and "no [mqtt] host" in st["last_error"]
    assert os.path.exists(sync.db)


def test_sessions_and_charger_status_reach_the_cloud(broker, sync_factory):
    from edge.billing import sessions as billing
    from edge.controller import records
    from edge.controller.observe import start_op_16
    from edge.ocpp import persist

    sync = sync_factory(broker)
    billing.configure(billing.BillingSettings(currency="PHP"))

    def session(conn):
        persist.apply(conn, [
            records.ChargerBoot("CP-9", "1.6", "v", "m", None, None, "2026-03-01T10:00:00.000Z"),
            records.StatusSeen("CP-9", 0, 1, "Charging", "NoError", "2026-03-01T10:00:00.000Z"),
            start_op_16("CP-9", 41, {"connectorId": 1, "idTag": "ABCDEF01", "meterStart": 100,
                                     "timestamp": "2026-03-01T10:00:00Z"}, offline=False),
            records.TxStop("CP-9", "41", 2100, "2026-03-01T11:00:00Z", "Local"),
            records.CloseSession("CP-9", "41")])
    sync.write(session)
    sub = broker.subscriber(f"sitekeeper/{SITE}/#")
    sync.start()
    rec = json.loads(sub.wait_for(lambda m: m.topic.endswith("/records/session"), timeout=20).payload)
    assert (rec["session_id"], rec["charger_id"], rec["energy_wh"], rec["card_uid"]) == (41, "CP-9", 2000, "ABCDEF01")
    assert rec["started_at"] == "2026-03-01T10:00:00Z" and rec["key"] == "session:CP-9:41"
    status = sub.wait_for(lambda m: m.topic == f"sitekeeper/{SITE}/chargers/CP-9/status", timeout=20)
    assert json.loads(status.payload)["connectors"][0]["status"] == "Charging"
    late = broker.subscriber(f"sitekeeper/{SITE}/chargers/+/status")
    assert late.wait_for(timeout=10).retain, "retained for whoever subscribes later"


def test_tariff_command_prices_sessions_started_after_it(tmp_path):
    from cloud_sync import commands
    from edge.billing import sessions as billing
    from edge.billing.tariff import Tariff
    from edge.controller.observe import start_op_16
    from edge.store import ops

    store = Store.open(str(tmp_path / "t.db"))
    billing.configure(billing.BillingSettings(currency="PHP", min_start_balance=0,
                                              tariff=Tariff(per_kwh=Decimal(1000))))
    cmd = {"id": "tariff-1", "valid_from": "2026-03-01T12:00:00Z", "tariff": {"per_kwh": "30.00", "session_fee": "5.00"}}
    assert store.write_now(lambda c: commands.apply(c, "tariff", json.dumps(cmd).encode()))["ok"] is True

    def one(conn, tx_id: int, start: str, stop: str) -> int:
        cards.get_card(conn, "04AB0A0B") or cards.add_card(conn, "04AB0A0B", "commercial", name="T")
        card = cards.get_card(conn, "04AB0A0B")
        ledger.post(conn, card.account_id, "topup", 100_000, key=f"t{tx_id}", currency="PHP")
        tx = vars(start_op_16("CP", tx_id, {"connectorId": 1, "idTag": "04AB0A0B", "meterStart": 0,
                                            "timestamp": start}, offline=False))
        billing.decide(conn, uid="04AB0A0B", charger_id="CP", version="1.6", kind="start", tx=tx)
        ops.tx_stop(conn, {"charger_id": "CP", "tx_key": str(tx_id), "meter_stop": 1000, "stopped_at": stop,
                           "reason": "Local"})
        billing.close_session(conn, "CP", str(tx_id))
        return conn.execute("SELECT cost_minor FROM transactions WHERE id = ?", (tx_id,)).fetchone()[0]

    assert store.write_now(lambda c: one(c, 1, "2026-03-01T11:00:00Z", "2026-03-01T11:30:00Z")) == 1000
    assert store.write_now(lambda c: one(c, 2, "2026-03-01T12:30:00Z", "2026-03-01T13:00:00Z")) == 3500
    store.close()


def test_blocking_a_blocked_card_changes_nothing_from_any_face(tmp_path):
    """The cloud's `block` of a card already blocked (and the CLI's, and the web's: one library function)
    writes nothing: no new local-list version for every charger, no card record for the cloud."""
    from cloud_sync import commands
    from edge.billing import owner

    store = Store.open(str(tmp_path / "b.db"))
    try:
        store.write_now(lambda c: cards.add_card(c, "04B1B2B3", "commercial", name="B"))

        def block(conn, cmd_id: str) -> dict:
            return commands.apply(conn, "card", json.dumps({"id": cmd_id, "action": "block", "uid": "04B1B2B3"}).encode())

        def state(conn) -> tuple[int, int]:
            return cards.list_version(conn), conn.execute("SELECT count(*) FROM outbox WHERE kind = 'card'").fetchone()[0]

        before = store.write_now(state)
        assert store.write_now(lambda c: block(c, "blk-1"))["ok"] is True
        once = store.write_now(state)
        assert once == (before[0] + 1, before[1] + 1)
        assert store.write_now(lambda c: block(c, "blk-2"))["ok"] is True
        store.write_now(lambda c: owner.set_card_status(c, "04B1B2B3", "blocked"))
        assert store.write_now(state) == once
    finally:
        store.close()


@pytest.mark.parametrize("why", ["dns", "refused", "tls_to_plain", "plain_to_tls"])
def test_sync_says_why_it_cannot_connect(why, broker_factory, sync_factory):
    """`sitekeeper sync` once only said it was not connected: now the log and `sync --status` say where the way
    to the broker breaks (bad credentials: test_wrong_password_refused_and_reported)."""
    from conftest import free_port

    if why == "dns":
        sync, expected = sync_factory(None), "DNS: the name no-such-broker.invalid does not resolve"
        sync.config.write_text(sync.config.read_text() + '\n[mqtt]\nhost = "no-such-broker.invalid"\n')
    elif why == "refused":
        port = free_port()
        sync, expected = sync_factory(None), f"refused: nothing listens on 127.0.0.1:{port}"
        sync.config.write_text(sync.config.read_text() + f'\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\n')
    elif why == "tls_to_plain":
        sync, expected = sync_factory(broker_factory(), tls=True), "TLS:"
    else:
        tls_broker = broker_factory(tls=True)
        sync, expected = sync_factory(tls_broker), "answers but the MQTT connection failed (a TLS port?"
    sync.start()
    wait_until(lambda: expected in sync.status()["last_error"], what=expected)
    out = subprocess.run([SITEKEEPER, "--config", str(sync.config), "sync", "--status"], capture_output=True,
                         text=True, timeout=30).stdout
    assert expected in out and "running, not connected" in out
    wait_until(lambda: expected in sync.log.read_text(), what="the reason in the log")
    assert sync.log.read_text().count(expected) == 1, "said once, not at every retry"


def test_sync_status_says_not_running_as_soon_as_the_process_dies(broker, sync_factory):
    import time

    sync = sync_factory(broker)
    sync.start()
    wait_until(lambda: sync.status()["connected"], what="connected")
    sync.stop(signal.SIGKILL)
    began = time.monotonic()
    st = sync.status()
    assert st["running"] is False and st["connected"] is False, st
    assert time.monotonic() - began < 5
    out = subprocess.run([SITEKEEPER, "--config", str(sync.config), "sync", "--status"], capture_output=True,
                         text=True, timeout=30).stdout
    assert "not running" in out
