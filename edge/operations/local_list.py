"""The chargers' local authorization lists, kept in step with the site's cards (SendLocalList).

With the cards in a charger's own list, it can let drivers start while the edge itself restarts. On connect
the edge asks the charger's list version (GetLocalListVersion) and sends a Full list if it differs; when cards
change (any process: CLI, cloud_sync), the daemon notices the new version and sends a Differential with the
cards changed since, or a Full list if the charger reports a version mismatch.

Entries: an active card the charger may use → Accepted; blocked / lost card or blocked account → Blocked; past
its validity end → Expired; a card with a validity end carries it (1.6 expiryDate, 2.0.1 cacheExpiryDateTime:
the charger refuses it after that by itself), and every card its user's group (1.6 parentIdTag, 2.0.1
groupIdToken: another card of the same user stops a session); a personal card limited to other chargers →
removed (no idTagInfo); a master pass is in a 2.0.1 list only (a 1.6 charger must ask: `edge.billing.groups`). A commercial card's balance is not in the
list: the hold is taken when the start reaches the edge.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from edge.billing import cards
from edge.controller.answers import card_info
from edge.operations.chargers import Charger

log = logging.getLogger(__name__)


def entries(conn: sqlite3.Connection, charger_id: str, version: str, since: int = 0) -> list[dict]:
    """The list entries for `charger_id` of the cards changed after list version `since` (0: all)."""
    out = []
    for card in cards.changed_since(conn, since):
        uid, status, chargers, blocked = card.uid, card.status, card.chargers, card.account_blocked
        allowed = chargers is None or charger_id in chargers
        state = None if not allowed else "Blocked" if status != "active" or blocked else \
            "Expired" if card.expired() else "Accepted"
        if state is None and since == 0:
            continue  # a full list simply leaves it out
        if version == "1.6":
            if card.master:  # a 1.6 charger has no master pass: it must ask the edge (edge.billing.groups)
                state = None
                if since == 0:
                    continue
            entry: dict = {"idTag": uid}
            if state:
                entry["idTagInfo"] = card_info(version, state, card.expires, card.group)
        else:
            entry = {"idToken": {"idToken": uid, "type": "ISO14443"}}
            if state:
                entry["idTokenInfo"] = card_info(version, state, card.expires, card.group)
        out.append(entry)
    return out


class ListWatch:
    """The site's card-list version (every card change moves it, whichever process made it: the CLI,
    cloud_sync, the web), `on_change(conn)` run when it moves, and `wait_changed()` for whoever follows it.
    `refresh` is cheap (one row): the daemon calls it every few seconds, the OCPP shell before a frame that
    names a card."""

    def __init__(self, conn: sqlite3.Connection, on_change: Callable[[sqlite3.Connection], Any] | None = None):
        self.version = cards.list_version(conn)
        self.on_change = on_change
        self._changed = asyncio.Event()
        if on_change is not None:
            on_change(conn)

    def refresh(self, conn: sqlite3.Connection) -> None:
        version = cards.list_version(conn)
        if version != self.version:
            self.version = version
            if self.on_change is not None:
                self.on_change(conn)
            self._changed.set()
            self._changed = asyncio.Event()

    async def wait_changed(self) -> None:
        await self._changed.wait()


def _send_payload(version: str, list_version: int, update: str, items: list[dict]) -> dict:
    if version == "1.6":
        return {"listVersion": list_version, "updateType": update, "localAuthorizationList": items}
    payload: dict = {"versionNumber": list_version, "updateType": update}
    if items:
        payload["localAuthorizationList"] = items
    return payload


async def tell_master_group(session: Charger, db: sqlite3.Connection) -> bool:
    """Tell a 2.0.1 charger the master pass group (AuthCtrlr.MasterPassGroupId, C16) once the site has a
    master pass: True when that is done (or nothing is to be told: a 1.6 charger has no such setting)."""
    if session.version == "1.6":
        return True
    if db.execute("SELECT 1 FROM accounts WHERE master_pass = 1 LIMIT 1").fetchone() is None:
        return False
    try:
        answer = await session.call("SetVariables", {"setVariableData": [{
            "component": {"name": "AuthCtrlr"}, "variable": {"name": "MasterPassGroupId"},
            "attributeValue": cards.MASTER_GROUP}]})
    except (RuntimeError, TimeoutError, ConnectionError) as e:
        log.info("charger %s: master pass group not set (%s)", session.charger_id, e)
        return True
    status = ((answer.get("setVariableResult") or [{}])[0]).get("attributeStatus")
    log.info("charger %s: master pass group %s: %s", session.charger_id, cards.MASTER_GROUP, status)
    return True


async def follow(session: Any, db: sqlite3.Connection, lists: ListWatch) -> None:
    """Keep a connected charger's local list at the site's version for as long as it stays, from when the site
    has accepted it (the site's cards go to the site's chargers only), and tell it the master pass group."""
    await asyncio.sleep(1.0)  # after the charger's BootNotification
    while session.link is None or not session.link.accepted:
        await asyncio.sleep(1.0)
    known: int | None = None
    first, told = True, False
    while True:
        told = told or await tell_master_group(session, db)
        if first or known != lists.version:
            known = await sync(session, db, None if first else known)
            first = False
            if known is None:
                return  # the charger has no local list
        await lists.wait_changed()


async def sync(session: Charger, db: sqlite3.Connection, known_version: int | None) -> int | None:
    """Bring the charger's list to the site's version (the cards read on `db`); return the charger's version
    after (None if the charger does not support local lists)."""
    target = cards.list_version(db)
    if target == 0:
        return known_version  # no cards yet
    try:
        if known_version is None:
            answer = await session.call("GetLocalListVersion", {})
            known_version = int(answer.get("listVersion", answer.get("versionNumber", -1)))
        if known_version == target:
            return known_version
        update = "Differential" if 0 < known_version < target else "Full"
        items = entries(db, session.charger_id, session.version, known_version if update == "Differential" else 0)
        answer = await session.call("SendLocalList", _send_payload(session.version, target, update, items))
        if answer.get("status") == "VersionMismatch" and update == "Differential":
            items = entries(db, session.charger_id, session.version, 0)
            answer = await session.call("SendLocalList", _send_payload(session.version, target, "Full", items))
        if answer.get("status") != "Accepted":
            log.info("charger %s did not take the local list: %s", session.charger_id, answer.get("status"))
            return None if answer.get("status") == "NotSupported" else known_version
        log.info("charger %s local list now version %d (%s, %d entries)", session.charger_id, target, update,
                 len(items))
        return target
    except (RuntimeError, TimeoutError, ConnectionError) as e:
        log.info("charger %s: no local list (%s)", session.charger_id, e)
        return None
