"""Stock projection from forecast quantiles (api/stock.py): shortages at p50 and at the service level, the order."""

from __future__ import annotations

import pytest

from api.stock import NoForecast, StockError, project, service_quantile

WEEKS = ["2024-03-04", "2024-03-11", "2024-03-18", "2024-03-25", "2024-04-01"]


def forecast(p50: float = 3.0, p90: float = 5.0) -> list[dict]:
    return [{"forecast_date": w, "location": None, "p10": 1.0, "p50": p50, "p90": p90} for w in WEEKS]


def test_stock_for_two_periods_runs_short_in_period_three_at_p50():
    plan = project("A", forecast(), on_hand=7, lead_time=1, service_level=0.9)
    assert [p["stock_p50"] for p in plan.periods] == [4, 1, -2, -5, -8]
    assert plan.shortage_p50 == WEEKS[2]
    assert plan.shortage_service == WEEKS[1]  # p90: 7 - 5 - 5 < 0 in week two
    assert plan.order_by == WEEKS[0] and not plan.late  # one week of lead time before week two
    assert plan.order_quantity == 5 * 5 - 7  # the horizon's p90 demand beyond the stock


def test_an_order_that_should_have_gone_out_already_is_late():
    plan = project("A", forecast(), on_hand=4, lead_time=2)
    assert plan.shortage_service == WEEKS[0] and plan.order_by == WEEKS[0] and plan.late


def test_enough_stock_needs_no_order():
    plan = project("A", forecast(), on_hand=100)
    assert plan.shortage_p50 is plan.shortage_service is plan.order_by is None and plan.order_quantity == 0


def test_the_service_level_picks_the_quantile_at_or_above_it():
    assert service_quantile(["p10", "p50", "p90"], 0.5) == "p50"
    assert service_quantile(["p10", "p50", "p90"], 0.8) == "p90"
    with pytest.raises(StockError, match="no forecast quantile at or above service level 0.95"):
        service_quantile(["p10", "p50", "p90"], 0.95)
    with pytest.raises(StockError, match="at least 0.5"):
        service_quantile(["p10", "p50", "p90"], 0.3)


def test_locations_are_planned_apart_and_a_missing_forecast_is_named():
    rows = [{**r, "location": "s1"} for r in forecast(p50=1)] + [{**r, "location": "s2"} for r in forecast(p50=4)]
    assert project("A", rows, on_hand=5, location="s1").shortage_p50 is None
    assert project("A", rows, on_hand=5, location="s2").shortage_p50 == WEEKS[1]
    with pytest.raises(NoForecast, match="'A' at 's3'"):
        project("A", rows, on_hand=5, location="s3")
    with pytest.raises(StockError, match="must not be negative"):
        project("A", forecast(), on_hand=-1)
