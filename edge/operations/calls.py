"""One operation on one charger: check the payload against the charger's version, send it as the edge's own
CALL, wait for the charger's real answer, and record who asked what and what came back (the `operations`
table; the frames themselves are in the charger's journal). The web API and the CLI both come here."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, fields
from typing import Any

from edge.clock import now_iso
from edge.controller.wire import Call, FrameError, result_problem, validate_call
from edge.operations.chargers import Chargers


class InvalidPayload(ValueError):
    """The payload does not fit the action's schema in the charger's version; nothing was sent."""


@dataclass
class Outcome:
    """What came of an operation. `status`: "answered" (`response`), "callerror" (`error`: code, description,
    details), "not_connected" or "timeout". `problem`: an answer that does not fit its schema, said so."""

    charger: str
    version: str | None
    action: str
    status: str
    response: dict | None = None
    error: dict | None = None
    problem: str | None = None
    took_ms: float | None = None

    def as_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in out.items() if v is not None or k in ("response", "error")}


async def run(chargers: Chargers, store: Any, charger_id: str, action: str, payload: dict, *, who: str,
              timeout: float = 30.0) -> Outcome:
    """Carry out `action` on `charger_id` and record it; raises `InvalidPayload` (nothing sent, nothing
    recorded) when the payload is wrong for the charger's version."""
    charger = chargers.connected(charger_id)
    if charger is None:
        outcome = Outcome(charger_id, None, action, "not_connected",
                          error={"code": "NotConnected", "description": f"charger {charger_id} is not connected",
                                 "details": {}})
    else:
        try:
            validate_call(Call("-", action, payload), charger.version)
        except FrameError as e:
            raise InvalidPayload(e.description) from None
        began = time.monotonic()
        try:
            result, error = await charger.exchange(action, payload, timeout)
        except TimeoutError:
            outcome = Outcome(charger_id, charger.version, action, "timeout",
                              error={"code": "Timeout", "description": f"no answer in {timeout:g} s", "details": {}})
        except ConnectionError:
            outcome = Outcome(charger_id, charger.version, action, "not_connected",
                              error={"code": "NotConnected", "description": "the charger went away", "details": {}})
        else:
            if error is not None:
                outcome = Outcome(charger_id, charger.version, action, "callerror", error=error)
            else:
                outcome = Outcome(charger_id, charger.version, action, "answered", response=result,
                                  problem=result_problem(action, result or {}, charger.version))
        outcome.took_ms = round((time.monotonic() - began) * 1000, 1)
    # the audit row goes with the next batch: the answer is the charger's, and waiting on the disk would only
    # add its fsync to every operation (the frames are in the charger's journal either way)
    store.write_soon(lambda c: record(c, outcome, payload, who))
    return outcome


def record(conn: sqlite3.Connection, outcome: Outcome, payload: dict, who: str) -> int:
    """Write the audit row of an operation; its id."""
    cur = conn.execute(
        "INSERT INTO operations (at, who, charger_id, action, request, status, response, error, problem, took_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (now_iso(), who, outcome.charger, outcome.action, json.dumps(payload), outcome.status,
         None if outcome.response is None else json.dumps(outcome.response),
         None if outcome.error is None else json.dumps(outcome.error), outcome.problem, outcome.took_ms))
    return int(cur.lastrowid)


def listed(conn: sqlite3.Connection, *, charger_id: str | None = None, limit: int = 100) -> list[dict]:
    """The newest operations (of one charger), newest first."""
    sql = ("SELECT id, at, who, charger_id, action, request, status, response, error, problem, took_ms"
           " FROM operations")
    args: tuple = ()
    if charger_id is not None:
        sql += " WHERE charger_id = ?"
        args = (charger_id,)
    rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
    out = []
    for i, at, who, cid, action, request, status, response, error, problem, took in rows:
        out.append({"id": i, "at": at, "who": who, "charger": cid, "action": action, "request": json.loads(request),
                    "status": status, "response": json.loads(response) if response else None,
                    "error": json.loads(error) if error else None, "problem": problem, "took_ms": took})
    return out
