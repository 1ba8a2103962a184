"""What-if scenarios on generator data, where each item's price elasticity is known (streaming.generator.elasticities):
the global model is fitted once by the forecast step and scores price and promotion changes without fitting again."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from bench.forecast import DAYS, holdout, weekly_demand
from core.object_store import LocalObjectStore
from forecast_orchestrator.ensemble import EnsembleConfig, EnsembleModel, complete_selection
from forecast_orchestrator.whatif import (
    PLAUSIBLE_ELASTICITY,
    Change,
    Scenario,
    WhatIfError,
    build_model,
    load_model,
    score,
)
from streaming.generator import GeneratorConfig, elasticities

pytestmark = pytest.mark.slow
CONFIG = GeneratorConfig(seed=29, stores=1, items=24, days=DAYS)  # seed 29: no other test or bench uses it


@pytest.fixture(scope="module")
def run():
    inputs, _ = holdout(*weekly_demand(CONFIG))
    model = EnsembleModel(EnsembleConfig(backtest_windows=2))
    trained = model.train(inputs)
    kept = []
    forecast = model.forecast(inputs, trained, keep=kept.append)
    selection = complete_selection(trained.selection, inputs.target["unique_id"].unique())
    scenario_model = build_model("run-1", "W", inputs.horizon, kept[0], inputs.future(), inputs.metadata, selection)
    return scenario_model, forecast, selection, inputs


def _changes(result: dict) -> dict[str, float]:
    return {s["item_id"]: s["totals"]["units_change"] for s in result["series"]}


def test_a_price_cut_raises_demand_by_about_the_generators_elasticity_and_never_lowers_it(run):
    """A 20 % cut on every item. The generator gives each item its own elasticity (-0.8 to -2.5) and about three price
    changes in its two years, too few to tell one item's elasticity from another's: the global model learns the
    pooled response. So the pooled change must be within a factor of two of the change the generator's elasticities
    give (units-weighted over the items, about +45 %), and every item's forecast rises (the response is monotone)."""
    model, *_ = run
    result = score(model, Scenario(changes=[Change(price_factor=0.8)]))
    changes = _changes(result)
    assert len(changes) == CONFIG.items and min(changes.values()) >= 0
    truth = elasticities(CONFIG)
    base = {s["item_id"]: s["totals"]["baseline_units"] for s in result["series"]}
    expected = sum(base[i] * (0.8 ** truth[i] - 1) for i in base) / sum(base.values())
    observed = result["total"]["units_change"]
    print({"observed": observed, "expected": round(expected, 4)})
    assert expected / 2 <= observed <= expected * 2
    assert all(s["implied_elasticity"] <= 0 for s in result["series"])
    assert -PLAUSIBLE_ELASTICITY < result["model_elasticity"] < 0 and not result["warnings"]
    raised = score(model, Scenario(changes=[Change(price_factor=1.2)]))
    assert max(_changes(raised).values()) <= 0 and raised["total"]["units_change"] < 0


def test_a_promotion_lifts_demand_and_its_price_is_the_discounted_one(run):
    model, *_ = run
    result = score(model, Scenario(changes=[Change(promotion=True, discount=0.25)]))
    assert min(_changes(result).values()) >= 0 and result["total"]["units_change"] > 0.1
    regular = model.future[model.future["promotion_flag"] == 0].iloc[0]  # a period off promotion in the baseline
    (series,) = [s for s in result["series"] if s["item_id"] == regular["unique_id"]]
    (period,) = [p for p in series["periods"] if p["date"] == regular["ds"].date().isoformat()]
    assert period["promotion"] and period["discount"] == 0.25
    assert period["scenario_price"] == pytest.approx(period["baseline_price"] * 0.75, rel=1e-3)


def test_the_baseline_is_the_published_forecast_and_only_the_chosen_items_and_periods_change(run):
    model, forecast, selection, inputs = run
    item = model.series["item_id"].iloc[0]
    dates = sorted(model.future["ds"].unique())
    result = score(model, Scenario(changes=[Change(items=[item], start=dates[2].date(), price_factor=0.7)]))
    (series,) = result["series"]
    assert series["item_id"] == item and series["changed"]
    published = forecast[forecast["unique_id"] == item].sort_values("ds")
    if series["global_model_weight"] == 1.0:  # the published forecast is the global model's alone
        assert [p["baseline"]["p50"] for p in series["periods"]] == pytest.approx(published["p50"].tolist(), abs=1e-3)
    first, later = series["periods"][:2], series["periods"][2:]
    assert all(p["scenario"] == p["baseline"] for p in first)
    assert all(p["scenario_price"] == pytest.approx(0.7 * p["baseline_price"], rel=1e-3) for p in later)
    revenue = sum(p["scenario"]["p50"] * p["scenario_price"] for p in series["periods"])
    assert series["totals"]["scenario_revenue"] == pytest.approx(revenue, rel=1e-3)


