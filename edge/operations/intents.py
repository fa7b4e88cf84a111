"""What an owner asks of a charger, said in each OCPP version: the one place that maps an intent (reset,
unlock, change availability, trigger a message, clear the cache, read or change configuration, remote start
and stop, firmware, logs, charging limits, reservations) to the message of the charger's version. Each function returns ``(action, payload)``; pure, no I/O.
The coverage table is in docs/operations.md."""

from __future__ import annotations


class IntentError(ValueError):
    """An intent that cannot be said in this version (or is malformed); the message says why."""


TRIGGERS_16 = ("BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification", "Heartbeat",
               "MeterValues", "StatusNotification")
TRIGGERS_201 = ("BootNotification", "LogStatusNotification", "FirmwareStatusNotification", "Heartbeat",
                "MeterValues", "SignChargingStationCertificate", "SignV2GCertificate", "StatusNotification",
                "TransactionEvent", "SignCombinedCertificate", "PublishFirmwareStatusNotification")


def _connector(value: object, *, zero: bool) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if zero else 1):
        raise IntentError(f"connector must be an integer {'0 (the whole charger) or more' if zero else '1 or more'},"
                          f" got {value!r}")
    return value


def reset(version: str, hard: bool = False) -> tuple[str, dict]:
    """1.6 Reset Soft/Hard; 2.0.1 Reset OnIdle (after the sessions end) / Immediate."""
    if version == "1.6":
        return "Reset", {"type": "Hard" if hard else "Soft"}
    return "Reset", {"type": "Immediate" if hard else "OnIdle"}


def unlock(version: str, connector: int) -> tuple[str, dict]:
    """Release the cable on `connector` (2.0.1: EVSE `connector`, its connector 1)."""
    n = _connector(connector, zero=False)
    if version == "1.6":
        return "UnlockConnector", {"connectorId": n}
    return "UnlockConnector", {"evseId": n, "connectorId": 1}


def availability(version: str, connector: int, operative: bool) -> tuple[str, dict]:
    """Take `connector` (0: the whole charger) in or out of service."""
    n = _connector(connector, zero=True)
    state = "Operative" if operative else "Inoperative"
    if version == "1.6":
        return "ChangeAvailability", {"connectorId": n, "type": state}
    payload: dict = {"operationalStatus": state}
    if n:
        payload["evse"] = {"id": n}
    return "ChangeAvailability", payload


def trigger(version: str, message: str, connector: int | None = None) -> tuple[str, dict]:
    """Ask the charger to send `message` now (for `connector`, where the message has one)."""
    known = TRIGGERS_16 if version == "1.6" else TRIGGERS_201
    if message not in known:
        raise IntentError(f"OCPP {version} cannot trigger {message!r} (it can: {', '.join(known)})")
    payload: dict = {"requestedMessage": message}
    if connector is not None:
        n = _connector(connector, zero=False)
        if version == "1.6":
            payload["connectorId"] = n
        else:
            payload["evse"] = {"id": n}
    return "TriggerMessage", payload


def clear_cache(version: str) -> tuple[str, dict]:
    return "ClearCache", {}


def _component_variable(key: str) -> tuple[str, str]:
    """2.0.1 names a setting by component and variable: "OCPPCommCtrlr.HeartbeatInterval"."""
    component, dot, variable = key.partition(".")
    if not dot or not component or not variable:
        raise IntentError(f"an OCPP 2.0.1 setting is COMPONENT.VARIABLE (e.g. OCPPCommCtrlr.HeartbeatInterval),"
                          f" got {key!r}")
    return component, variable


def get_configuration(version: str, keys: list[str] | None = None, request_id: int = 1) -> tuple[str, dict]:
    """Read settings: 1.6 GetConfiguration (all, or `keys`); 2.0.1 GetVariables for `keys`, or with none
    GetBaseReport (ConfigurationInventory, as `request_id`; the charger then sends NotifyReport in parts)."""
    if version == "1.6":
        return "GetConfiguration", ({"key": list(keys)} if keys else {})
    if not keys:
        return "GetBaseReport", {"requestId": request_id, "reportBase": "ConfigurationInventory"}
    data = []
    for key in keys:
        component, variable = _component_variable(key)
        data.append({"component": {"name": component}, "variable": {"name": variable}})
    return "GetVariables", {"getVariableData": data}


