"""What a tap does, and the list of unknown cards for enrolment by tap.

A reader with a `connector` ("CP-1:1") is that connector's card reader: a tap of an allowed card starts
charging there (RemoteStartTransaction / RequestStartTransaction; the charger's start then goes through the
same authorization and hold as any start), a tap of the card of the session running there stops it, and a
refused card is told why. A reader without a connector (the kiosk's) publishes the tap on the live event
stream with the card's kind, masked UID, holder and available balance, or `unknown`.

Every outcome is published on the event stream and shown on the GPIO feedback (`edge.gpio`).
Unknown UIDs are kept (the newest 50, for a day) so that `sitekeeper cards add --last-tap` can enrol one.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from edge.billing import cards, ledger
from edge.billing import sessions as billing
from edge.clock import now_iso
from edge.rfid import Tap
from edge.store.journal import mask_uid

if TYPE_CHECKING:
    from edge.daemon import Edge

log = logging.getLogger(__name__)
KEEP_UNKNOWN = 50


# -- unknown cards (enrol by tap) ------------------------------------------------------------------------
def record_unknown(conn: sqlite3.Connection, uid: str, reader: str) -> None:
    conn.execute("INSERT INTO unknown_taps (uid, reader, at) VALUES (?, ?, ?)", (uid, reader, now_iso()))
    conn.execute("DELETE FROM unknown_taps WHERE id <= (SELECT id FROM unknown_taps ORDER BY id DESC"
                 " LIMIT 1 OFFSET ?)", (KEEP_UNKNOWN,))


def unknown(conn: sqlite3.Connection, limit: int = 20) -> list[dict]:
    """Unknown cards tapped recently, newest first, one row per card (its latest tap)."""
    cur = conn.execute(
        "SELECT uid, reader, max(at) AS at, count(*) AS taps FROM unknown_taps"
        " WHERE uid NOT IN (SELECT uid FROM cards) GROUP BY uid ORDER BY max(id) DESC LIMIT ?", (limit,))
    return [dict(zip([d[0] for d in cur.description], row, strict=True)) for row in cur.fetchall()]


def last_unknown(conn: sqlite3.Connection) -> dict | None:
    rows = unknown(conn, 1)
    return rows[0] if rows else None


# -- the tap service ---------------------------------------------------------------------------------------
def _connector(text: str) -> tuple[str, int]:
    charger, _, number = text.rpartition(":")
    return charger, int(number)


class TapService:
    """Turns taps from any reader into decisions (one at a time per reader)."""

    def __init__(self, edge: Edge):
        self.edge = edge
        self._remote_ids = int(time.time()) % 1_000_000

    def _card_info(self, conn: sqlite3.Connection, card: cards.Card) -> dict:
        info: dict[str, Any] = {"known": True, "uid_masked": mask_uid(card.uid), "kind": card.kind,
                                "name": card.name, "status": card.status,
                                "currency": billing.SETTINGS.currency}
        if card.kind == "commercial":
            info["available_minor"] = ledger.available(conn, card.account_id)
        return info

    async def handle(self, tap: Tap) -> dict:
        """Decide, act, publish and give feedback; return the published event."""
        edge = self.edge
        rc = edge.cfg.reader.get(tap.reader)
        conn = edge.store.db.conn
        card = cards.get_card(conn, tap.uid)
        event: dict[str, Any] = {"type": "tap", "reader": tap.reader}
        if card is None:
            await edge.store.write(lambda c: record_unknown(c, tap.uid, tap.reader))
            event.update(known=False, uid_masked=mask_uid(tap.uid), result="unknown",
                         message="card not registered")
        elif rc is None or not rc.connector:
            event.update(self._card_info(conn, card))
            status, reason = billing.check(conn, card, charger_id="", version="2.0.1") \
                if card.kind == "commercial" else (("Accepted", "") if card.status == "active"
                                                   else ("Blocked", f"card is {card.status}"))
            event.update(result="accepted" if status in ("Accepted", "ConcurrentTx") else "refused",
                         status=status, message=reason)
        else:
            event.update(self._card_info(conn, card), connector=rc.connector)
            event.update(await self._at_connector(conn, card, *_connector(rc.connector)))
        published = edge.events.publish(event)
        if event["result"] in ("starting", "stopping", "accepted"):
            edge.feedback.accepted()
            if event["result"] == "starting":
                edge.feedback.relay_pulse()  # a door or contactor, where one is wired
        else:
            edge.feedback.refused()
        log.info("tap %s on %s: %s %s", mask_uid(tap.uid), tap.reader, event["result"], event.get("message", ""))
        return published

    async def _at_connector(self, conn: sqlite3.Connection, card: cards.Card, charger_id: str,
                            connector: int) -> dict:
        session = self.edge.chargers.sessions.get(charger_id)
        if session is None:
            return {"result": "refused", "message": f"charger {charger_id} is not connected"}
        running = conn.execute(
            "SELECT id, tx_key, charger_id FROM transactions WHERE id_tag = ? AND stopped_at IS NULL"
            " ORDER BY id DESC LIMIT 1", (card.uid,)).fetchone()
        if running is not None and running[2] == charger_id:
            return await self._stop(session, running[0], running[1])
        status, reason = billing.check(conn, card, charger_id=charger_id, version=session.version)
        if status != "Accepted":
            return {"result": "refused", "status": status, "message": reason}
        return await self._start(session, card.uid, connector)

    async def _start(self, session: Any, uid: str, connector: int) -> dict:
        if session.version == "1.6":
            action, payload = "RemoteStartTransaction", {"connectorId": connector, "idTag": uid}
        else:
            self._remote_ids += 1
            action, payload = "RequestStartTransaction", {
                "idToken": {"idToken": uid, "type": "ISO14443"}, "evseId": connector,
                "remoteStartId": self._remote_ids}
        try:
            answer = await session.call(action, payload, timeout=15)
        except (RuntimeError, TimeoutError, ConnectionError) as e:
            return {"result": "refused", "message": f"charger did not start: {e}"}
        if answer.get("status") != "Accepted":
            return {"result": "refused", "message": f"charger answered {answer.get('status')}"}
        return {"result": "starting", "status": "Accepted", "message": "plug in to charge"}

    async def _stop(self, session: Any, tx_id: int, tx_key: str) -> dict:
        if session.version == "1.6":
            action, payload = "RemoteStopTransaction", {"transactionId": tx_id}
        else:
            action, payload = "RequestStopTransaction", {"transactionId": tx_key}
        try:
            answer = await session.call(action, payload, timeout=15)
        except (RuntimeError, TimeoutError, ConnectionError) as e:
            return {"result": "refused", "message": f"charger did not stop: {e}"}
        if answer.get("status") != "Accepted":
            return {"result": "refused", "message": f"charger answered {answer.get('status')}"}
        return {"result": "stopping", "status": "Accepted", "message": "session ending"}
