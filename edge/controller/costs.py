"""Telling a charger what charging costs, for its display, when the edge answers it (standalone, or proxy while
upstream is away) and the charger is set to hear it (`LinkSettings.cost_messages`).

- 1.6, the OCA's California pricing messages (DataTransfer, vendorId `org.openchargealliance.costmsg`):
  `SetUserPrice` when a priced card is accepted (the tariff, priceText in the display's language and
  priceTextExtra in the others), `RunningCost` while charging (the cost so far at the latest meter value), and
  `FinalCost` once the session is billed (sent by the shell, which reads the billed cost: `final_cost`).
- 2.0.1: the tariff as the AuthorizeResponse's `personalMessage` (I01), `CostUpdated` while charging (I02),
  and `totalCost` in the answer to the Ended event (I03, `answers.with_total_cost`).

A running cost is told only when it has changed. A mixin of `ChargerLink`, like the billing part.
"""

from __future__ import annotations

import json

from edge.clock import now_iso
from edge.controller.actions import LIVE, Action, Decision, Running
from edge.controller.wire import Call

VENDOR = "org.openchargealliance.costmsg"
MESSAGE_MAX = 512  # 2.0.1 MessageContentType.content


def _texts(texts: tuple[tuple[str, str], ...]) -> dict:
    """priceText (the display's language) and priceTextExtra (the others)."""
    out: dict = {"priceText": texts[0][1]}
    if len(texts) > 1:
        out["priceTextExtra"] = [{"format": "UTF8", "language": lang, "content": text} for lang, text in texts[1:]]
    return out


def _data_transfer(message_id: str, data: dict) -> dict:
    return {"vendorId": VENDOR, "messageId": message_id, "data": json.dumps(data, ensure_ascii=False)}


def personal_message(texts: tuple[tuple[str, str], ...]) -> dict:
    """2.0.1 MessageContentType: the text in the display's language."""
    return {"format": "UTF8", "language": texts[0][0], "content": texts[0][1][:MESSAGE_MAX]}


def user_price(id_tag: str, texts: tuple[tuple[str, str], ...]) -> dict:
    return _data_transfer("SetUserPrice", {"idToken": id_tag, **_texts(texts)})


def running_cost(version: str, tx_key: str, cost: float, meter_wh: int | None, now: float) -> tuple[str, dict]:
    if version != "1.6":
        return "CostUpdated", {"totalCost": cost, "transactionId": tx_key}
    data = {"transactionId": int(tx_key), "timestamp": now_iso(now), "meterValue": meter_wh or 0, "cost": cost,
            "state": "Charging"}
    return "DataTransfer", _data_transfer("RunningCost", data)


def final_cost(tx_key: str, cost: float, texts: tuple[tuple[str, str], ...], qr: str | None = None) -> dict:
    data: dict = {"transactionId": int(tx_key), "cost": cost, **_texts(texts)}
    if qr:
        data["qrCodeText"] = qr
    return _data_transfer("FinalCost", data)


class CostPart:
    def _telling(self) -> bool:
        """The edge answers the charger (so its word on the cost is the one that counts), and it listens."""
        return self.settings.cost_messages and (self.settings.standalone or self.state != LIVE)

    def _tell_user_price(self, call: Call, decided: Decision) -> list[Action]:
        """1.6: the tariff after a priced card's Authorize is answered (2.0.1 has it in the answer)."""
        if self.version != "1.6" or call.action != "Authorize" or not decided.price_texts or not self._telling():
            return []
        id_tag = call.payload.get("idTag")
        return self.call("DataTransfer", user_price(id_tag, decided.price_texts))[1] if isinstance(id_tag, str) else []

    def _tell_running(self, tx_key: str | None, result: Running) -> list[Action]:
        if tx_key is None or result.cost is None or not self._telling() or self.told_cost.get(tx_key) == result.cost:
            return []
        self.told_cost[tx_key] = result.cost
        action, payload = running_cost(self.version, tx_key, result.cost, result.meter_wh, self.wall())
        return self.call(action, payload)[1]

    def tell_final(self, tx_key: str, cost: float | None, texts: tuple[tuple[str, str], ...],
                   qr: str | None = None) -> list[Action]:
        """The shell, once a stopped 1.6 session is billed: FinalCost (2.0.1 had totalCost in its answer)."""
        self.told_cost.pop(tx_key, None)
        if self.version != "1.6" or cost is None or not texts or not self._telling():
            return []
        return self.call("DataTransfer", final_cost(tx_key, cost, texts, qr))[1]
