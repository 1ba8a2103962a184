"""Stock projection and reorder from an item's forecast quantiles: what `demand stock` and `GET /items/{id}/stock`
answer.

From the stock on hand, the stock after each forecast period is projected twice: with the median demand (p50) and
with the demand quantile of the service level (a service level of 0.9 uses p90: enough stock for nine periods in
ten). Summing a quantile over periods treats the periods' demands as moving together, which overstates the spread of
the total: the service-level projection errs towards running out early, the safe side for a reorder. The first
period whose projected stock falls below zero is the shortage; an order must arrive before the service-level
shortage, so it is placed `lead_time` periods before it, for what the horizon needs at the service level beyond the
stock on hand.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from typing import Any


class StockError(ValueError):
    """Input a projection cannot be made from (a service level the forecast has no quantile for, negative stock)."""


class NoForecast(StockError):
    """The latest run has no forecast for the item (and location)."""


@dataclass(frozen=True)
class StockPlan:
    item_id: str
    location: str | None
    on_hand: float
    lead_time: int  # periods between placing an order and receiving it
    service_level: float
    quantile: str  # the forecast column the service level uses, e.g. p90
    periods: list[dict[str, Any]] = field(default_factory=list)  # date, demand_p50, stock_p50, demand_q, stock_q
    shortage_p50: str | None = None  # the first period without stock at the median demand
    shortage_service: str | None = None  # ... at the service level's quantile
    order_quantity: float = 0.0
    order_by: str | None = None  # the latest period to place the order in
    late: bool = False  # the order would have had to be placed before the first forecast period

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def service_quantile(columns: list[str], service_level: float) -> str:
    """The forecast quantile column (pNN) at or just above the service level."""
    if not 0.5 <= service_level < 1:
        raise StockError(f"service level {service_level} must be at least 0.5 and below 1")
    levels = sorted(int(c[1:]) for c in columns if c[:1] == "p" and c[1:].isdigit())
    above = [q for q in levels if q >= round(service_level * 100)]
    if not above:
        raise StockError(f"no forecast quantile at or above service level {service_level}: the forecast has {levels}")
    return f"p{above[0]}"


def project(
    item_id: str,
    forecast: list[dict[str, Any]],
    on_hand: float,
    lead_time: int = 1,
    service_level: float = 0.9,
    location: str | None = None,
) -> StockPlan:
    """The plan for one item (and location) from its forecast rows (forecast_date, p10, p50, p90, ...; those of other
    locations are left out)."""
    forecast = [r for r in forecast if r.get("location") == location]
    if not forecast:
        where = f" at {location!r}" if location else ""
        raise NoForecast(f"no forecast for item {item_id!r}{where} in the latest run")
    if on_hand < 0 or lead_time < 0:
        raise StockError(f"on hand ({on_hand}) and lead time ({lead_time}) must not be negative")
    rows = sorted(forecast, key=lambda r: str(r["forecast_date"]))
    q = service_quantile(list(rows[0]), service_level)
    stock_p50, stock_q = on_hand, on_hand
    periods: list[dict[str, Any]] = []
    for row in rows:
        day = str(row["forecast_date"])[:10]
        stock_p50 -= float(row["p50"])
        stock_q -= float(row[q])
        periods.append({"date": day, "demand_p50": float(row["p50"]), "stock_p50": round(stock_p50, 6),
                        f"demand_{q}": float(row[q]), f"stock_{q}": round(stock_q, 6)})  # fmt: skip

    def first_short(column: str) -> str | None:
        return next((p["date"] for p in periods if p[column] < 0), None)

    shortage_p50, shortage_service = first_short("stock_p50"), first_short(f"stock_{q}")
    plan = StockPlan(item_id, location, on_hand, lead_time, service_level, q, periods, shortage_p50, shortage_service)
    if shortage_service is None:
        return plan
    index = [p["date"] for p in periods].index(shortage_service)
    first = date.fromisoformat(periods[0]["date"])
    step = date.fromisoformat(periods[1]["date"]) - first if len(periods) > 1 else timedelta(days=1)
    order_by = max(date.fromisoformat(shortage_service) - lead_time * step, first)
    return replace(
        plan,
        order_quantity=round(-periods[-1][f"stock_{q}"], 6),  # what the horizon needs beyond the stock on hand
        order_by=order_by.isoformat(),
        late=index < lead_time,  # it would have had to go out before the first forecast period
    )
