"""What a session costs: energy by kWh (with time-of-use bands), minutes, a session fee and an idle fee.

Pure functions of the tariff and the charger's own readings (meter start/stop, Energy.Active.Import.Register
samples, the charger's timestamps). Amounts are exact Decimals in minor units until `total_minor`, which is
rounded half-up once.

- Energy: each interval between readings is priced at the rate in force, split at band edges in proportion
  to time (a reading every few minutes across 22:00 puts part of its energy on each side).
- Minutes: from start to stop.
- Idle: the time after the energy last rose, less `idle_grace_minutes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from edge.money import MoneyError, rate_to_minor, round_minor

_ZERO = Decimal(0)
RATE_KEYS = ("per_kwh", "per_minute", "session_fee", "idle_per_minute")


class TariffError(ValueError):
    """A tariff that cannot be used; the message names the key (``tariff.per_kwh: ...``)."""


@dataclass(frozen=True)
class Band:
    start_min: int  # minutes after local midnight
    end_min: int  # may be ≤ start_min: the band runs over midnight
    per_kwh: Decimal  # minor units

    def covers(self, minute_of_day: float) -> bool:
        if self.start_min < self.end_min:
            return self.start_min <= minute_of_day < self.end_min
        return minute_of_day >= self.start_min or minute_of_day < self.end_min


@dataclass(frozen=True)
class Tariff:
    per_kwh: Decimal = _ZERO
    per_minute: Decimal = _ZERO
    session_fee: Decimal = _ZERO
    idle_per_minute: Decimal = _ZERO
    idle_grace_minutes: float = 0.0
    bands: tuple[Band, ...] = field(default_factory=tuple)
    timezone: str = "UTC"

    def rate_at(self, when: datetime) -> Decimal:
        band = band_at(self, when)
        return self.per_kwh if band is None else band.per_kwh


@dataclass
class Cost:
    energy_wh: int = 0
    minutes: Decimal = _ZERO
    idle_minutes: Decimal = _ZERO
    energy_minor: Decimal = _ZERO
    time_minor: Decimal = _ZERO
    idle_minor: Decimal = _ZERO
    fee_minor: Decimal = _ZERO

    @property
    def total_minor(self) -> int:
        return round_minor(self.energy_minor + self.time_minor + self.idle_minor + self.fee_minor)

    def as_dict(self) -> dict:
        return {"energy_wh": self.energy_wh, "minutes": float(round(self.minutes, 2)),
                "idle_minutes": float(round(self.idle_minutes, 2)), "energy_minor": round_minor(self.energy_minor),
                "time_minor": round_minor(self.time_minor), "idle_minor": round_minor(self.idle_minor),
                "fee_minor": round_minor(self.fee_minor), "cost_minor": self.total_minor}


def _minutes(key: str, text: object) -> int:
    try:
        hours, minutes = str(text).split(":")
        h, m = int(hours), int(minutes)
    except ValueError:
        raise TariffError(f"{key}: expected HH:MM, got {text!r}") from None
    if not (0 <= h <= 24 and 0 <= m < 60 and h * 60 + m <= 1440):
        raise TariffError(f"{key}: expected HH:MM, got {text!r}")
    return (h * 60 + m) % 1440


def build_tariff(spec: dict, exponent: int, timezone: str, prefix: str = "tariff") -> Tariff:
    """A `Tariff` from its written form: rates as decimal strings in major units, bands as HH:MM.
    Shared by the config file and the cloud's tariff command; errors name the key."""
    known = set(RATE_KEYS) | {"idle_grace_minutes", "bands"}
    for key in spec:
        if key not in known:
            raise TariffError(f"{prefix}.{key}: unknown key (known: {', '.join(sorted(known))})")

    def rate(key: str, value: object) -> Decimal:
        if not isinstance(value, str):
            raise TariffError(f"{key}: expected a decimal string such as \"12.50\", got {value!r}")
        try:
            return rate_to_minor(value, exponent)
        except MoneyError as e:
            raise TariffError(f"{key}: {e}") from None

    rates = {k: rate(f"{prefix}.{k}", spec.get(k, "0")) for k in RATE_KEYS}
    grace = spec.get("idle_grace_minutes", 0)
    if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
        raise TariffError(f"{prefix}.idle_grace_minutes: expected a number of minutes ≥ 0, got {grace!r}")
    bands_in = spec.get("bands") or []
    if not isinstance(bands_in, list):
        raise TariffError(f"{prefix}.bands: expected a list")
    bands = []
    for i, band in enumerate(bands_in):
        name = f"{prefix}.bands[{i}]"
        if not isinstance(band, dict):
            raise TariffError(f"{name}: expected a table with start, end and per_kwh")
        unknown = sorted(set(band) - {"start", "end", "per_kwh"})
        if unknown:
            raise TariffError(f"{name}.{unknown[0]}: unknown key (known: start, end, per_kwh)")
        made = Band(_minutes(f"{name}.start", band.get("start")), _minutes(f"{name}.end", band.get("end")),
                    rate(f"{name}.per_kwh", band.get("per_kwh")))
        if made.start_min == made.end_min:
            raise TariffError(f"{name}: start and end are the same time (a band of no time, or all day?)")
        for j, other in enumerate(bands):
            if _overlap(made, other):
                raise TariffError(f"{name}: overlaps {prefix}.bands[{j}] (which price would apply?)")
        bands.append(made)
    return Tariff(per_kwh=rates["per_kwh"], per_minute=rates["per_minute"], session_fee=rates["session_fee"],
                  idle_per_minute=rates["idle_per_minute"], idle_grace_minutes=float(grace), bands=tuple(bands),
                  timezone=timezone)


