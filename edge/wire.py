"""OCPP-J framing: parse a WebSocket text frame into a CALL / CALLRESULT / CALLERROR, validate payloads
against the version's JSON schemas, and build frames.

A frame that cannot be accepted raises `FrameError`, whose `reply(version)` is the CALLERROR that version's
specification asks for: 1.6 uses its own (mis)spellings ``FormationViolation`` and
``OccurenceConstraintViolation``; 2.0.1 uses ``FormatViolation``, ``RpcFrameworkError`` and
``MessageTypeNotSupported``; a frame whose message id cannot be read is answered with id ``"-1"``.
The schemas come from the `ocpp` package (its validators, not its error mapping, which is wrong for 1.6).
"""

from __future__ import annotations

import decimal
import json
from dataclasses import dataclass, field
from typing import Any

from jsonschema.exceptions import ValidationError as SchemaError
from ocpp.messages import get_validator

CALL, CALLRESULT, CALLERROR = 2, 3, 4

SUBPROTOCOLS = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1", "ocpp2.1": "2.1"}
VERSION_SUBPROTOCOL = {v: k for k, v in SUBPROTOCOLS.items()}

# Generic error kinds → each version's error code.
_CODES = {
    "1.6": {
        "format": "FormationViolation",
        "rpc": "FormationViolation",
        "msgtype": "FormationViolation",
        "occurrence": "OccurenceConstraintViolation",
    },
    "2.0.1": {
        "format": "FormatViolation",
        "rpc": "RpcFrameworkError",
        "msgtype": "MessageTypeNotSupported",
        "occurrence": "OccurrenceConstraintViolation",
    },
}
_CODES["2.1"] = _CODES["2.0.1"]

# 1.6 schemas with `multipleOf: 0.1` need Decimal parsing to validate correctly.
_DECIMAL_ACTIONS = {"SetChargingProfile", "RemoteStartTransaction"}


def error_code(version: str, kind: str) -> str:
    """The error code name for a generic kind in `version` (kinds that are the same in all pass through)."""
    return _CODES.get(version, _CODES["2.0.1"]).get(kind, kind)


@dataclass(frozen=True, slots=True)
class Call:
    msg_id: str
    action: str
    payload: dict
    text: str = field(repr=False, compare=False, default="")


@dataclass(frozen=True, slots=True)
class CallResult:
    msg_id: str
    payload: dict
    text: str = field(repr=False, compare=False, default="")


@dataclass(frozen=True, slots=True)
class CallError:
    msg_id: str
    code: str
    description: str
    details: dict
    text: str = field(repr=False, compare=False, default="")


Frame = Call | CallResult | CallError


class FrameError(Exception):
    """A frame that must be answered with a CALLERROR (when it was a CALL or unreadable)."""

    def __init__(self, msg_id: str | None, kind: str, description: str, *, is_call: bool = True):
        super().__init__(description)
        self.msg_id = msg_id
        self.kind = kind
        self.description = description
        self.is_call = is_call  # False: a bad CALLRESULT/CALLERROR, which is logged, never answered

    def code(self, version: str) -> str:
        return error_code(version, self.kind)

    def reply(self, version: str) -> str:
        return call_error_text(self.msg_id or "-1", self.code(version), self.description)


def parse(text: str | bytes) -> Frame:
    """Parse one OCPP-J frame (structure only; see `validate_call` for the payload)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError(None, "format", "frame is not UTF-8 text") from None
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):
        raise FrameError(None, "format", "frame is not valid JSON") from None
    if not isinstance(msg, list) or len(msg) < 3:
        raise FrameError(None, "rpc", "frame is not an OCPP-J RPC array")
    kind, msg_id = msg[0], msg[1]
    if not isinstance(msg_id, str) or not msg_id or len(msg_id) > 36:
        raise FrameError(None, "rpc", "message id is not a string of 1 to 36 characters")
    if kind == CALL:
        if len(msg) != 4 or not isinstance(msg[2], str):
            raise FrameError(msg_id, "format", "CALL must be [2, id, action, payload]")
        if not isinstance(msg[3], dict):
            raise FrameError(msg_id, "format", "CALL payload must be a JSON object")
        return Call(msg_id, msg[2], msg[3], text)
    if kind == CALLRESULT:
        if len(msg) != 3 or not isinstance(msg[2], dict):
            raise FrameError(msg_id, "format", "CALLRESULT must be [3, id, payload]", is_call=False)
        return CallResult(msg_id, msg[2], text)
    if kind == CALLERROR:
        if len(msg) < 4 or not isinstance(msg[2], str):
            raise FrameError(msg_id, "format", "CALLERROR must be [4, id, code, description, details]",
                             is_call=False)
        details = msg[4] if len(msg) > 4 and isinstance(msg[4], dict) else {}
        return CallError(msg_id, msg[2], str(msg[3]), details, text)
    raise FrameError(msg_id, "msgtype", f"message type {kind!r} is not supported")


def _schema_kind(err: SchemaError) -> str:
    if err.validator == "type":
        return "TypeConstraintViolation"
    if err.validator in ("required", "minItems", "maxItems"):
        return "occurrence"
    if err.validator == "additionalProperties":
        return "format"
    if err.validator in ("maxLength", "minLength", "enum", "minimum", "maximum", "pattern", "format",
                         "multipleOf", "exclusiveMinimum", "exclusiveMaximum"):
        return "PropertyConstraintViolation"
    return "format"


def _validator(message_type: int, action: str, version: str, parse_float: Any = float):
    try:
        return get_validator(message_type, action, version, parse_float=parse_float)
    except (OSError, ValueError):
        return None


def validate_call(call: Call, version: str) -> None:
    """Check a CALL's action and payload against `version`'s schema; raise `FrameError` if wrong."""
    payload: Any = call.payload
    decimal_floats = version == "1.6" and call.action in _DECIMAL_ACTIONS
    validator = _validator(CALL, call.action, version, decimal.Decimal if decimal_floats else float)
    if validator is None:
        raise FrameError(call.msg_id, "NotImplemented", f"action {call.action!r} is not known in OCPP {version}")
    if decimal_floats:
        payload = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
    try:
        validator.validate(payload)
    except SchemaError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "payload"
        raise FrameError(call.msg_id, _schema_kind(e), f"{call.action}: {where}: {e.message}"[:255]) from None


def result_problem(action: str, payload: dict, version: str) -> str | None:
    """Why a CALLRESULT payload for `action` fails its schema, or None if it is fine (or unknown)."""
    validator = _validator(CALLRESULT, action, version)
    if validator is None:
        return None
    try:
        validator.validate(payload)
    except SchemaError as e:
        return e.message
    return None


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def call_text(msg_id: str, action: str, payload: dict) -> str:
    return dumps([CALL, msg_id, action, payload])


def result_text(msg_id: str, payload: dict) -> str:
    return dumps([CALLRESULT, msg_id, payload])


def call_error_text(msg_id: str, code: str, description: str = "", details: dict | None = None) -> str:
    return dumps([CALLERROR, msg_id, code, description[:255], details or {}])
