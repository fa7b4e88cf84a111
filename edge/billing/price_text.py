"""What a charger's display says about money, in the drivers' languages (English, Filipino, Chinese; words
from the drivers' catalogs): the tariff (per kWh and its bands, per minute, session and idle fees, in the site
currency) and a session's final cost. For the 1.6 California pricing messages (priceText / priceTextExtra,
`edge.controller.costs`) and the 2.0.1 personalMessage; the pay pages and the owner's tariff page use
`tariff_lines` too.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from edge import i18n
from edge.billing import owner
from edge.billing import sessions as billing
from edge.clock import parse_ts
from edge.money import format_money, format_price

LANGUAGES = tuple(i18n.DRIVER_LANGUAGES)  # the first is the display's own (priceText), the others extras


def tariff_lines(spec: dict, t: Any, currency: str, *, all_parts: bool = True) -> list[str]:
    """A tariff's lines in the order a driver reads them (per kWh, its bands, per minute, session fee, idle
    fee), amounts with the currency; `t` is the owner's or the drivers' translator (both have the keys).
    Without `all_parts`, a part that costs nothing is left out (a display has little room)."""
    price = lambda major: format_price(major, currency)  # noqa: E731
    shown = lambda key: all_parts or float(spec[key] or 0) > 0  # noqa: E731
    lines = [t("tariff.line.per_kwh", price=price(spec["per_kwh"]))] if shown("per_kwh") or spec.get("bands") \
        else []
    lines += [t("tariff.line.band", start=b["start"], end=b["end"], price=price(b["per_kwh"]))
              for b in spec.get("bands") or []]
    if shown("per_minute"):
        lines.append(t("tariff.line.per_minute", price=price(spec["per_minute"])))
    if shown("session_fee"):
        lines.append(t("tariff.line.session_fee", price=price(spec["session_fee"])))
    if shown("idle_per_minute"):
        lines.append(t("tariff.line.idle", price=price(spec["idle_per_minute"]), grace=spec["idle_grace_minutes"]))
    return lines


def tariff_texts(conn: sqlite3.Connection) -> tuple[tuple[str, str], ...]:
    """The tariff in force, one line per language: ((language, text), ...), the display's own language first."""
    spec = owner.tariffs(conn, billing.SETTINGS.tariff, billing.SETTINGS.exponent)["in_force"]["tariff"]
    out = []
    for lang in LANGUAGES:
        t = i18n.translator(lang, "driver")
        out.append((lang, " · ".join(tariff_lines(spec, t, billing.SETTINGS.currency, all_parts=False))
                    or t("charger.free")))
    return tuple(out)


def final_texts(conn: sqlite3.Connection, charger_id: str,
                tx_key: str) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """A stopped session as its display shows it: what it cost, the energy and the time, per language (() when
    the site did not price it: a card not of the site's), and its receipt's code."""
    row = conn.execute("SELECT card_kind, cost_minor, energy_wh, started_at, stopped_at, receipt_code"
                       " FROM transactions WHERE charger_id = ? AND tx_key = ?", (charger_id, tx_key)).fetchone()
    if row is None or row[0] is None:
        return (), None
    kind, cost_minor, energy_wh, started, stopped, receipt = row
    cost = format_money(0 if kind == "personal" else cost_minor or 0, billing.SETTINGS.exponent,
                        billing.SETTINGS.currency)
    start, stop = parse_ts(started), parse_ts(stopped)
    minutes = round((stop - start).total_seconds() / 60) if start and stop else 0
    return tuple((lang, i18n.translator(lang, "driver")("charger.final", cost=cost,
                                                        kwh=f"{(energy_wh or 0) / 1000:.2f}", minutes=minutes))
                 for lang in LANGUAGES), receipt