def test_a_series_whose_published_forecast_ignores_price_says_so(run):
    model, _, selection, inputs = run
    item = model.series["unique_id"].iloc[1]
    local = selection[selection["unique_id"] != item]
    local = pd.concat([local, pd.DataFrame([{"unique_id": item, "model": "AutoETS", "weight": 1.0, "loss": 0.0}])])
    other = build_model("run-2", "W", inputs.horizon, model.fitted, model.future, inputs.metadata, local)
    (series,) = score(other, Scenario(changes=[Change(items=[item], price_factor=0.9)]))["series"]
    assert series["uses_related"] is False and series["published_model"] == "AutoETS"
    assert "does not read price or promotion" in series["note"]


def test_scenarios_that_cannot_be_scored_say_why(run, tmp_path):
    model, *_ = run
    with pytest.raises(WhatIfError, match="matches no series"):
        score(model, Scenario(changes=[Change(items=["no-such-item"], price_factor=0.9)]))
    with pytest.raises(WhatIfError, match="without a discount"):
        score(model, Scenario(changes=[Change(promotion=True)]))
    with pytest.raises(WhatIfError, match="no forecast series for item"):
        score(model, Scenario(changes=[Change(price_factor=0.9)], items=["nope"]))
    with pytest.raises(ValidationError, match="not both"):
        Change(price_factor=0.9, price=2.0)
    with pytest.raises(ValidationError, match="sets price_factor"):
        Change(items=["x"])
    store = LocalObjectStore(tmp_path)
    with pytest.raises(WhatIfError, match="kept no model that reads price or promotion"):
        load_model(store, "export", "run-without-model")
    model.save(store, "export")
    again = load_model(store, "export", "run-1")
    assert np.allclose(again.future["price"], model.future["price"])


def test_on_the_real_year_a_price_response_learned_from_quantity_break_prices_is_flagged_not_served_as_fact():
    """The UCI year's daily price is what was paid: it falls when a wholesale order takes the quantity-break price, so
    low prices come with large orders and the model reads the effect as the cause. A 10 % cut then implies an
    elasticity far beyond any retailer's, and the answer says so."""
    from bench.online_retail import daily_inputs, sales_lines

    inputs, _ = daily_inputs(sales_lines(), top=60)
    model = EnsembleModel(EnsembleConfig(models=("LightGBM",), backtest_windows=1))
    kept = []
    model.forecast(inputs, model.train(inputs), keep=kept.append)
    selection = pd.DataFrame({"unique_id": kept[0].ids, "model": "LightGBM", "weight": 1.0, "loss": 0.0})
    scenario_model = build_model("uci", "D", inputs.horizon, kept[0], inputs.future(), inputs.metadata, selection)
    result = score(scenario_model, Scenario(changes=[Change(items=["85123A"], price_factor=0.95)]))
    print({"model_elasticity": result["model_elasticity"], "units_change": result["total"]["units_change"]})
    assert result["model_elasticity"] < -PLAUSIBLE_ELASTICITY  # what the history suggests; no retailer would believe it
    (warning,) = result["warnings"]
    assert "implausible" in warning and "quantity-break prices" in warning


def test_drivers_add_up_to_the_median_and_promotion_weeks_are_driven_by_the_promotion(run):
    """The drivers are the median booster's feature contributions (log1p units) summed per group: with the base they
    add up to the booster's prediction, and the generator's promotions (which really lift sales) show as a promotion
    effect above 1 in their weeks and none outside them."""
    from forecast_orchestrator.drivers import drivers
    from forecast_orchestrator.global_model import DRIVERS

    model, *_ = run
    result = drivers(model, sorted(set(model.series["item_id"])))
    assert len(result["series"]) == CONFIG.items
    median = model.fitted.boosters[0.5].predict(model.path[model.fitted.columns])
    keys = list(zip(model.path["unique_id"], model.path["ds"].dt.date.map(str), strict=True))
    predicted = dict(zip(keys, median, strict=True))
    future = model.future
    promoted = set(zip(future["unique_id"], future["ds"].dt.date.map(str), future["promotion_flag"], strict=True))
    on, off = [], []
    for series in result["series"]:
        assert series["ensemble"] and abs(sum(m["weight"] for m in series["ensemble"]) - 1) < 1e-6
        for period in series["periods"]:
            total = period["base"] + sum(period[name] for name in DRIVERS)
            assert total == pytest.approx(predicted[(series["item_id"], period["date"])], abs=1e-3)
            (on if (series["item_id"], period["date"], 1) in promoted else off).append(period["promotion"])
    assert on and np.mean(on) > 0.05 > abs(np.mean(off))  # a promotion week: demand x 1.05 or more from it


def test_the_enriched_tables_driver_columns_are_the_drivers():
    from core.contracts import ENRICHED
    from forecast_orchestrator.global_model import DRIVERS

    assert [f.name for f in ENRICHED.fields if f.name.startswith("driver_")] == [f"driver_{d}" for d in DRIVERS]