def set_configuration(version: str, key: str, value: str) -> tuple[str, dict]:
    """Change one setting: 1.6 ChangeConfiguration; 2.0.1 SetVariables (its Actual value)."""
    if not isinstance(value, str):
        raise IntentError(f"a setting's value is text, got {value!r}")
    if version == "1.6":
        return "ChangeConfiguration", {"key": key, "value": value}
    component, variable = _component_variable(key)
    return "SetVariables", {"setVariableData": [{"component": {"name": component}, "variable": {"name": variable},
                                                 "attributeValue": value}]}


def remote_start(version: str, connector: int, id_tag: str, remote_id: int,
                 token_type: str = "ISO14443") -> tuple[str, dict]:
    """Start charging on `connector` for `id_tag`: 1.6 RemoteStartTransaction, 2.0.1 RequestStartTransaction
    (on EVSE `connector`, with `remote_id` as its remoteStartId; `token_type` "Central" for a pay session's
    tag, which no card carries)."""
    n = _connector(connector, zero=False)
    if version == "1.6":
        return "RemoteStartTransaction", {"connectorId": n, "idTag": id_tag}
    return "RequestStartTransaction", {"idToken": {"idToken": id_tag, "type": token_type}, "evseId": n,
                                       "remoteStartId": remote_id}


def remote_stop(version: str, tx_id: int | None, tx_key: str) -> tuple[str, dict]:
    """Stop a session: 1.6 RemoteStopTransaction by the charger's transaction id, 2.0.1
    RequestStopTransaction by its transaction key."""
    if version == "1.6":
        return "RemoteStopTransaction", {"transactionId": int(tx_id if tx_id is not None else tx_key)}
    return "RequestStopTransaction", {"transactionId": tx_key}


def update_firmware(version: str, location: str, retrieve_at: str, request_id: int) -> tuple[str, dict]:
    """Download the image at `location` from `retrieve_at` on and install it: 1.6 UpdateFirmware (no answer
    but the status notifications); 2.0.1 UpdateFirmware with `request_id` (Accepted / Rejected, then the
    notifications carry it)."""
    if version == "1.6":
        return "UpdateFirmware", {"location": location, "retrieveDate": retrieve_at}
    return "UpdateFirmware", {"requestId": request_id, "firmware": {"location": location,
                                                                    "retrieveDateTime": retrieve_at}}


def get_logs(version: str, location: str, request_id: int) -> tuple[str, dict]:
    """Upload the charger's diagnostics to `location`: 1.6 GetDiagnostics, 2.0.1 GetLog (DiagnosticsLog)."""
    if version == "1.6":
        return "GetDiagnostics", {"location": location}
    return "GetLog", {"logType": "DiagnosticsLog", "requestId": request_id, "log": {"remoteLocation": location}}


LIMIT_PROFILE_ID = 1000  # + the connector: the edge's own profile on each, replaced when set again


def charging_limit(version: str, connector: int, limit: float, unit: str, start: str,
                   until: str | None = None) -> tuple[str, dict]:
    """Cap charging on `connector` (0: the whole charger) at `limit` amps ("A") or watts ("W") from `start`
    (until `until`, or for good): SetChargingProfile with a profile of the edge's own, ChargePointMaxProfile /
    ChargingStationMaxProfile for the whole charger, TxDefaultProfile for one connector (it applies to the
    session under way and the ones after it)."""
    n = _connector(connector, zero=True)
    if unit not in ("A", "W"):
        raise IntentError(f"a limit is in amps (A) or watts (W), got {unit!r}")
    if isinstance(limit, bool) or not isinstance(limit, int | float) or limit < 0:
        raise IntentError(f"a limit is a number of {unit} of 0 or more, got {limit!r}")
    period = [{"startPeriod": 0, "limit": round(float(limit), 1)}]
    if version == "1.6":
        profile: dict = {"chargingProfileId": LIMIT_PROFILE_ID + n, "stackLevel": 0,
                         "chargingProfilePurpose": "ChargePointMaxProfile" if n == 0 else "TxDefaultProfile",
                         "chargingProfileKind": "Absolute",
                         "chargingSchedule": {"startSchedule": start, "chargingRateUnit": unit,
                                              "chargingSchedulePeriod": period}}
        if until:
            profile["validTo"] = until
        return "SetChargingProfile", {"connectorId": n, "csChargingProfiles": profile}
    profile = {"id": LIMIT_PROFILE_ID + n, "stackLevel": 0,
               "chargingProfilePurpose": "ChargingStationMaxProfile" if n == 0 else "TxDefaultProfile",
               "chargingProfileKind": "Absolute",
               "chargingSchedule": [{"id": LIMIT_PROFILE_ID + n, "startSchedule": start, "chargingRateUnit": unit,
                                     "chargingSchedulePeriod": period}]}
    if until:
        profile["validTo"] = until
    return "SetChargingProfile", {"evseId": n, "chargingProfile": profile}


