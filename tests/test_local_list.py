"""The chargers' local authorization lists follow the site's cards (SendLocalList, full and differential)."""

from __future__ import annotations

import asyncio
import json

from conftest import wait_for
from ocpp.routing import on
from ocpp.v16 import ChargePoint as CP16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as CP201
from ocpp.v201 import call_result as result201
from peers import Charger

from edge.billing import cards, owner
from edge.store.sqlite import Store


class ListCharger16(CP16):
    """A 1.6 charger that keeps a local list the way the spec says."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.list_version = 0
        self.entries: dict[str, str | None] = {}
        self.updates: list[str] = []

    @on("GetLocalListVersion")
    def get_version(self):
        return result16.GetLocalListVersion(list_version=self.list_version)

    @on("SendLocalList")
    def send_list(self, list_version, update_type, local_authorization_list=()):
        if update_type == "Differential" and list_version <= self.list_version:
            return result16.SendLocalList(status="VersionMismatch")
        if update_type == "Full":
            self.entries = {}
        for entry in local_authorization_list:
            info = entry.get("id_tag_info")
            if info is None:
                self.entries.pop(entry["id_tag"], None)
            else:
                self.entries[entry["id_tag"]] = info["status"]
        self.list_version = list_version
        self.updates.append(update_type)
        return result16.SendLocalList(status="Accepted")


class ListCharger201(CP201):
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.version_number = 0
        self.entries: dict[str, str] = {}

    @on("GetLocalListVersion")
    def get_version(self):
        return result201.GetLocalListVersion(version_number=self.version_number)

    @on("SendLocalList")
    def send_list(self, version_number, update_type, local_authorization_list=()):
        if update_type == "Full":
            self.entries = {}
        for entry in local_authorization_list:
            self.entries[entry["id_token"]["id_token"]] = entry["id_token_info"]["status"]
        self.version_number = version_number
        return result201.SendLocalList(status="Accepted")


def change(edge, fn):
    store = Store.open(edge.db_path)
    try:
        return store.write_now(fn)
    finally:
        store.close()


async def test_full_list_on_connect_then_differentials(edge_factory):
    edge = edge_factory()
    change(edge, lambda c: cards.add_card(c, "04000001", "commercial", name="A"))
    change(edge, lambda c: cards.add_card(c, "04000002", "personal", name="B", chargers=["ELSEWHERE"]))
    ch = await Charger(edge.url, "LL1", "1.6", cp_class=ListCharger16).connect()
    try:
        cp = ch.cp
        await wait_for(lambda: cp.list_version == 2)
        assert cp.entries == {"04000001": "Accepted"}, "a card limited to other chargers is left out"
        assert cp.updates == ["Full"]
        change(edge, lambda c: cards.add_card(c, "04000003", "personal", name="C"))
        await wait_for(lambda: cp.list_version == 3)
        change(edge, lambda c: cards.update_card(c, "04000001", status="blocked"))
        await wait_for(lambda: cp.list_version == 4)
        assert cp.entries == {"04000001": "Blocked", "04000003": "Accepted"}
        assert cp.updates == ["Full", "Differential", "Differential"]
    finally:
        await ch.close()
    # reconnecting at the same version sends nothing new
    ch = await Charger(edge.url, "LL1", "1.6", cp_class=ListCharger16).connect()
    try:
        ch.cp.list_version = 4
        ch.cp.entries = {"04000001": "Blocked", "04000003": "Accepted"}
        await asyncio.sleep(2.5)
        assert ch.cp.updates == []
    finally:
        await ch.close()


async def test_201_list_and_chargers_without_lists(edge_factory):
    edge = edge_factory()
    change(edge, lambda c: cards.add_card(c, "04000011", "commercial", name="A"))
    ch = await Charger(edge.url, "LL2", "2.0.1", cp_class=ListCharger201).connect()
    plain = await Charger(edge.url, "LL3", "1.6").connect()  # answers NotImplemented: left alone
    try:
        await wait_for(lambda: ch.cp.version_number == 1)
        assert ch.cp.entries == {"04000011": "Accepted"}
        await plain.boot16()
        await asyncio.sleep(1.5)
        assert sum('"GetLocalListVersion"' in t for t in plain.received) == 1
        assert not any('"SendLocalList"' in t for t in plain.received)
    finally:
        await ch.close()
        await plain.close()


async def test_a_card_with_a_validity_end_carries_it_and_an_expired_one_is_listed_expired(edge_factory):
    edge = edge_factory()
    change(edge, lambda c: cards.add_card(c, "04000021", "commercial", name="A", expires="2099-06-30T15:59:59Z"))
    change(edge, lambda c: cards.add_card(c, "04000022", "commercial", name="B", expires="2020-01-01T00:00:00Z"))
    ch = await Charger(edge.url, "LL4", "1.6", cp_class=ListCharger16).connect()
    try:
        await wait_for(lambda: ch.cp.list_version == 2)
        assert ch.cp.entries == {"04000021": "Accepted", "04000022": "Expired"}
        sent = json.loads(next(t for t in ch.received if '"SendLocalList"' in t))[3]["localAuthorizationList"]
        assert {e["idTag"]: e["idTagInfo"] for e in sent} == {
            "04000021": {"status": "Accepted", "expiryDate": "2099-06-30T15:59:59Z", "parentIdTag": "SK-A1"},
            "04000022": {"status": "Expired", "expiryDate": "2020-01-01T00:00:00Z"}}
        change(edge, lambda c: cards.update_card(c, "04000022", expires=None))  # renewed: no end
        await wait_for(lambda: ch.cp.list_version == 3)
        assert ch.cp.entries["04000022"] == "Accepted"
    finally:
        await ch.close()


async def test_lists_carry_each_users_group_and_the_master_pass_only_where_the_charger_knows_it(edge_factory):
    """Two cards of one user share a group in both lists (another card of the user stops a session with no
    call to the edge); a master pass is in a 2.0.1 list with the master pass group, and left out of a 1.6 list
    (a 1.6 charger has no master pass: it must ask the edge, which lends it the group of the session there).
    Making a user's cards master passes later takes them out of a 1.6 list by a differential update."""
    edge = edge_factory()

    def two_cards(c):
        a = cards.add_card(c, "04000031", "commercial", name="A")
        cards.add_card(c, "04000032", "personal", account_id=a.account_id)
        master = cards.add_card(c, "04000033", "personal", name="Attendant")
        owner.set_master_pass(c, master.account_id, True)
        return cards.group_of(a.account_id)
    group = change(edge, two_cards)
    old16 = await Charger(edge.url, "LL5", "1.6", cp_class=ListCharger16).connect()
    new201 = await Charger(edge.url, "LL6", "2.0.1", cp_class=ListCharger201).connect()
    try:
        ((version,),) = edge.query("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'local_list_version'")
        await wait_for(lambda: old16.cp.list_version == version and new201.cp.version_number == version)
        sent16 = json.loads(next(t for t in old16.received if '"SendLocalList"' in t))[3]["localAuthorizationList"]
        assert {e["idTag"]: e["idTagInfo"] for e in sent16} == {
            "04000031": {"status": "Accepted", "parentIdTag": group},
            "04000032": {"status": "Accepted", "parentIdTag": group}}
        sent201 = json.loads(next(t for t in new201.received if '"SendLocalList"' in t))[3]["localAuthorizationList"]
        assert {e["idToken"]["idToken"]: e["idTokenInfo"].get("groupIdToken", {}).get("idToken") for e in sent201} == {
            "04000031": group, "04000032": group, "04000033": cards.MASTER_GROUP}
        change(edge, lambda c: owner.set_master_pass(c, cards.get_card(c, "04000031").account_id, True))
        await wait_for(lambda: "04000031" not in old16.cp.entries)
        assert old16.cp.entries == {} and old16.cp.updates[-1] == "Differential"
    finally:
        await old16.close()
        await new201.close()
