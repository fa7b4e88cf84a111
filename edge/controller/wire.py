"""OCPP-J framing: parse a WebSocket text frame into a CALL / CALLRESULT / CALLERROR, validate payloads
against the version's JSON schemas, and build frames.

A frame that cannot be accepted raises `FrameError`, whose `reply(version)` is the CALLERROR that version's
specification asks for: 1.6 uses its own (mis)spellings ``FormationViolation`` and
``OccurenceConstraintViolation``; 2.0.1 uses ``FormatViolation``, ``RpcFrameworkError`` and
``MessageTypeNotSupported``; a frame whose message id cannot be read is answered with id ``"-1"``.
The schemas come from the `ocpp` package (not its error mapping, which is wrong for 1.6), compiled with
`fastjsonschema` (about 20x faster than `jsonschema` on a MeterValues payload). Like the `ocpp` package, the
``date-time`` format is not enforced: real chargers send timestamps without a zone, and the edge forwards them.
"""

from __future__ import annotations

import decimal
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastjsonschema
import ocpp
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
    huge: bool = field(repr=False, compare=False, default=False)  # parse saw an integer past 64 bits


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


INT_MAX = 2**63 - 1  # SQLite's INTEGER: a charger's number beyond it is refused before anything is written
_huge = [0]  # integers past 64 bits the decoder has seen (a count: `parse` compares before and after)


def _int(digits: str) -> int:
    value = int(digits)
    if len(digits) > 18 and not -INT_MAX - 1 <= value <= INT_MAX:
        _huge[0] += 1
    return value


# One decoder for every frame (json.loads makes one per call when given a hook): it notes, at no cost to
# other frames, the integers no database column can hold, so that `validate_call` looks for them only then.
_DECODER = json.JSONDecoder(parse_int=_int)


def parse(text: str | bytes) -> Frame:
    """Parse one OCPP-J frame (structure only; see `validate_call` for the payload)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError(None, "format", "frame is not UTF-8 text") from None
    seen = _huge[0]
    try:
        msg = _DECODER.decode(text)
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
        return Call(msg_id, msg[2], msg[3], text, _huge[0] != seen)
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


_PROPERTY_RULES = {"maxLength", "minLength", "enum", "minimum", "maximum", "pattern", "format", "multipleOf",
                   "exclusiveMinimum", "exclusiveMaximum"}


def _schema_kind(rule: str | None) -> str:
    if rule == "type":
        return "TypeConstraintViolation"
    if rule in ("required", "minItems", "maxItems"):
        return "occurrence"
    if rule in _PROPERTY_RULES:
        return "PropertyConstraintViolation"
    return "format"


_SCHEMA_DIRS = {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}


@functools.cache
def _compiled(message_type: int, action: str, version: str) -> Callable[[Any], Any] | None:
    """The compiled schema check for an action's request or response, or None if there is no such action."""
    folder = _SCHEMA_DIRS.get(version)
    if folder is None or not action.isidentifier():
        return None
    name = action + ("Response" if message_type == CALLRESULT else "" if version == "1.6" else "Request")
    path = Path(ocpp.__file__).parent / folder / "schemas" / f"{name}.json"
    try:
        schema = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return None
    return fastjsonschema.compile(schema, use_formats=False)


def _check(message_type: int, msg_id: str, action: str, payload: Any, version: str) -> None:
    if version == "1.6" and action in _DECIMAL_ACTIONS:
        # `multipleOf: 0.1` on floats needs Decimal arithmetic; fastjsonschema divides floats.
        validator = get_validator(message_type, action, version, parse_float=decimal.Decimal)
        try:
            validator.validate(json.loads(json.dumps(payload), parse_float=decimal.Decimal))
        except SchemaError as e:
            where = "/".join(str(p) for p in e.absolute_path) or "payload"
            raise FrameError(msg_id, _schema_kind(str(e.validator)), f"{action}: {where}: {e.message}"[:255]) \
                from None
        return
    check = _compiled(message_type, action, version)
    if check is None:
        raise FrameError(msg_id, "NotImplemented", f"action {action!r} is not known in OCPP {version}")
    try:
        check(payload)
    except fastjsonschema.JsonSchemaValueException as e:
        raise FrameError(msg_id, _schema_kind(e.rule), f"{action}: {e.message}"[:255]) from None


COMMON_ACTIONS = ("BootNotification", "Heartbeat", "StatusNotification", "Authorize", "StartTransaction",
                  "StopTransaction", "MeterValues", "TransactionEvent", "DataTransfer")


def precompile_schemas() -> None:
    """Compile the schemas of the messages every charger sends (a compile takes milliseconds)."""
    for version in ("1.6", "2.0.1"):
        for action in COMMON_ACTIONS:
            _compiled(CALL, action, version)


def validate_call(call: Call, version: str) -> None:
    """Check a CALL's action and payload against `version`'s schema; raise `FrameError` if wrong. An integer
    the site's database cannot hold (the schemas set no maximum) is refused here too, before anything is
    written (it once left the charger with no answer at all)."""
    _check(CALL, call.msg_id, call.action, call.payload, version)
    if call.huge or not call.text:
        where = _too_big(call.payload, "")
        if where is not None:
            raise FrameError(call.msg_id, "PropertyConstraintViolation",
                             f"{where}: the number is too large (at most {INT_MAX})")




def _too_big(value: Any, path: str) -> str | None:
    """The path of the first integer in `value` outside SQLite's 64-bit range, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return path or "payload" if not -INT_MAX - 1 <= value <= INT_MAX else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return None
    for key, item in items:
        found = _too_big(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def result_problem(action: str, payload: dict, version: str) -> str | None:
    """Why a CALLRESULT payload for `action` fails its schema, or None if it is fine (or unknown)."""
    try:
        _check(CALLRESULT, "-", action, payload, version)
    except FrameError as e:
        return None if e.kind == "NotImplemented" else e.description
    return None


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def call_text(msg_id: str, action: str, payload: dict) -> str:
    return dumps([CALL, msg_id, action, payload])


def result_text(msg_id: str, payload: dict) -> str:
    return dumps([CALLRESULT, msg_id, payload])


def call_error_text(msg_id: str, code: str, description: str = "", details: dict | None = None) -> str:
    return dumps([CALLERROR, msg_id, code, description[:255], details or {}])