def _spans(band: Band) -> list[tuple[int, int]]:
    if band.start_min < band.end_min:
        return [(band.start_min, band.end_min)]
    return [(band.start_min, 1440), (0, band.end_min)]


def _overlap(a: Band, b: Band) -> bool:
    return any(p < y and x < q for p, q in _spans(a) for x, y in _spans(b))


def _major(minor: Decimal, exponent: int) -> str:
    """A rate in minor units in its written form: at least the currency's decimals, more only when it has them."""
    value = minor.scaleb(-exponent)
    text = f"{value:.{exponent}f}"
    return text if Decimal(text) == value else format(value.normalize(), "f")


def hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def spec_of(tariff: Tariff, exponent: int) -> dict:
    """The written form of a tariff (what `build_tariff` reads): rates in major units as strings."""
    spec: dict = {k: _major(getattr(tariff, k), exponent) for k in RATE_KEYS}
    grace = tariff.idle_grace_minutes
    spec["idle_grace_minutes"] = int(grace) if grace == int(grace) else grace
    spec["bands"] = [{"start": hhmm(b.start_min), "end": hhmm(b.end_min), "per_kwh": _major(b.per_kwh, exponent)}
                     for b in tariff.bands]
    return spec


def band_at(tariff: Tariff, when: datetime) -> Band | None:
    """The time-of-use band in force at `when` (None: the plain per-kWh rate)."""
    if not tariff.bands:
        return None
    local = when.astimezone(ZoneInfo(tariff.timezone))
    minute = local.hour * 60 + local.minute + local.second / 60
    return next((b for b in tariff.bands if b.covers(minute)), None)


def quote(tariff: Tariff, start: datetime, energy_wh: int, charging_minutes: float, idle_minutes: float = 0) -> Cost:
    """What a session would cost: `energy_wh` delivered evenly over `charging_minutes` from `start`, then the car
    left plugged in for `idle_minutes` (the preview of the tariff editor and the price a driver is shown)."""
    end = start + timedelta(minutes=charging_minutes)
    return session_cost(tariff, start_ts=start, start_wh=0, readings=[(end, energy_wh)],
                        stop_ts=end + timedelta(minutes=idle_minutes), stop_wh=energy_wh)


def utc_key(when: datetime) -> str:
    """A sortable UTC text form of a time (``2026-03-02T17:30:00.000000Z``), for comparisons in SQL."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _band_edges(tariff: Tariff, a: datetime, b: datetime) -> list[datetime]:
    """The band starts and ends strictly between a and b."""
    if not tariff.bands:
        return []
    tz = ZoneInfo(tariff.timezone)
    edges = []
    day = a.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    while day <= b.astimezone(tz):
        for band in tariff.bands:
            for minute in (band.start_min, band.end_min):
                edge = (day + timedelta(minutes=minute)).astimezone(UTC)
                if a < edge < b:
                    edges.append(edge)
        day = (day + timedelta(days=1, hours=2)).replace(hour=0)  # next local midnight, across DST
    return sorted(set(edges))


def _energy_cost(tariff: Tariff, a: datetime, b: datetime, wh: int) -> Decimal:
    if wh <= 0:
        return _ZERO
    if b <= a:
        return tariff.rate_at(a) * wh / 1000
    cost = _ZERO
    points = [a, *_band_edges(tariff, a, b), b]
    span = Decimal((b - a).total_seconds())
    for p, q in zip(points, points[1:], strict=False):
        share = Decimal((q - p).total_seconds()) / span
        cost += tariff.rate_at(p + (q - p) / 2) * wh * share / 1000
    return cost


def session_cost(tariff: Tariff, *, start_ts: datetime, start_wh: int, readings: list[tuple[datetime, int]],
                 stop_ts: datetime, stop_wh: int) -> Cost:
    """The cost of a session from its meter readings (timestamp, Wh) between start and stop."""
    points = [(start_ts, start_wh)]
    for ts, wh in sorted(readings):
        if start_ts <= ts <= stop_ts and wh >= points[-1][1]:
            points.append((ts, wh))
    if stop_wh >= points[-1][1]:
        points.append((max(stop_ts, points[-1][0]), stop_wh))
    cost = Cost()
    last_rise = start_ts
    for (a, wa), (b, wb) in zip(points, points[1:], strict=False):
        if wb > wa:
            cost.energy_minor += _energy_cost(tariff, a, b, wb - wa)
            last_rise = b
    cost.energy_wh = max(0, points[-1][1] - start_wh)
    seconds = max(0.0, (stop_ts - start_ts).total_seconds())
    cost.minutes = Decimal(seconds) / 60
    cost.time_minor = tariff.per_minute * cost.minutes
    idle = Decimal(max(0.0, (stop_ts - last_rise).total_seconds())) / 60 - Decimal(tariff.idle_grace_minutes)
    cost.idle_minutes = max(_ZERO, idle)
    cost.idle_minor = tariff.idle_per_minute * cost.idle_minutes
    cost.fee_minor = tariff.session_fee
    return cost
