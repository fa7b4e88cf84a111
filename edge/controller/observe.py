"""What the edge records from a charger's messages: boot facts, connector status, transactions, meter values,
file transfer statuses and the 2.0.1 device model.

Each function takes a parsed payload (and, where the edge's own time is recorded, `now`: the controller
passes its clock's) and returns store records (`edge.controller.records`): rows to write, and
`CloseSession` (a session ended: bill it and queue its record, `edge.billing`).
They are shared by standalone mode, offline answering and passive observation in proxy mode.
"""

from __future__ import annotations

from edge.clock import now_iso
from edge.controller.records import (
    ChargerBoot,
    CloseSession,
    EvNeeds,
    MeterRows,
    ReportRows,
    StatusSeen,
    StoreOp,
    TransferStatus,
    TxEvent,
    TxStart,
    TxStop,
)

ENERGY = "Energy.Active.Import.Register"


def boot_ops(charger_id: str, version: str, payload: dict, now: float | None = None,
             accepted: bool = True) -> list[StoreOp]:
    info = payload.get("chargingStation", payload)  # 2.0.1 nests the facts; 1.6 does not
    return [ChargerBoot(
        charger_id=charger_id, version=version,
        vendor=info.get("vendorName") or info.get("chargePointVendor"),
        model=info.get("model") or info.get("chargePointModel"),
        serial=info.get("serialNumber") or info.get("chargePointSerialNumber"),
        firmware=info.get("firmwareVersion"), ts=now_iso(now), accepted=accepted)]


def status_key(payload: dict) -> tuple[int, int]:
    """(evse, connector) of a StatusNotification: 1.6 has only connectorId (evse 0 stands for 'none')."""
    if "evseId" in payload:
        return int(payload["evseId"]), int(payload.get("connectorId", 0))
    return 0, int(payload.get("connectorId", 0))


def status_ops(charger_id: str, payload: dict, now: float | None = None) -> list[StoreOp]:
    evse, connector = status_key(payload)
    return [StatusSeen(
        charger_id=charger_id, evse_id=evse, connector_id=connector,
        status=payload.get("status") or payload.get("connectorStatus"),
        error_code=payload.get("errorCode"), ts=payload.get("timestamp") or now_iso(now))]


TRANSFER_KINDS = {"FirmwareStatusNotification": "firmware", "DiagnosticsStatusNotification": "log",
                  "LogStatusNotification": "log"}


def transfer_ops(charger_id: str, action: str, payload: dict, now: float | None = None) -> list[StoreOp]:
    """A firmware or log status notification, for the transfer it is about (2.0.1 names it by requestId)."""
    request_id = payload.get("requestId")
    return [TransferStatus(charger_id=charger_id, kind=TRANSFER_KINDS[action], status=str(payload.get("status")),
                           request_id=request_id if isinstance(request_id, int) else None, ts=now_iso(now))]


def variable_key(component: dict, variable: dict) -> str:
    """How the edge names a 2.0.1 variable: COMPONENT.VARIABLE (what the configuration intents take), with
    the component's [instance] and @evse(.connector), and the variable's [instance], where they have them."""
    name = component.get("name", "?")
    if component.get("instance"):
        name += f"[{component['instance']}]"
    evse = component.get("evse") or {}
    if "id" in evse:
        name += f"@{evse['id']}" + (f".{evse['connectorId']}" if "connectorId" in evse else "")
    var = variable.get("name", "?")
    if variable.get("instance"):
        var += f"[{variable['instance']}]"
    return f"{name}.{var}"


def report_ops(charger_id: str, payload: dict, now: float | None = None) -> list[StoreOp]:
    """One NotifyReport message (a report may come in several, `tbc` true until the last): its rows."""
    rows = []
    for item in payload.get("reportData") or []:
        key = variable_key(item.get("component") or {}, item.get("variable") or {})
        chars = item.get("variableCharacteristics") or {}
        for attr in item.get("variableAttribute") or []:
            rows.append({"key": key, "attribute": attr.get("type", "Actual"), "value": attr.get("value"),
                         "mutability": attr.get("mutability", "ReadWrite"), "data_type": chars.get("dataType"),
                         "unit": chars.get("unit")})
    request_id = payload.get("requestId")
    request_id = request_id if isinstance(request_id, int) and not isinstance(request_id, bool) else None
    if not rows and request_id is None:
        return []
    return [ReportRows(charger_id=charger_id, rows=rows, ts=now_iso(now), request_id=request_id,
                       tbc=bool(payload.get("tbc")))]


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def ev_needs_ops(charger_id: str, payload: dict, now: float | None = None) -> list[StoreOp]:
    """A NotifyEVChargingNeeds (ISO 15118): the EV's maximum current (AC or DC parameters), the energy it asks
    for and when it leaves, where it says them."""
    evse = payload.get("evseId")
    if not isinstance(evse, int) or isinstance(evse, bool):
        return []
    needs = payload.get("chargingNeeds") or {}
    params = needs.get("acChargingParameters") or needs.get("dcChargingParameters") or {}
    energy = _number(params.get("energyAmount"))
    return [EvNeeds(charger_id=charger_id, evse_id=evse, max_current_a=_number(params.get("evMaxCurrent")),
                    energy_wh=None if energy is None else round(energy), departure=needs.get("departureTime"),
                    ts=now_iso(now))]


