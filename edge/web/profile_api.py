"""Raising a charger's security profile over OCPP (owners; `edge.operations.security_profiles`):

    POST /api/chargers/{id}/security-profile {"profile": 2, "url": "wss://edge.site:9443/ocpp"}
    GET  /api/chargers/{id}/security-profile     {"site", "own", "asked"}

The charger is sent the steps in turn (1.6 ChangeConfiguration SecurityProfile; 2.0.1 SetNetworkProfile,
NetworkConfigurationPriority, Reset OnIdle), each answered by the charger; the site then waits for it at the
new profile and, once it has come, refuses the old one. 422 when the site cannot take the charger at that
profile (no TLS port, no CA, no password), 409 when the charger is not connected; a step the charger refuses
ends the raise there (`refused_at`, its answer), and the charger stays where it was."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from edge.operations import changes
from edge.operations import security_profiles as profiles
from edge.web.auth import need
from edge.web.operations_api import Operator

_DONE = {"ChangeConfiguration": ("Accepted",), "SetNetworkProfile": ("Accepted",), "Reset": ("Accepted", "Scheduled")}


class Raise(BaseModel):
    profile: int = Field(ge=1, le=3)
    url: str | None = Field(None, max_length=512)  # where the charger reaches the edge at the new profile


def _url(cfg: Any, target: int) -> str:
    ocpp = cfg.ocpp
    if ocpp.host in ("0.0.0.0", "::", ""):
        raise profiles.ProfileError("say where the charger reaches the edge (url): ocpp.host listens on every address")
    port = (ocpp.tls_port or ocpp.port) if target >= 2 else ocpp.port
    return f"{'wss' if target >= 2 else 'ws'}://{ocpp.host}:{port}/ocpp"


def register(app: FastAPI, edge: Any, ops: Operator) -> None:
    owner = Depends(need("owner", edge.store))

    @app.get("/api/chargers/{charger_id}/security-profile", dependencies=[Depends(need("viewer", edge.store))])
    async def standing(charger_id: str) -> dict:
        own, upgrade = profiles.standing(edge.store.db.conn, charger_id)
        return {"charger": charger_id, "site": edge.cfg.ocpp.security_profile, "own": own, "asked": upgrade}

    @app.post("/api/chargers/{charger_id}/security-profile")
    async def raise_profile(charger_id: str, body: Raise, who: str = owner) -> JSONResponse:
        cfg, conn = edge.cfg, edge.store.db.conn
        own, _ = profiles.standing(conn, charger_id)
        listed = cfg.ocpp.chargers.get(charger_id)
        try:
            profiles.check(cfg.ocpp.security_profile, bool(cfg.ocpp.tls_port) or cfg.ocpp.security_profile >= 2,
                           bool(cfg.ocpp.client_ca), bool(listed and listed.password_hash), own, body.profile)
            url = body.url or _url(cfg, body.profile)
            if not url.startswith("wss://" if body.profile >= 2 else "ws://"):
                raise profiles.ProfileError(f"profile {body.profile} is reached at a "
                                            f"{'wss' if body.profile >= 2 else 'ws'}:// address, got {url!r}")
        except profiles.ProfileError as e:
            raise HTTPException(422, str(e)) from None
        if edge.chargers.connected(charger_id) is None:
            raise HTTPException(409, f"charger {charger_id} is not connected")
        version = ops.version_of(charger_id)
        priority = conn.execute("SELECT value FROM device_model WHERE charger_id = ? AND attribute = 'Actual' AND"
                                " key = 'OCPPCommCtrlr.NetworkConfigurationPriority'", (charger_id,)).fetchone()
        steps = profiles.steps(version, body.profile, url, priority[0] if priority else None)
        done = []
        for i, (action, payload) in enumerate(steps):
            last = i == len(steps) - 1
            if last:  # asked before the step after which the charger reconnects: it may be back at once
                await edge.store.write(lambda c: _asked(c, charger_id, who, max(own, cfg.ocpp.security_profile),
                                                        body.profile))
            outcome = await ops.operate(charger_id, action, payload, who)
            done.append(outcome.as_dict())
            said = (outcome.response or {})
            ok = outcome.status == "answered" and (
                said.get("status") in _DONE.get(action, ("Accepted",)) if action != "SetVariables"
                else all(r.get("attributeStatus") == "Accepted" for r in said.get("setVariableResult") or [{}]))
            if not ok:
                if last:
                    await edge.store.write(lambda c: profiles.asked(c, charger_id, None))
                return JSONResponse({"charger": charger_id, "asked": None, "refused_at": action, "steps": done},
                                    status_code=200 if outcome.status in ("answered", "callerror") else 504)
        return JSONResponse({"charger": charger_id, "asked": body.profile, "url": url, "steps": done})


def _asked(conn: Any, charger_id: str, who: str, now: int, target: int) -> None:
    profiles.asked(conn, charger_id, target)
    changes.record(conn, who, "charger.security_profile", charger_id, {"profile": now}, {"profile": target})
