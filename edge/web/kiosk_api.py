"""What the kiosk (`sitekeeper kiosk`, `kiosk_ui/`) asks of the edge: it never opens the database, only these
routes (with the edge's local token) and the live event stream (`/api/events`: the kiosk reader's taps).

    GET  /api/kiosk/state              the site, the price now, every connector with its state, its pay
                                       address, its pay session's state and its running session's figures
    POST /api/kiosk/start              {tap_ref, charger, connector}: start there for the card just tapped
    POST /api/kiosk/stop               {tap_ref, charger, connector}: the same card tapped again stops it
    GET  /api/kiosk/receipt/{session}  a finished session: kWh, time, cost, the card's balance now, its
                                       receipt address

Amounts come formatted in the site's currency (the kiosk shows them as they are) and as minor units; card
ids only masked. A tap is named by the `tap_ref` its event carried, never by the card's UID."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, Field

from edge.billing import ledger, owner, pay
from edge.billing import sessions as billing
from edge.billing.tariff import band_at, hhmm
from edge.clock import parse_ts
from edge.money import format_money
from edge.store import journal
from edge.web import stickers
from edge.web.auth import need


class KioskAct(BaseModel):
    tap_ref: str = Field(max_length=64)
    charger: str = Field(min_length=1, max_length=64)
    connector: int = Field(ge=1, le=100)


def _money(minor: int | None) -> str:
    return format_money(int(minor or 0), billing.SETTINGS.exponent, billing.SETTINGS.currency)


def _minutes(start: str | None, end: str | None = None) -> int:
    a, b = parse_ts(start), (parse_ts(end) if end else datetime.now(UTC))
    return max(0, int((b - a).total_seconds() // 60)) if a and b else 0


def _power_w(conn: Any, charger_id: str, tx_key: str) -> int | None:
    row = conn.execute("SELECT value, unit FROM meter_values WHERE charger_id = ? AND tx_key = ? AND measurand ="
                       " 'Power.Active.Import' AND phase IS NULL ORDER BY id DESC LIMIT 1",
                       (charger_id, tx_key)).fetchone()
    try:
        return None if row is None else round(float(row[0]) * (1000 if row[1] == "kW" else 1))
    except (TypeError, ValueError):
        return None


def _session(conn: Any, charger_id: str, connector: int) -> dict | None:
    row = conn.execute("SELECT id, tx_key, started_at, id_tag, card_kind FROM transactions WHERE charger_id = ?"
                       " AND stopped_at IS NULL AND coalesce(evse_id, connector_id) = ? AND"
                       " coalesce(auth_status, 'Accepted') = 'Accepted' ORDER BY id DESC LIMIT 1",
                       (charger_id, connector)).fetchone()
    if row is None:
        return None
    detail = billing.breakdown(conn, row[0]) or {}
    readings = detail.get("readings") or []
    start_wh = conn.execute("SELECT meter_start FROM transactions WHERE id = ?", (row[0],)).fetchone()[0]
    energy = max(0, (readings[-1][1] if readings else start_wh or 0) - (start_wh or 0))
    cost = (detail.get("cost") or {}).get("total_minor", 0) if row[4] == "commercial" else 0
    return {"tx_id": row[0], "energy_wh": energy, "cost_minor": cost, "cost": _money(cost),
            "minutes": _minutes(row[2]), "power_w": _power_w(conn, charger_id, row[1]),
            "card_masked": journal.mask_uid(row[3] or "")}


def _prices(conn: Any) -> dict:
    spec = owner.tariffs(conn, billing.SETTINGS.tariff, billing.SETTINGS.exponent)["in_force"]["tariff"]
    cur = billing.SETTINGS.currency
    tariff = billing.tariff_for(conn, datetime.now(UTC).isoformat())
    band = band_at(tariff, datetime.now(UTC))

    def price(major: str) -> str:
        return format_money(round(float(major) * 10 ** billing.SETTINGS.exponent), billing.SETTINGS.exponent, cur)

    return {"per_kwh": price(spec["per_kwh"]), "per_minute": price(spec["per_minute"]),
            "session_fee": price(spec["session_fee"]), "idle_per_minute": price(spec["idle_per_minute"]),
            "idle_grace_minutes": spec["idle_grace_minutes"],
            "bands": [{"start": b["start"], "end": b["end"], "per_kwh": price(b["per_kwh"])} for b in spec["bands"]],
            "band_now": None if band is None else {"start": hhmm(band.start_min), "end": hhmm(band.end_min),
                                                   "per_kwh": _money(int(band.per_kwh))}}


def register(app: FastAPI, edge: Any, desk: Any) -> None:
    viewer, operator = Depends(need("viewer", edge.store)), Depends(need("operator", edge.store))

    @app.get("/api/kiosk/state", dependencies=[viewer])
    async def kiosk_state() -> dict:
        """All the kiosk shows, in one answer (it asks every couple of seconds)."""
        conn = edge.store.db.conn
        health = edge.health()
        connectors = []
        for charger, number in stickers.connectors(conn):
            status = conn.execute(
                "SELECT status FROM connector_status WHERE charger_id = ? AND (evse_id = ? OR (evse_id = 0 AND"
                " connector_id = ?)) ORDER BY timestamp DESC LIMIT 1", (charger, number, number)).fetchone()
            paying = pay.busy(conn, charger, number)
            connectors.append({
                "charger": charger, "connector": number, "state": status[0] if status else None,
                "connected": edge.connected(charger) is not None, "pay_url": stickers.pay_url(edge.cfg, charger, number),
                "pay_state": paying["state"] if paying else None, "session": _session(conn, charger, number)})
        return {"site": edge.cfg.site.name or edge.cfg.site.id, "currency": billing.SETTINGS.currency,
                "min_start": _money(billing.SETTINGS.min_start_balance), "prices": _prices(conn),
                "connectors": connectors, "qrph": bool(desk is not None and desk.qrph_offered),
                "pay": desk is not None, "provider_away": bool(desk is not None and desk.provider is not None
                                                               and not desk.provider_up),
                "clock_synced": health.get("clock_synced", True),
                "upstream_away": health.get("mode") == "proxy" and
                health.get("upstream_links_up", 0) < health.get("chargers_connected", 0)}

    @app.post("/api/kiosk/start", dependencies=[operator])
    async def kiosk_start(body: KioskAct) -> dict:
        """Start on a connector for the card whose tap carried `tap_ref` (refused, with why, as a tap is)."""
        return await edge.taps.start_for(body.tap_ref, body.charger, body.connector)

    @app.post("/api/kiosk/stop", dependencies=[operator])
    async def kiosk_stop(body: KioskAct) -> dict:
        """Stop the session on a connector, if it is the tapped card's."""
        return await edge.taps.stop_for(body.tap_ref, body.charger, body.connector)

    @app.get("/api/kiosk/receipt/{tx_id}", dependencies=[viewer])
    async def kiosk_receipt(tx_id: int) -> dict:
        """A finished session as its receipt shows it (404 until it has ended)."""
        conn = edge.store.db.conn
        if not 1 <= tx_id < 2**63:
            raise HTTPException(404, f"no ended session {tx_id}")
        row = conn.execute("SELECT energy_wh, started_at, stopped_at, captured_minor, account_id, receipt_code"
                           " FROM transactions WHERE id = ? AND stopped_at IS NOT NULL", (tx_id,)).fetchone()
        if row is None:
            raise HTTPException(404, f"no ended session {tx_id}")
        code = row[5]
        return {"energy_wh": row[0] or 0, "minutes": _minutes(row[1], row[2]), "cost": _money(row[3]),
                "cost_minor": row[3] or 0, "balance": _money(ledger.available(conn, row[4])) if row[4] else None,
                "receipt_url": f"{stickers.public_base(edge.cfg)}/receipt/{code}" if code else None}