def meter_rows(charger_id: str, tx_key: str | None, connector_id: int | None, meter_value: list) -> list[dict]:
    rows = []
    for mv in meter_value or []:
        ts = mv.get("timestamp")
        for s in mv.get("sampledValue") or []:
            unit = s.get("unit") or (s.get("unitOfMeasure") or {}).get("unit")
            rows.append({
                "charger_id": charger_id, "tx_key": tx_key, "connector_id": connector_id, "timestamp": ts,
                "measurand": s.get("measurand", ENERGY), "phase": s.get("phase"), "unit": unit,
                "context": s.get("context"), "value": str(s.get("value")),
            })
    return rows


def energy_wh(meter_value: list) -> int | None:
    """The last Energy.Active.Import.Register reading in Wh (kWh converted), or None."""
    found = None
    for mv in meter_value or []:
        for s in mv.get("sampledValue") or []:
            if s.get("measurand", ENERGY) != ENERGY or s.get("phase"):
                continue
            unit = s.get("unit") or (s.get("unitOfMeasure") or {}).get("unit") or "Wh"
            try:
                value = float(s.get("value"))
            except (TypeError, ValueError):
                continue
            found = round(value * 1000) if unit == "kWh" else round(value)
    return found


def meter_ops_16(charger_id: str, payload: dict) -> list[StoreOp]:
    tx = payload.get("transactionId")
    rows = meter_rows(charger_id, None if tx is None else str(tx), payload.get("connectorId"),
                      payload.get("meterValue"))
    return [MeterRows(rows)] if rows else []


def meter_ops_201(charger_id: str, payload: dict) -> list[StoreOp]:
    rows = meter_rows(charger_id, None, payload.get("evseId"), payload.get("meterValue"))
    return [MeterRows(rows)] if rows else []


def start_op_16(charger_id: str, tx_id: int, payload: dict, *, offline: bool,
                upstream_tx_id: int | None = None, upstream_status: str | None = None) -> TxStart:
    return TxStart(
        id=tx_id, charger_id=charger_id, tx_key=str(tx_id), version="1.6",
        evse_id=None, connector_id=payload.get("connectorId"), id_tag=payload.get("idTag"),
        meter_start=payload.get("meterStart"), started_at=payload.get("timestamp"),
        started_offline=int(offline), upstream_tx_id=upstream_tx_id, upstream_status=upstream_status)


def stop_ops_16(charger_id: str, payload: dict) -> list[StoreOp]:
    tx_key = str(payload.get("transactionId"))
    rows = meter_rows(charger_id, tx_key, None, payload.get("transactionData"))
    ops: list[StoreOp] = [MeterRows(rows)] if rows else []  # first: the bill at stop reads them
    ops.append(TxStop(charger_id=charger_id, tx_key=tx_key, meter_stop=payload.get("meterStop"),
                      stopped_at=payload.get("timestamp"), reason=payload.get("reason", "Local")))
    ops.append(CloseSession(charger_id, tx_key))
    return ops


def tx_event_ops(charger_id: str, version: str, payload: dict, new_id: int | None) -> list[StoreOp]:
    """Ops for a 2.0.1 TransactionEvent: start on Started (or first sight), meter values, stop on Ended."""
    info = payload.get("transactionInfo") or {}
    tx_key = info.get("transactionId")
    evse = payload.get("evse") or {}
    token = payload.get("idToken") or {}
    energy = energy_wh(payload.get("meterValue"))
    rows = meter_rows(charger_id, tx_key, evse.get("id"), payload.get("meterValue"))
    ops: list[StoreOp] = [MeterRows(rows)] if rows else []  # first: the bill at stop reads them
    ops.append(TxEvent(
        id=new_id, version=version, charger_id=charger_id, tx_key=tx_key, event=payload.get("eventType"),
        evse_id=evse.get("id"), connector_id=evse.get("connectorId"), id_tag=token.get("idToken"),
        ts=payload.get("timestamp"), energy_wh=energy, reason=info.get("stoppedReason")))
    if payload.get("eventType") == "Ended":
        ops.append(CloseSession(charger_id, tx_key))
    return ops
