"""Charging limits, reservations and the 2.0.1 device model, over the operations of `edge.operations`.

    POST   /api/chargers/{id}/charging-limit {"connector", "amps" | "watts", "until"}   SetChargingProfile
    DELETE /api/chargers/{id}/charging-limit?connector=N                             ClearChargingProfile
    GET    /api/chargers/{id}/charging-limit?connector=N                             GetCompositeSchedule
    POST   /api/chargers/{id}/reservations {"connector", "card", "minutes"}          ReserveNow
    GET    /api/chargers/{id}/reservations          DELETE .../reservations/{n}      CancelReservation
    GET    /api/chargers/{id}/device-model          what the charger's NotifyReports said (2.0.1)

Answers as the other operations: the charger's real response, 409 not connected, 504 no answer in time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from edge.money import UidError, normalise_uid
from edge.operations import intents, reservations
from edge.store import reads
from edge.web.auth import need
from edge.web.operations_api import MAX_CONNECTOR, MAX_ID, Operator

ConnectorQuery = Annotated[int, Query(ge=0, le=MAX_CONNECTOR)]


class Limit(BaseModel):
    connector: int = Field(0, ge=0, le=MAX_CONNECTOR)
    amps: float | None = Field(None, ge=0)
    watts: float | None = Field(None, ge=0)
    until: datetime | None = None


class Reservation(BaseModel):
    connector: int = Field(1, ge=1, le=MAX_CONNECTOR)
    card: str
    minutes: int | None = Field(None, ge=1, le=1440)


def _iso(at: datetime) -> str:
    if at.tzinfo is None:
        raise HTTPException(422, f"a time needs its zone (e.g. {at.isoformat()}+08:00 or Z)")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def register(app: FastAPI, edge: Any, ops: Operator) -> None:
    viewer, operator = Depends(need("viewer", edge.store)), Depends(need("operator", edge.store))

    @app.post("/api/chargers/{charger_id}/charging-limit")
    async def set_limit(charger_id: str, body: Limit, who: str = operator) -> JSONResponse:
        """Cap a connector (0: the whole charger) at `amps` or `watts`, until `until` or for good."""
        if (body.amps is None) == (body.watts is None):
            raise HTTPException(422, "give the limit in amps or in watts (one of them)")
        limit, unit = (body.amps, "A") if body.amps is not None else (body.watts, "W")
        start = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        action, payload = ops.say(intents.charging_limit, charger_id, body.connector, limit, unit, start,
                                  _iso(body.until) if body.until else None)
        return ops.answer(await ops.operate(charger_id, action, payload, who))

    @app.delete("/api/chargers/{charger_id}/charging-limit")
    async def clear_limit(charger_id: str, connector: ConnectorQuery = 0, who: str = operator) -> JSONResponse:
        action, payload = ops.say(intents.clear_charging_limit, charger_id, connector)
        return ops.answer(await ops.operate(charger_id, action, payload, who))

    @app.get("/api/chargers/{charger_id}/charging-limit")
    async def composite(charger_id: str, connector: ConnectorQuery = 0, seconds: int = 86400, unit: str = "A",
                        who: str = viewer) -> JSONResponse:
        """What the charger will allow over the next `seconds`, all limits combined (GetCompositeSchedule)."""
        if not 1 <= seconds <= 7 * 86400 or unit not in ("A", "W"):
            raise HTTPException(422, "seconds is 1 to 604800 and unit A or W")
        action, payload = ops.say(intents.composite_schedule, charger_id, connector, seconds, unit)
        return ops.answer(await ops.operate(charger_id, action, payload, who))

    @app.post("/api/chargers/{charger_id}/reservations")
    async def reserve(charger_id: str, body: Reservation, who: str = operator) -> JSONResponse:
        """Hold a connector for a card; in standalone the edge refuses other cards there until it ends."""
        try:
            uid = normalise_uid(body.card)
        except UidError as e:
            raise HTTPException(422, str(e)) from None
        minutes = body.minutes or edge.cfg.operations.reservation_minutes
        try:
            row = await edge.store.write(lambda c: reservations.create(c, charger_id, body.connector, uid, minutes,
                                                                        who))
        except reservations.ReservationError as e:
            raise HTTPException(409, str(e)) from None
        action, payload = ops.say(intents.reserve, charger_id, row["id"], body.connector, uid, row["expires"])
        outcome = await ops.operate(charger_id, action, payload, who)
        accepted = outcome.status == "answered" and (outcome.response or {}).get("status") == "Accepted"
        await edge.store.write(lambda c: reservations.set_status(c, row["id"], "active" if accepted else "refused"))
        return ops.answer(outcome, reservation=reservations.get(edge.store.db.conn, row["id"]))

    @app.get("/api/chargers/{charger_id}/reservations", dependencies=[viewer])
    async def reservations_of(charger_id: str) -> list[dict]:
        return reservations.listed(edge.store.db.conn, charger_id)

    @app.delete("/api/chargers/{charger_id}/reservations/{reservation_id}")
    async def cancel(charger_id: str, reservation_id: Annotated[int, Path(ge=1, le=MAX_ID)], who: str = operator) -> JSONResponse:
        row = reservations.get(edge.store.db.conn, reservation_id)
        if row is None or row["charger_id"] != charger_id:
            raise HTTPException(404, f"no reservation {reservation_id} on charger {charger_id}")
        if row["status"] not in ("active", "requested"):
            raise HTTPException(409, f"reservation {reservation_id} is {row['status']} already")
        action, payload = ops.say(intents.cancel_reservation, charger_id, reservation_id)
        outcome = await ops.operate(charger_id, action, payload, who)
        if outcome.status == "answered":  # Accepted, or Rejected: the charger has no such reservation (any more)
            await edge.store.write(lambda c: reservations.set_status(c, reservation_id, "cancelled"))
        return ops.answer(outcome, reservation=reservations.get(edge.store.db.conn, reservation_id))

    @app.get("/api/chargers/{charger_id}/device-model", dependencies=[viewer])
    async def device_model(charger_id: str) -> list[dict]:
        """The charger's variables as its NotifyReports said them (GET .../configuration asks for a report)."""
        return reads.device_variables(edge.store.db.conn, charger_id)
