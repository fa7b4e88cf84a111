"""The local controller's part for the site's own cards: ask `edge.billing` to decide, hold, watch the
running cost and stop a session at its hold. A mixin of `ChargerLink` (it shares the link's state); kept
apart so that the protocol core reads on its own.
"""

from __future__ import annotations

from edge.controller import observe
from edge.controller.actions import (
    LIVE,
    Action,
    Ask,
    Asked,
    Decide,
    Decision,
    Notice,
    Persist,
    Register,
    Running,
    RunningCost,
    SendCharger,
    Waits,
)
from edge.controller.answers import card_info
from edge.controller.authorize import id_token_of
from edge.controller.records import TxMap, TxStart
from edge.controller.wire import Call, CallResult, result_text
from edge.money import is_pay_tag, lookup_key


class BillingPart:
    def _card_of(self, call: Call) -> str | None:
        """The known card in an Authorize / StartTransaction / TransactionEvent that starts or authorizes."""
        a, p = call.action, call.payload
        if a not in ("Authorize", "StartTransaction", "TransactionEvent"):
            return None
        if a == "TransactionEvent" and p.get("eventType") == "Ended":
            return None
        token = id_token_of(p)
        if not token:
            return None
        uid = lookup_key(token)
        return uid if self.authorizer.knows(uid) else None

    def _ask(self, asked: Asked, question: Decide | RunningCost | Register) -> list[Action]:
        ask_id = next(self._ask_ids)
        self.asks[ask_id] = asked
        return [Ask(ask_id, question)]

    def _ask_decision(self, call: Call, sent: bool = False) -> list[Action]:
        uid = self._card_of(call)
        if uid is None:
            return []
        if not self.settings.standalone and not is_pay_tag(uid):  # a pay session's tag: paid here, decided here
            if self.state == LIVE and self.authorizer.authority == "upstream":
                return []  # upstream decides; a start is recorded and held when its answer comes
            if self.state != LIVE and self.settings.strict:
                return []
        if call.action == "Authorize":
            return self._ask(Asked(call, Waits.AUTHORIZE, sent=sent),
                             Decide(uid, self.charger_id, self.version, "authorize",
                                    price_texts=self._telling()))
        return self._ask(Asked(call, Waits.START, sent=sent),
                         Decide(uid, self.charger_id, self.version, "start", self._start_record(call, uid)))

    def _start_record(self, call: Call, uid: str, upstream_id: int | None = None,
                      upstream_status: str | None = None) -> TxStart:
        offline = not self.settings.standalone and self.state != LIVE
        p = call.payload
        if call.action == "StartTransaction":
            tx_id = self.new_tx_id()
            return observe.start_op_16(self.charger_id, tx_id, p, offline=offline, upstream_tx_id=upstream_id,
                                       upstream_status=upstream_status)
        key = (p.get("transactionInfo") or {}).get("transactionId")
        self.tx.open_keys.add(key)
        evse = p.get("evse") or {}
        return TxStart(id=self.new_tx_id(), charger_id=self.charger_id, tx_key=key, version=self.version,
                       evse_id=evse.get("id"), connector_id=evse.get("connectorId"), id_tag=uid,
                       meter_start=observe.energy_wh(p.get("meterValue")), started_at=p.get("timestamp"),
                       started_offline=int(offline), upstream_tx_id=None, upstream_status=None)

    def _tx_key_of(self, call: Call, result: Decision) -> str:
        if call.action == "StartTransaction":
            return str(result.tx_id)
        return (call.payload.get("transactionInfo") or {}).get("transactionId")

    def _after_upstream_start(self, asked: Asked, result: Decision) -> list[Action]:
        """Authority "upstream": upstream's answer to a start of a known card, now recorded and held."""
        reply = asked.upstream_reply
        assert reply is not None
        if result.hold_minor:
            self.tx.billed.add(self._tx_key_of(asked.call, result))
        if asked.call.action == "StartTransaction":
            local = result.tx_id
            upstream_id = reply.payload.get("transactionId")
            self.tx.id_map[local] = upstream_id if isinstance(upstream_id, int) else 0
            return [SendCharger(result_text(reply.msg_id, {**reply.payload, "transactionId": local}))]
        return [SendCharger(reply.text)]

    def _watch_cost(self, call: Call) -> list[Action]:
        """After meter values of a session on a hold: ask for its running cost (to stop it at the hold)."""
        p = call.payload
        if call.action == "MeterValues" and self.version == "1.6":
            key = p.get("transactionId")
        elif call.action == "TransactionEvent" and p.get("eventType") == "Updated":
            key = (p.get("transactionInfo") or {}).get("transactionId")
        else:
            return []
        key = None if key is None else str(key)
        if key not in self.tx.billed or key in self.tx.stop_requested or not p.get("meterValue"):
            return []
        pending = tuple(observe.meter_rows(self.charger_id, key, None, p.get("meterValue"))) \
            if call.action == "MeterValues" else ()
        return self._ask(Asked(call, Waits.RUNNING, tx_key=key), RunningCost(self.charger_id, key, pending))

    def _stop_if_exhausted(self, tx_key: str | None, result: Running) -> list[Action]:
        if not result.stop or tx_key is None or tx_key in self.tx.stop_requested:
            return []
        self.tx.stop_requested.add(tx_key)
        if self.version == "1.6":
            _, actions = self.call("RemoteStopTransaction", {"transactionId": int(tx_key)})
        else:
            _, actions = self.call("RequestStopTransaction", {"transactionId": tx_key})
        return actions

    def _decided_reply(self, call: Call, frame: CallResult, decided: Decision) -> list[Action]:
        """Upstream's answer to a forwarded start of a card the edge decided: upstream's ids, the edge's status."""
        p = frame.payload
        if call.action == "StartTransaction":
            local = decided.tx_id
            assert local is not None
            upstream_id = p.get("transactionId")
            upstream_id = upstream_id if isinstance(upstream_id, int) else 0
            self.tx.id_map[local] = upstream_id
            info = {**(p.get("idTagInfo") or {}), **card_info("1.6", decided.status, decided.expiry, decided.group)}
            upstream_status = (p.get("idTagInfo") or {}).get("status")
            actions: list[Action] = []
            if decided.status == "Accepted" and (upstream_id <= 0 or upstream_status != "Accepted"):
                actions.append(Notice("upstream_refused_live", (
                    f"upstream refused transaction {local} (transactionId {upstream_id}, status {upstream_status})"
                    " that the edge accepted for its own card: it runs, and its frames go up with that id")))
            return actions + [
                Persist([TxMap(local, upstream_id, upstream_status)]),
                SendCharger(result_text(frame.msg_id, {**p, "transactionId": local, "idTagInfo": info}))]
        if "idTokenInfo" in p or call.payload.get("idToken"):
            info = {**(p.get("idTokenInfo") or {}),
                    **card_info(self.version, decided.status, decided.expiry, decided.group)}
            return [Persist([]), SendCharger(result_text(frame.msg_id, {**p, "idTokenInfo": info}))]
        return [Persist([]), SendCharger(frame.text)]
