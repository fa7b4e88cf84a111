"""The pay QR code and the price on the chargers' own displays: once `pay.public_url` is set (the address phones
reach), each connected 2.0.1 charger is sent, once per boot, SetDisplayMessage with its EVSEs' pay addresses (format URI, which a display shows as a QR code) and the
tariff in the site's currency (UTF8). A charger whose device model says it has no display messages
(`DisplayMessageCtrlr.Available` or `.Enabled` false) is left alone; one that refuses a URI is sent the
address as text; one that does not know the message is not asked again until it boots again. OCPP 1.6 has no
display messages. Runs in the web process, beside the pay desk's sweep (through `edge.operations.calls`,
recorded as operations by "pay")."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from edge import i18n
from edge.billing import owner
from edge.billing import sessions as billing
from edge.billing.price_text import tariff_lines
from edge.operations import calls
from edge.operations.intents import display_message
from edge.web import stickers

log = logging.getLogger(__name__)

PRICE_ID, QR_ID = 9000, 9000  # message ids: the price; the QR of EVSE n is QR_ID + n


class Displays:
    def __init__(self, edge: Any):
        self.edge = edge
        self.sent: dict[str, str | None] = {}  # charger → the boot it was sent for

    def _due(self) -> list[tuple[str, str | None, list[int]]]:
        if not self.edge.cfg.pay.public_url:
            return []  # no address phones reach is set: a QR of the Pi's own would help nobody
        conn = self.edge.store.db.conn
        out = []
        for charger, boot in conn.execute("SELECT id, last_boot FROM chargers WHERE connected = 1 AND"
                                          " ocpp_version LIKE '2.0%' AND registration IS NOT 'pending'"):
            if charger in self.sent and self.sent[charger] == boot:
                continue
            off = conn.execute("SELECT 1 FROM device_model WHERE charger_id = ? AND attribute = 'Actual' AND key IN"
                               " ('DisplayMessageCtrlr.Available', 'DisplayMessageCtrlr.Enabled')"
                               " AND lower(value) = 'false'", (charger,)).fetchone()
            if off is not None:
                self.sent[charger] = boot
                continue
            evses = sorted({r[0] for r in conn.execute(
                "SELECT evse_id FROM connector_status WHERE charger_id = ? AND evse_id > 0", (charger,))}) or [1]
            out.append((charger, boot, evses))
        return out

    def _price(self) -> str:
        spec = owner.tariffs(self.edge.store.db.conn, billing.SETTINGS.tariff,
                             billing.SETTINGS.exponent)["in_force"]["tariff"]
        t = i18n.translator("en", "driver")
        return "Scan the QR code to pay by phone. " + " · ".join(tariff_lines(spec, t, billing.SETTINGS.currency))

    async def _send(self, charger: str, message_id: int, content: str, fmt: str) -> str:
        action, payload = display_message("2.0.1", message_id, content, fmt)
        outcome = await calls.run(self.edge.chargers, self.edge.store, charger, action, payload, who="pay",
                                  timeout=15)
        if outcome.status == "answered":
            return str((outcome.response or {}).get("status"))
        return (outcome.error or {}).get("code") or outcome.status

    async def tick(self) -> None:
        """Send to every charger due (connected 2.0.1, not yet sent since its last boot)."""
        for charger, boot, evses in self._due():
            said = await self._send(charger, PRICE_ID, self._price(), "UTF8")
            if said in ("NotImplemented", "NotSupported", "not_connected", "timeout"):
                if said != "not_connected":
                    self.sent[charger] = boot  # no display messages here: not asked again until it boots
                log.info("pay: %s shows no display messages (%s)", charger, said)
                continue
            for evse in evses:
                url = stickers.pay_url(self.edge.cfg, charger, evse)
                if await self._send(charger, QR_ID + evse, url, "URI") == "NotSupportedMessageFormat":
                    await self._send(charger, QR_ID + evse, f"Pay: {url}", "UTF8")
            self.sent[charger] = boot
            log.info("pay: %s shows the pay QR and the price on its display (%s)", charger, said)

    async def run(self, every: float = 5.0) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.tick()
            await asyncio.sleep(every)
