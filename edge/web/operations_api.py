"""The operations API: any OCPP call, and the owner's intents (reset, unlock, availability, start, stop,
trigger, clear the cache, configuration), on a connected charger, answered with the charger's real response.

    POST /api/chargers/{id}/call/{Action}?timeout=S    the payload as the body (the charger's version)
    POST /api/chargers/{id}/reset {"hard"} | /unlock {"connector"} | /availability {"connector", "operative"}
         /start {"connector", "card"} | /stop {"transaction"} | /trigger {"message", "connector"} | /clear-cache
    GET  /api/chargers/{id}/configuration[?key=K]      PUT {"key", "value"}
    GET  /api/operations[?charger=ID&limit=N]          the audit, newest first
    POST /api/chargers/{id}/approve                    (owners) a charger waiting for approval is the site's

200 with {"charger", "version", "action", "status": "answered" | "callerror", "response" | "error"}; 409
not_connected; 504 timeout; 422 a payload or intent that does not fit (nothing sent). Operators and owners
may operate; viewers read the configuration and the audit."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from edge.money import UidError, normalise_uid
from edge.operations import calls, changes, intents, registrations
from edge.operations.calls import InvalidPayload, Outcome
from edge.store import reads
from edge.web.auth import need

_CODES = {"answered": 200, "callerror": 200, "not_connected": 409, "timeout": 504}
MAX_CONNECTOR = 1000  # more than any charger has; bounds keep numbers within what SQLite and OCPP hold
MAX_ID = 2**53  # a row id or transaction id (JSON numbers stay exact below this)


class Reset(BaseModel):
    hard: bool = False


class Connector(BaseModel):
    connector: int = Field(1, ge=1, le=MAX_CONNECTOR)


class Availability(BaseModel):
    connector: int = Field(0, ge=0, le=MAX_CONNECTOR)
    operative: bool = True


class Start(BaseModel):
    connector: int = Field(1, ge=1, le=MAX_CONNECTOR)
    card: str


class Stop(BaseModel):
    transaction: int = Field(ge=1, le=MAX_ID)


class Trigger(BaseModel):
    message: str
    connector: int | None = Field(None, ge=1, le=MAX_CONNECTOR)


class Setting(BaseModel):
    key: str
    value: str


class Operator:
    """What the operation routes share: carry out an operation (checked, recorded) and answer with its outcome."""

    def __init__(self, edge: Any):
        self.edge = edge

    async def operate(self, charger_id: str, action: str, payload: dict, who: str,
                      timeout: float = 30.0) -> Outcome:
        edge = self.edge
        if edge.cfg.upstream.mode == "proxy" and not edge.cfg.operations.in_proxy:
            raise HTTPException(403, "operations are off in proxy mode ([operations] in_proxy = false):"
                                     " the cloud CSMS operates the chargers")
        if not 0 < timeout <= 300:
            raise HTTPException(422, "timeout must be above 0 and at most 300 seconds")
        try:
            return await calls.run(edge.chargers, edge.store, charger_id, action, payload, who=who, timeout=timeout)
        except InvalidPayload as e:
            raise HTTPException(422, str(e)) from None

    async def approve(self, charger_id: str, who: str) -> dict:
        """Make a charger waiting for the owner the site's (audited) and, if it is connected, ask it to boot again
        (its BootNotification is then Accepted); 404 for a charger never seen."""
        try:
            changed = await self.edge.store.write(lambda c: _approve(c, charger_id, who))
        except registrations.NotWaiting as e:
            raise HTTPException(404, str(e)) from None
        asked = False
        with contextlib.suppress(HTTPException):  # (operations off in proxy mode: the next Boot is accepted)
            action, payload = self.say(intents.trigger, charger_id, "BootNotification", None)
            outcome = await self.operate(charger_id, action, payload, who)
            asked = outcome.status == "answered" and (outcome.response or {}).get("status") == "Accepted"
        return {"charger": charger_id, "approved": True, "changed": changed, "boot_asked": asked}

    @staticmethod
    def answer(outcome: Outcome, **extra: Any) -> JSONResponse:
        return JSONResponse({**outcome.as_dict(), **extra}, status_code=_CODES[outcome.status])

    def version_of(self, charger_id: str) -> str:
        """The charger's version now, or the one it last spoke (the operation is then recorded as
        not_connected, in its words)."""
        charger = self.edge.chargers.connected(charger_id)
        if charger is not None:
            return charger.version
        known = {r["id"]: r.get("ocpp_version") for r in reads.chargers(self.edge.store.db.conn)}
        return known.get(charger_id) or "1.6"

    def say(self, make: Any, charger_id: str, *args: Any) -> tuple[str, dict]:
        """The intent `make(version, *args)` in the charger's version; 422 if it cannot be said."""
        try:
            return make(self.version_of(charger_id), *args)
        except intents.IntentError as e:
            raise HTTPException(422, str(e)) from None


