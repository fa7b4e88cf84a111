"""What a tap does.

A reader with a `connector` ("CP-1:1") is that connector's card reader: a tap of an allowed card starts
charging there (RemoteStartTransaction / RequestStartTransaction; the charger's start then goes through the
same authorization and hold as any start), a tap of the card of the session running there stops it, and a
refused card is told why. A reader without a connector (the kiosk's) publishes the tap on the live event
stream with the card's kind, masked UID, holder, available balance and running session, or `unknown`, and a
`tap_ref`: for two minutes the kiosk may start (`start_for`) or stop (`stop_for`) that card's charging with it,
without ever seeing the card's whole UID.

Every outcome is published on the event stream and shown on the GPIO feedback (`edge.gpio`).
Unknown UIDs are kept (`edge.billing.cards.record_unknown`) so that `sitekeeper cards add --last-tap` can
enrol one.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import time
from typing import Any

from edge.billing import cards, ledger
from edge.billing import sessions as billing
from edge.config import ReaderConfig
from edge.events import EventBus
from edge.gpio import Feedback
from edge.money import format_money
from edge.operations.chargers import Charger, Chargers
from edge.operations.intents import remote_start, remote_stop
from edge.rfid import Tap
from edge.store.journal import mask_uid
from edge.store.sqlite import Store

log = logging.getLogger(__name__)

TAP_KEPT = 120.0  # seconds a kiosk tap may be acted on


# -- the tap service ---------------------------------------------------------------------------------------
def _reason(card: cards.Card, status: str) -> str:
    """Why a card may not start, as a word a screen can put in plain words."""
    if status in ("Accepted", "ConcurrentTx"):
        return ""
    if card.status != "active" or card.account_blocked:
        return "blocked"
    if status == "Expired":
        return "expired"
    if status in ("NoCredit", "Blocked"):
        return "low_balance"
    return "not_here"


def _connector(text: str) -> tuple[str, int]:
    charger, _, number = text.rpartition(":")
    return charger, int(number)


class TapService:
    """Turns taps from any reader into decisions (one at a time per reader)."""

    def __init__(self, readers: dict[str, ReaderConfig], store: Store, chargers: Chargers, events: EventBus,
                 feedback: Feedback):
        self.readers, self.store, self.chargers, self.events, self.feedback = readers, store, chargers, events, \
            feedback
        self._remote_ids = int(time.time()) % 1_000_000
        self._kiosk_taps: dict[str, tuple[str, float]] = {}  # tap_ref → (uid, monotonic time)

    def _card_info(self, conn: sqlite3.Connection, card: cards.Card) -> dict:
        info: dict[str, Any] = {"known": True, "uid_masked": mask_uid(card.uid), "kind": card.kind,
                                "name": card.name, "status": card.status,
                                "currency": billing.SETTINGS.currency}
        if card.kind == "commercial":
            info["available_minor"] = ledger.available(conn, card.account_id)
            info["available"] = format_money(info["available_minor"], billing.SETTINGS.exponent,
                                             billing.SETTINGS.currency)
        running = billing.running_session_of(conn, card.uid)
        if running is not None:
            info["running"] = {"charger_id": running["charger_id"], "connector_id": running["connector_id"]}
        return info

    async def handle(self, tap: Tap) -> dict:
        """Decide, act, publish and give feedback; return the published event."""
        rc = self.readers.get(tap.reader)
        conn = self.store.db.conn
        card = cards.get_card(conn, tap.uid)
        event: dict[str, Any] = {"type": "tap", "reader": tap.reader}
        if card is None:
            await self.store.write(lambda c: cards.record_unknown(c, tap.uid, tap.reader))
            event.update(known=False, uid_masked=mask_uid(tap.uid), result="unknown",
                         message="card not registered")
        elif rc is None or not rc.connector:
            event.update(self._card_info(conn, card))
            status, reason = billing.check(conn, card, charger_id="", version="2.0.1") \
                if card.kind == "commercial" else ("Blocked", f"card is {card.status}") if card.status != "active" \
                else ("Expired", f"card expired at {card.expires}") if card.expired() else ("Accepted", "")
            event.update(result="accepted" if status in ("Accepted", "ConcurrentTx") else "refused",
                         status=status, message=reason, reason=_reason(card, status), tap_ref=self._remember(tap.uid))
        else:
            event.update(self._card_info(conn, card), connector=rc.connector)
            event.update(await self._at_connector(conn, card, *_connector(rc.connector)))
        published = self.events.publish(event)
        if event["result"] in ("starting", "stopping", "accepted"):
            self.feedback.accepted()
            if event["result"] == "starting":
                self.feedback.relay_pulse()  # a door or contactor, where one is wired
        else:
            self.feedback.refused()
        log.info("tap %s on %s: %s %s", mask_uid(tap.uid), tap.reader, event["result"], event.get("message", ""))
        return published

    def _remember(self, uid: str) -> str:
        now = time.monotonic()
        for ref in [r for r, (_, at) in self._kiosk_taps.items() if now - at > TAP_KEPT]:
            del self._kiosk_taps[ref]
        ref = secrets.token_urlsafe(12)
        self._kiosk_taps[ref] = (uid, now)
        return ref

    def _tapped(self, tap_ref: str) -> str | None:
        kept = self._kiosk_taps.get(tap_ref)
        return kept[0] if kept is not None and time.monotonic() - kept[1] <= TAP_KEPT else None

    async def start_for(self, tap_ref: str, charger_id: str, connector: int) -> dict:
        """The kiosk's driver chose a connector after tapping: start there (the same checks as a tap at it)."""
        uid = self._tapped(tap_ref)
        if uid is None:
            return {"result": "refused", "reason": "tap_again", "message": "tap the card again"}
        conn = self.store.db.conn
        card = cards.get_card(conn, uid)
        session = self.chargers.connected(charger_id)
        if card is None or session is None:
            log.info("kiosk: start on %s:%d refused: %s", charger_id, connector,
                     "the charger is not connected" if card else "the card is gone")
            return {"result": "refused", "reason": "offline" if card else "unknown",
                    "message": f"charger {charger_id} is not connected" if card else "card not registered"}
        status, reason = billing.check(conn, card, charger_id=charger_id, version=session.version)
        if status != "Accepted":
            log.info("kiosk: start on %s:%d for %s refused: %s", charger_id, connector, mask_uid(uid), reason)
            return {"result": "refused", "status": status, "message": reason}
        out = await self._start(session, card.uid, connector)
        log.info("kiosk: start on %s:%d for %s: %s", charger_id, connector, mask_uid(uid), out["result"])
        return out

    async def stop_for(self, tap_ref: str, charger_id: str, connector: int) -> dict:
        """The kiosk's driver tapped to stop: only the card of the session on that connector stops it."""
        uid = self._tapped(tap_ref)
        if uid is None:
            return {"result": "refused", "reason": "tap_again", "message": "tap the card again"}
        running = billing.running_session_of(self.store.db.conn, uid)
        session = self.chargers.connected(charger_id)
        if running is None or running["charger_id"] != charger_id or running["connector_id"] not in (connector, None):
            return {"result": "refused", "reason": "not_yours", "message": "this card is not charging here"}
        if session is None:
            return {"result": "refused", "reason": "offline", "message": f"charger {charger_id} is not connected"}
        out = await self._stop(session, running["id"], running["tx_key"])
        log.info("kiosk: stop on %s:%d for %s: %s", charger_id, connector, mask_uid(uid), out["result"])
        return out

    async def _at_connector(self, conn: sqlite3.Connection, card: cards.Card, charger_id: str,
                            connector: int) -> dict:
        session = self.chargers.connected(charger_id)
        if session is None:
            return {"result": "refused", "message": f"charger {charger_id} is not connected"}
        running = billing.running_session_of(conn, card.uid)
        if running is not None and running["charger_id"] == charger_id:
            return await self._stop(session, running["id"], running["tx_key"])
        status, reason = billing.check(conn, card, charger_id=charger_id, version=session.version)
        if status != "Accepted":
            return {"result": "refused", "status": status, "message": reason}
        return await self._start(session, card.uid, connector)

    async def _start(self, session: Charger, uid: str, connector: int) -> dict:
        self._remote_ids += 1
        action, payload = remote_start(session.version, connector, uid, self._remote_ids)
        try:
            answer = await session.call(action, payload, timeout=15)
        except (RuntimeError, TimeoutError, ConnectionError) as e:
            return {"result": "refused", "message": f"charger did not start: {e}"}
        if answer.get("status") != "Accepted":
            return {"result": "refused", "message": f"charger answered {answer.get('status')}"}
        return {"result": "starting", "status": "Accepted", "message": "plug in to charge"}

    async def _stop(self, session: Charger, tx_id: int, tx_key: str) -> dict:
        action, payload = remote_stop(session.version, tx_id, tx_key)
        try:
            answer = await session.call(action, payload, timeout=15)
        except (RuntimeError, TimeoutError, ConnectionError) as e:
            return {"result": "refused", "message": f"charger did not stop: {e}"}
        if answer.get("status") != "Accepted":
            return {"result": "refused", "message": f"charger answered {answer.get('status')}"}
        return {"result": "stopping", "status": "Accepted", "message": "session ending"}
