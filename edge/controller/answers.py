"""The edge's own answers to a charger's CALLs: what a CSMS would say, for 1.6 and 2.0.1.

Used in standalone mode (the edge is the CSMS) and in proxy mode while upstream is away. Pure functions of
the request and a few facts (time, the authorization decision, a new transaction id); what to persist is
described by the `Persist` records the controller emits, not done here.
"""

from __future__ import annotations

import json

from edge.clock import now_iso
from edge.controller.wire import Call

BOOT_RETRY_PENDING = 60  # seconds a Pending charger waits before its next BootNotification (approval triggers one)

# Messages a charger sends whose answer is an empty object, by version.
_EMPTY_16 = {"StatusNotification", "MeterValues", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
             # the 1.6 security extension (whitepaper edition 2)
             "SecurityEventNotification", "LogStatusNotification", "SignedFirmwareStatusNotification"}
_EMPTY_201 = {
    "StatusNotification", "MeterValues", "FirmwareStatusNotification", "LogStatusNotification",
    "NotifyChargingLimit", "ClearedChargingLimit", "NotifyCustomerInformation", "NotifyDisplayMessages",
    "NotifyEvent", "NotifyMonitoringReport", "NotifyReport", "PublishFirmwareStatusNotification",
    "ReportChargingProfiles", "ReservationStatusUpdate", "SecurityEventNotification",
}
_STATUS_201 = {
    "NotifyEVChargingNeeds": {"status": "Rejected"},
    "NotifyEVChargingSchedule": {"status": "Rejected"},
    "SignCertificate": {"status": "Rejected"},
    "GetCertificateStatus": {"status": "Failed"},
    "Get15118EVCertificate": {"status": "Failed", "exiResponse": ""},
}

# What upstream must see when it comes back (queued while offline); Boot and Status are replayed apart.
QUEUED_16 = {"StartTransaction", "StopTransaction", "MeterValues", "DataTransfer",
             "DiagnosticsStatusNotification", "FirmwareStatusNotification", "SecurityEventNotification",
             "LogStatusNotification", "SignedFirmwareStatusNotification"}
QUEUED_201 = {"TransactionEvent", "MeterValues", "DataTransfer", "FirmwareStatusNotification",
              "LogStatusNotification", "SecurityEventNotification", "NotifyEvent", "NotifyReport",
              "NotifyMonitoringReport", "NotifyChargingLimit", "ClearedChargingLimit",
              "ReservationStatusUpdate", "NotifyCustomerInformation", "PublishFirmwareStatusNotification"}


def is_queued(version: str, action: str) -> bool:
    return action in (QUEUED_16 if version == "1.6" else QUEUED_201)


def id_tag_info_16(status: str, expiry: str | None = None, parent: str | None = None) -> dict:
    info: dict = {"status": status}
    if expiry:
        info["expiryDate"] = expiry
    if parent:
        info["parentIdTag"] = parent
    return info


def id_token_info_201(status: str, expiry: str | None = None, group: str | None = None,
                      message: dict | None = None) -> dict:
    info: dict = {"status": status}
    if message:
        info["personalMessage"] = message
    if expiry:
        info["cacheExpiryDateTime"] = expiry
    if group:
        info["groupIdToken"] = {"idToken": group, "type": "Central"}
    return info


def card_info(version: str, status: str, expiry: str | None = None, group: str | None = None,
              message: dict | None = None) -> dict:
    """idTagInfo (1.6) / idTokenInfo (2.0.1) for a card: its status, validity end and group (with Accepted only:
    a refused card stops nothing)."""
    group = group if status == "Accepted" else None
    return id_tag_info_16(status, expiry, group) if version == "1.6" else \
        id_token_info_201(status, expiry, group, message)


def answer(call: Call, version: str, *, heartbeat_interval: int, auth_status: str = "Accepted",
           transaction_id: int | None = None, offline: bool = False, now: float | None = None,
           expiry: str | None = None, group: str | None = None, message: dict | None = None,
           boot_status: str = "Accepted") -> dict | None:
    """The payload the edge answers `call` with, or None if it does not answer this action itself. `expiry`
    and `group`: the card's validity end and group, told with its status (1.6 expiryDate and parentIdTag,
    2.0.1 cacheExpiryDateTime and groupIdToken); `boot_status`: a BootNotification's (Pending or Rejected:
    `interval` is then the wait before the next one)."""
    action, p = call.action, call.payload
    if action == "BootNotification":
        interval = heartbeat_interval if boot_status != "Pending" else min(heartbeat_interval, BOOT_RETRY_PENDING)
        return {"status": boot_status, "currentTime": now_iso(now), "interval": interval}
    if action == "Heartbeat":
        return {"currentTime": now_iso(now)}
    if action == "DataTransfer":
        # Offline, the message is queued for upstream, which knows the vendor; the edge itself knows none.
        return {"status": "Accepted" if offline else "UnknownVendorId"}
    info = card_info(version, auth_status, expiry, group, message)
    if version == "1.6":
        if action in _EMPTY_16:
            return {}
        if action == "SignCertificate":
            return {"status": "Rejected"}
        if action == "Authorize":
            return {"idTagInfo": info}
        if action == "StartTransaction":
            assert transaction_id is not None
            return {"transactionId": transaction_id, "idTagInfo": info}
        if action == "StopTransaction":
            return {"idTagInfo": info} if p.get("idTag") else {}
        return None
    if action in _EMPTY_201:
        return {}
    if action in _STATUS_201:
        return dict(_STATUS_201[action])
    if action == "Authorize":
        return {"idTokenInfo": info}
    if action == "TransactionEvent":
        return {"idTokenInfo": info} if p.get("idToken") else {}
    return None


def with_total_cost(text: str, cost: float | None) -> str:
    """A TransactionEventResponse with the session's final cost (`totalCost`, in the site currency; 0 for a
    free session); as it was when the edge has no cost for it (not a card of the site's)."""
    if cost is None:
        return text
    frame = json.loads(text)
    frame[2]["totalCost"] = cost
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