TX_PROFILE_ID = 2000  # + the connector: the edge's share of the site's current for the session on it


def session_limit(version: str, connector: int, tx_key: str, amps: float) -> tuple[str, dict]:
    """Cap the session `tx_key` on `connector` at `amps` (a TxProfile for that transaction, replaced when set
    again; the charger drops it when the session ends)."""
    n = _connector(connector, zero=False)
    period = [{"startPeriod": 0, "limit": round(float(amps), 1)}]
    if version == "1.6":
        return "SetChargingProfile", {"connectorId": n, "csChargingProfiles": {
            "chargingProfileId": TX_PROFILE_ID + n, "transactionId": int(tx_key), "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Relative",
            "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": period}}}
    return "SetChargingProfile", {"evseId": n, "chargingProfile": {
        "id": TX_PROFILE_ID + n, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative", "transactionId": tx_key,
        "chargingSchedule": [{"id": TX_PROFILE_ID + n, "chargingRateUnit": "A", "chargingSchedulePeriod": period}]}}


def clear_charging_limit(version: str, connector: int) -> tuple[str, dict]:
    """Remove the edge's limit on `connector` (ClearChargingProfile by its id)."""
    n = _connector(connector, zero=True)
    if version == "1.6":
        return "ClearChargingProfile", {"id": LIMIT_PROFILE_ID + n}
    return "ClearChargingProfile", {"chargingProfileId": LIMIT_PROFILE_ID + n}


def composite_schedule(version: str, connector: int, seconds: int = 86400, unit: str = "A") -> tuple[str, dict]:
    """What the charger will allow on `connector` over the next `seconds`, all profiles combined."""
    n = _connector(connector, zero=True)
    if version == "1.6":
        return "GetCompositeSchedule", {"connectorId": n, "duration": seconds, "chargingRateUnit": unit}
    return "GetCompositeSchedule", {"evseId": n, "duration": seconds, "chargingRateUnit": unit}


def reserve(version: str, reservation_id: int, connector: int, id_tag: str, expires: str) -> tuple[str, dict]:
    """Hold `connector` for `id_tag` until `expires`: ReserveNow (2.0.1: on EVSE `connector`)."""
    n = _connector(connector, zero=False)
    if version == "1.6":
        return "ReserveNow", {"connectorId": n, "expiryDate": expires, "idTag": id_tag,
                              "reservationId": reservation_id}
    return "ReserveNow", {"id": reservation_id, "expiryDateTime": expires, "evseId": n,
                          "idToken": {"idToken": id_tag, "type": "ISO14443"}}


def cancel_reservation(version: str, reservation_id: int) -> tuple[str, dict]:
    return "CancelReservation", {"reservationId": reservation_id}


def display_message(version: str, message_id: int, content: str, fmt: str = "UTF8", language: str = "en",
                    state: str | None = "Idle") -> tuple[str, dict]:
    """Show `content` on the charger's display (2.0.1 SetDisplayMessage: replaces the message with the same
    `message_id`; `fmt` ASCII, HTML, URI or UTF8; `state`: only while the charger is Idle, Charging, ...).
    1.6 has no display messages."""
    if version == "1.6":
        raise IntentError("OCPP 1.6 has no display messages (SetDisplayMessage is 2.0.1)")
    if fmt not in ("ASCII", "HTML", "URI", "UTF8"):
        raise IntentError(f"format must be ASCII, HTML, URI or UTF8, got {fmt!r}")
    info: dict = {"id": message_id, "priority": "NormalCycle",
                  "message": {"format": fmt, "language": language, "content": content[:512]}}
    if state:
        info["state"] = state
    return "SetDisplayMessage", {"message": info}