def _approve(conn: Any, charger_id: str, who: str) -> bool:
    changed = registrations.approve(conn, charger_id)
    if changed:
        changes.record(conn, who, "charger.approve", charger_id, "pending", "accepted")
    return changed


def register(app: FastAPI, edge: Any) -> Operator:
    viewer, operator = Depends(need("viewer", edge.store)), Depends(need("operator", edge.store))
    ops = Operator(edge)
    operate, answer, version_of = ops.operate, ops.answer, ops.version_of

    async def intent(charger_id: str, make: Any, who: str, *args: Any) -> JSONResponse:
        action, payload = ops.say(make, charger_id, *args)
        return answer(await operate(charger_id, action, payload, who))

    @app.post("/api/chargers/{charger_id}/call/{action}")
    async def any_call(charger_id: str, action: str, payload: Annotated[dict, Body()], timeout: float = 30.0,
                       who: str = operator) -> JSONResponse:
        """Send `action` with `payload` as the edge's own CALL; the charger's real answer."""
        return answer(await operate(charger_id, action, payload, who, timeout))

    @app.post("/api/chargers/{charger_id}/reset")
    async def reset(charger_id: str, body: Reset | None = None, who: str = operator) -> JSONResponse:
        return await intent(charger_id, intents.reset, who, (body or Reset()).hard)

    @app.post("/api/chargers/{charger_id}/unlock")
    async def unlock(charger_id: str, body: Connector | None = None, who: str = operator) -> JSONResponse:
        return await intent(charger_id, intents.unlock, who, (body or Connector()).connector)

    @app.post("/api/chargers/{charger_id}/availability")
    async def availability(charger_id: str, body: Availability, who: str = operator) -> JSONResponse:
        return await intent(charger_id, intents.availability, who, body.connector, body.operative)

    @app.post("/api/chargers/{charger_id}/trigger")
    async def trigger(charger_id: str, body: Trigger, who: str = operator) -> JSONResponse:
        return await intent(charger_id, intents.trigger, who, body.message, body.connector)

    @app.post("/api/chargers/{charger_id}/clear-cache")
    async def clear_cache(charger_id: str, who: str = operator) -> JSONResponse:
        return await intent(charger_id, intents.clear_cache, who)

    @app.post("/api/chargers/{charger_id}/approve")
    async def approve(charger_id: str, who: str = Depends(need("owner", edge.store))) -> JSONResponse:
        """Make a charger that waits for the owner (`ocpp.new_chargers`) the site's, and, if it is connected,
        ask it for a BootNotification now (TC_B_31), which is then Accepted."""
        return JSONResponse(await ops.approve(charger_id, who))

    @app.get("/api/chargers/{charger_id}/configuration")
    async def get_configuration(charger_id: str, key: Annotated[list[str] | None, Query()] = None,
                                wait: Annotated[float, Query(ge=0, le=120)] = 30.0,
                                who: str = viewer) -> JSONResponse:
        """1.6 GetConfiguration; 2.0.1 GetVariables for `key`s, or without a key a ConfigurationInventory report:
        the answer then waits up to `wait` seconds for its NotifyReport parts (B08) and carries `report`
        (request_id, parts, complete) and the `variables` as stored."""
        if key or version_of(charger_id) == "1.6":
            return await intent(charger_id, intents.get_configuration, who, key)
        conn = edge.store.db.conn
        request_id = conn.execute("SELECT coalesce(max(request_id), 0) + 1 FROM device_reports WHERE charger_id = ?",
                                  (charger_id,)).fetchone()[0]
        action, payload = ops.say(intents.get_configuration, charger_id, None, request_id)
        outcome = await operate(charger_id, action, payload, who)
        if outcome.status != "answered" or (outcome.response or {}).get("status") != "Accepted":
            return answer(outcome)
        until = asyncio.get_running_loop().time() + wait
        while True:
            row = conn.execute("SELECT parts, variables, complete FROM device_reports WHERE charger_id = ? AND"
                               " request_id = ?", (charger_id, request_id)).fetchone()
            if (row is not None and row[2]) or asyncio.get_running_loop().time() >= until:
                break
            await asyncio.sleep(0.2)
        report = {"request_id": request_id, "parts": row[0] if row else 0, "variables": row[1] if row else 0,
                  "complete": bool(row and row[2])}
        return answer(outcome, report=report, variables=reads.device_variables(conn, charger_id))

    @app.put("/api/chargers/{charger_id}/configuration")
    async def set_configuration(charger_id: str, body: Setting, who: str = operator) -> JSONResponse:
        return await intent(charger_id, intents.set_configuration, who, body.key, body.value)

    @app.post("/api/chargers/{charger_id}/start")
    async def start(charger_id: str, body: Start, timeout: float = 30.0, who: str = operator) -> JSONResponse:
        """Ask the charger to start for `card`; with its transaction once it has started it, or why not."""
        try:
            uid = normalise_uid(body.card)
        except UidError as e:
            raise HTTPException(422, str(e)) from None
        action, payload = ops.say(intents.remote_start, charger_id, body.connector, uid,
                                  int(time.time() * 1000) % 2**31)
        before = reads.max_transaction_id(edge.store.db.conn)
        outcome = await operate(charger_id, action, payload, who, timeout)
        if outcome.status != "answered" or (outcome.response or {}).get("status") != "Accepted":
            return answer(outcome, transaction=None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the charger starts once the cable is in: its StartTransaction
            tx = reads.open_transaction_of(edge.store.db.conn, charger_id, uid, before)
            if tx is not None:
                return answer(outcome, transaction=tx)
            await asyncio.sleep(0.2)
        return answer(outcome, transaction=None,
                      note=f"the charger accepted, but no session started in {timeout:g} s (is a car plugged in?)")

    @app.post("/api/chargers/{charger_id}/stop")
    async def stop(charger_id: str, body: Stop, who: str = operator) -> JSONResponse:
        tx = reads.transaction(edge.store.db.conn, body.transaction)
        if tx is None or tx["charger_id"] != charger_id:
            raise HTTPException(404, f"no session {body.transaction} on charger {charger_id}")
        if tx["stopped_at"] is not None:
            raise HTTPException(409, f"session {body.transaction} ended at {tx['stopped_at']}")
        version = version_of(charger_id)
        action, payload = intents.remote_stop(version, tx["id"] if version == "1.6" else None, tx["tx_key"])
        return answer(await operate(charger_id, action, payload, who))

    @app.get("/api/operations", dependencies=[viewer])
    async def operations(charger: str | None = None, limit: int = 100) -> list[dict]:
        if not 1 <= limit <= 1000:
            raise HTTPException(422, "limit must be 1..1000")
        await edge.store.settled()  # the audit rows of operations already answered are written behind them
        return calls.listed(edge.store.db.conn, charger_id=charger, limit=limit)

    return ops
