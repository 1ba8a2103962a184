"""What-if: a scenario changes the related series (price, promotion) of some items over some periods, and is scored
on the run's fitted global model without fitting again, against that model's own baseline.

The forecast step keeps the refitted global model (LightGBM over every series, forecast_orchestrator/global_model.py)
with the horizon's related values as `runs/<run_id>/scenario-model.pickle` in the forecast-export bucket. A scenario
is a list of changes; each picks series (items, categories, locations; all when none is named) and periods (start..end,
inclusive; the whole horizon by default) and sets

- `price_factor` (x the regular price) or `price` (= the regular price),
- `promotion` on (with `discount`, a share off the regular price; a series already on promotion keeps its discount
  unless one is given) or off (the regular price again),
- `discount` alone, which means a promotion at that discount.

The selling price is the regular price less the discount, as in the related dataset (the average price paid). Both
forecasts get the ensemble's interval calibration. Revenue is p50 units x selling price; a total's p10 and p90 are sums
of the periods' quantiles, which treats the periods as moving together (a wider band than the truth).

Each series' answer carries the elasticity its price change implies (log units change / log price change), and every
answer the model's own: the pooled elasticity of a 10 % cut of every price (over up to ELASTICITY_SAMPLE series),
measured when the forecast step keeps the model. When that is beyond PLAUSIBLE_ELASTICITY the answer warns: prices in
the history then move with something else that drives demand (quantity-break prices that fall when a large order
comes, prices that never change), so no model fitted on that history can say what a price change does. On the UCI
year it is about -10; on generator data about -1.2 (the generator's elasticities: -0.8 to -2.5).

Series whose published forecast gives the global model no weight (a local model such as AutoETS won their backtest)
are still scored, on the global model, and say so: their baseline is not the published forecast, and the models that
forecast them do not read price or promotion.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.object_store import ObjectStore
from forecast_orchestrator import metrics as m
from forecast_orchestrator.ensemble import apply_scales, selection_scales
from forecast_orchestrator.global_model import NAME as GLOBAL
from forecast_orchestrator.global_model import FittedGlobalModel
from forecast_orchestrator.series import SEPARATOR

SCENARIO_MODEL = "scenario-model.pickle"
# A model whose pooled response to a price cut implies an elasticity beyond this cannot be planned on (module doc):
# published retail price elasticities average about -2.6 (Bijmolt, van Heerde and Pieters 2005, a meta-analysis).
PLAUSIBLE_ELASTICITY = 4.0
ELASTICITY_SAMPLE = 300  # series the model's pooled elasticity is measured on (a fixed sample when there are more)
MAX_SERIES = 5_000  # series one request may answer for (more: name the items, in several requests)


class WhatIfError(ValueError):
    """A scenario that cannot be scored: no stored model, a change that matches nothing, a promotion without a
    discount. The message says what to change."""


class UnknownItem(WhatIfError):
    """An item the run has no forecast series for."""


def model_key(run_id: str) -> str:
    return f"runs/{run_id}/{SCENARIO_MODEL}"


@dataclass
class ScenarioModel:
    """What a scenario is scored on: the fitted global model and the run's horizon of related values."""

    run_id: str
    frequency: str
    horizon: int
    fitted: FittedGlobalModel
    future: pd.DataFrame  # unique_id, ds, price, promotion_flag, discount, holiday_flag over the horizon
    series: pd.DataFrame  # unique_id, item_id, location, category
    scales: dict[str, float]  # the ensemble's interval calibration, pNN -> factor
    selection: pd.DataFrame  # the published forecast's models per series: unique_id, model, weight
    path: pd.DataFrame  # the baseline's median path: unique_id, ds and the features there (FittedGlobalModel.path)
    baseline: pd.DataFrame  # the global model's forecast on that path, before the interval calibration
    elasticity: float | None = None  # the pooled elasticity of a 10 % cut of every price (measured by build_model)

    @cached_property
    def weights(self) -> dict[str, float]:
        """unique_id -> the weight of the global model in the published forecast."""
        chosen = self.selection[self.selection["model"] == GLOBAL]
        return {str(k): float(v) for k, v in chosen.groupby("unique_id")["weight"].sum().items()}

    @cached_property
    def models(self) -> dict[str, str]:
        """unique_id -> the published forecast's heaviest model."""
        heaviest = self.selection.sort_values("weight", ascending=False).drop_duplicates("unique_id")
        return dict(zip(heaviest["unique_id"], heaviest["model"], strict=True))

    def forecasts(self, ids: list[str], changed: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(baseline, scenario) of the series `ids` with `changed`'s related values: the baseline path is the run's
        (computed once, when the model was kept), so a scenario costs two predictions of the response booster."""
        rows = self.path["unique_id"].isin(set(ids)).to_numpy()
        path, baseline = self.path[rows].reset_index(drop=True), self.baseline[rows].reset_index(drop=True)
        return baseline, self.fitted.scenario(path, baseline, changed)

    def save(self, store: ObjectStore, bucket: str) -> str:
        key = model_key(self.run_id)
        store.put(bucket, key, pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))
        return key


def load_model(store: ObjectStore, bucket: str, run_id: str) -> ScenarioModel:
    """The run's scenario model (our own artefact, written by the forecast step). WhatIfError when there is none."""
    key = model_key(run_id)
    if not store.exists(bucket, key):
        raise WhatIfError(
            f"run {run_id} kept no model that reads price or promotion ({store.uri(bucket, key)} is missing): its "
            "forecast comes from models that do not use the related series (local models only, or Amazon Forecast), "
            "so a what-if cannot be scored on it; forecast with the global model (LightGBM) among the candidates"
        )
    model = pickle.loads(store.get(bucket, key))  # noqa: S301 - the pipeline's own artefact, in its own bucket
    if not isinstance(model, ScenarioModel):
        raise WhatIfError(f"{store.uri(bucket, key)} is not a scenario model")
    return model


class Change(BaseModel):
    """One change of the related series: which series, which periods, what is set."""

    model_config = ConfigDict(extra="forbid")

    items: list[str] | None = Field(None, description="item ids (default: every item)")
    categories: list[str] | None = Field(None, description="categories (default: every category)")
    locations: list[str] | None = Field(None, description="stores, for per-store series (default: every store)")
    start: date | None = Field(None, description="first period changed (default: the horizon's first)")
    end: date | None = Field(None, description="last period changed, inclusive (default: the horizon's last)")
    price_factor: float | None = Field(None, gt=0, le=10, description="regular price x this factor")
    price: float | None = Field(None, ge=0, description="regular price = this value")
    promotion: bool | None = Field(None, description="promotion on (with discount) or off")
    discount: float | None = Field(None, ge=0, lt=1, description="share off the regular price while on promotion")

    @model_validator(mode="after")
    def _sets_something(self) -> Change:
        if self.price_factor is not None and self.price is not None:
            raise ValueError("give price_factor or price, not both")
        if all(v is None for v in (self.price_factor, self.price, self.promotion, self.discount)):
            raise ValueError("a change sets price_factor, price, promotion or discount")
        if self.promotion is False and self.discount:
            raise ValueError("a discount needs the promotion on")
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class Scenario(BaseModel):
    """A what-if: changes applied in order; `items` limits the answer to these items (default: those changed)."""

    model_config = ConfigDict(extra="forbid")

    changes: list[Change] = Field(min_length=1, max_length=100)
    items: list[str] | None = Field(None, description="items to answer for (default: the items the changes touch)")


def _matching(model: ScenarioModel, change: Change) -> pd.Series:
    """unique_id -> whether the change picks the series."""
    series = model.series
    picked = pd.Series(True, index=series.index)
    for column, wanted in (("item_id", change.items), ("category", change.categories), ("location", change.locations)):
        if wanted is not None:
            picked &= series[column].isin(wanted)
    return pd.Series(picked.to_numpy(), index=series["unique_id"].to_numpy())


def apply(model: ScenarioModel, scenario: Scenario) -> tuple[pd.DataFrame, set[str]]:
    """The horizon's related values with the scenario's changes, and the series it changed."""
    future = model.future.copy()
    changed: set[str] = set()
    for number, change in enumerate(scenario.changes, 1):
        ids = _matching(model, change)
        rows = future["unique_id"].map(ids).fillna(False).astype(bool)
        if change.start:
            rows &= future["ds"] >= pd.Timestamp(change.start)
        if change.end:
            rows &= future["ds"] <= pd.Timestamp(change.end)
        if not rows.any():
            first, last = future["ds"].min().date(), future["ds"].max().date()
            raise WhatIfError(f"change {number} matches no series and period of the forecast ({first}..{last})")
        part = future.loc[rows]
        current = part["discount"].where(part["promotion_flag"] > 0, 0.0)
        regular = part["price"] / (1.0 - current)
        if change.price_factor is not None:
            regular = regular * change.price_factor
        if change.price is not None:
            regular = pd.Series(change.price, index=part.index)
        on = part["promotion_flag"] > 0 if change.promotion is None else pd.Series(change.promotion, index=part.index)
        if change.discount is not None:
            on, discount = pd.Series(True, index=part.index), pd.Series(change.discount, index=part.index)
        else:
            discount = current
        if (on & (discount <= 0)).any():
            raise WhatIfError(f"change {number} puts a promotion on without a discount: give discount (e.g. 0.2)")
        discount = discount.where(on, 0.0)
        future.loc[rows, "promotion_flag"] = on.astype(int).to_numpy()
        future.loc[rows, "discount"] = discount.to_numpy()
        future.loc[rows, "price"] = (regular * (1.0 - discount)).round(4).to_numpy()
        changed |= set(part["unique_id"])
    return future, changed


def score(model: ScenarioModel, scenario: Scenario) -> dict[str, Any]:
    """Baseline and scenario quantiles per series and period, units and revenue per series and in total."""
    future, changed = apply(model, scenario)
    if scenario.items is not None:
        ids = sorted(set(model.series.loc[model.series["item_id"].isin(scenario.items), "unique_id"]))
        unknown = sorted(set(scenario.items) - set(model.series["item_id"]))
        if unknown:
            raise UnknownItem(f"no forecast series for item(s) {', '.join(unknown[:5])} in run {model.run_id}")
    else:
        ids = sorted(changed)
    if len(ids) > MAX_SERIES:
        raise WhatIfError(f"the scenario answers for {len(ids)} series; at most {MAX_SERIES} a request: name items")
    quantiles = [m.quantile_column(q) for q in model.fitted.quantiles]
    baseline, scenario_ = model.forecasts(ids, future)
    frames = {"baseline": apply_scales(baseline, model.scales), "scenario": apply_scales(scenario_, model.scales)}
    prices = {
        name: values.set_index(["unique_id", "ds"])[["price", "promotion_flag", "discount"]]
        for name, values in (("baseline", model.future), ("scenario", future))
    }
    series = model.series.set_index("unique_id")
    answers = []
    totals = {f"{side}_{what}": 0.0 for side in ("baseline", "scenario") for what in ("units", "revenue")}
    for uid, base in frames["baseline"].groupby("unique_id", sort=True):
        scen = frames["scenario"][frames["scenario"]["unique_id"] == uid]
        keys = list(zip(base["unique_id"], base["ds"], strict=True))
        base_price = prices["baseline"].loc[keys]
        scen_price = prices["scenario"].loc[keys]
        periods = []
        for i in range(len(base)):
            periods.append(
                {
                    "date": base["ds"].iloc[i].date().isoformat(),
                    "baseline": {q: round(float(base[q].iloc[i]), 3) for q in quantiles},
                    "scenario": {q: round(float(scen[q].iloc[i]), 3) for q in quantiles},
                    "baseline_price": round(float(base_price["price"].iloc[i]), 4),
                    "scenario_price": round(float(scen_price["price"].iloc[i]), 4),
                    "promotion": bool(scen_price["promotion_flag"].iloc[i]),
                    "discount": round(float(scen_price["discount"].iloc[i]), 4),
                }
            )
        units = {"baseline": base, "scenario": scen}
        sums = {
            "baseline_units": float(base["p50"].sum()),
            "scenario_units": float(scen["p50"].sum()),
            "baseline_revenue": float((base["p50"].to_numpy() * base_price["price"].to_numpy()).sum()),
            "scenario_revenue": float((scen["p50"].to_numpy() * scen_price["price"].to_numpy()).sum()),
        }
        for key, value in sums.items():
            totals[key] += value
        weight = model.weights.get(uid, 0.0)
        elasticity = _elasticity(base, scen, base_price["price"].to_numpy(), scen_price["price"].to_numpy())
        answer: dict[str, Any] = {
            "item_id": series.at[uid, "item_id"],
            "location": series.at[uid, "location"] if SEPARATOR in uid else None,
            "changed": uid in changed,
            "uses_related": weight > 0,
            "global_model_weight": round(weight, 4),
            "published_model": model.models.get(uid, GLOBAL),
            "periods": periods,
            "totals": {
                **{k: round(v, 3) for k, v in sums.items()},
                **{f"{side}_{q}_sum": round(float(units[side][q].sum()), 3) for side in units for q in quantiles},
                "units_change": _ratio(sums["scenario_units"], sums["baseline_units"]),
            },
            "implied_elasticity": elasticity,
        }
        if weight <= 0:
            answer["note"] = (
                f"the published forecast of this series comes from {answer['published_model']}, which does not read "
                "price or promotion: the baseline and scenario here are the global model's (LightGBM), not the "
                "published forecast"
            )
        answers.append(answer)
    warnings = []
    if model.elasticity is not None and abs(model.elasticity) > PLAUSIBLE_ELASTICITY:
        warnings.append(
            f"the price response this model learned is implausible (a 10 % cut of every price implies an elasticity "
            f"of {model.elasticity}): prices in the history move with something else that drives demand "
            "(quantity-break prices, prices that rarely change), so the model cannot tell what a price change does; "
            "do not plan on price answers from it"
        )
    return {
        "warnings": warnings,
        "model_elasticity": model.elasticity,
        "run_id": model.run_id,
        "model": GLOBAL,
        "frequency": model.frequency,
        "series": answers,
        "total": {
            **{k: round(v, 3) for k, v in totals.items()},
            "units_change": _ratio(totals["scenario_units"], totals["baseline_units"]),
        },  # fmt: skip
    }


def _elasticity(base: pd.DataFrame, scen: pd.DataFrame, base_price, scen_price) -> float | None:
    """log(units ratio) / log(price ratio) over the periods whose price the scenario changed; None without one."""
    moved = (abs(scen_price - base_price) > 1e-9) & (base_price > 0) & (scen_price > 0)
    units_before, units_after = base["p50"].to_numpy()[moved].sum(), scen["p50"].to_numpy()[moved].sum()
    if not moved.any() or units_before <= 0 or units_after <= 0:
        return None
    price_ratio = (scen_price[moved] * base["p50"].to_numpy()[moved]).sum() / (
        base_price[moved] * base["p50"].to_numpy()[moved]
    ).sum()
    if abs(math.log(price_ratio)) < 1e-6:
        return None
    return round(math.log(units_after / units_before) / math.log(price_ratio), 3)


def _ratio(new: float, old: float) -> float | None:
    return round(new / old - 1.0, 4) if old > 0 else None


def build_model(
    run_id: str,
    frequency: str,
    horizon: int,
    fitted: FittedGlobalModel,
    future: pd.DataFrame,
    metadata: pd.DataFrame,
    selection: pd.DataFrame,
) -> ScenarioModel:
    """The scenario model of a forecast run: the fitted global model, the horizon's related values of its series,
    what each series is (item, location, category) and how much the published forecast weighs the global model."""
    ids = pd.Series(fitted.ids, name="unique_id")
    split = ids.str.split(SEPARATOR, n=1, expand=True)
    series = pd.DataFrame({"unique_id": ids, "item_id": split[0]})
    series["location"] = split[1] if split.shape[1] > 1 else None
    category = {}
    if len(metadata) and "category" in metadata:
        category = metadata.drop_duplicates("item_id").set_index("item_id")["category"].to_dict()
    series["category"] = series["item_id"].map(category).fillna("unknown")
    columns = ["unique_id", "ds", "price", "promotion_flag", "discount", "holiday_flag"]
    kept = future[future["unique_id"].isin(set(fitted.ids))][columns].reset_index(drop=True)
    kept = kept.astype({"price": float, "discount": float, "promotion_flag": int})
    path = fitted.path(horizon, kept)
    model = ScenarioModel(
        run_id=run_id,
        frequency=frequency,
        horizon=horizon,
        fitted=fitted,
        future=kept,
        series=series,
        scales=selection_scales(selection),
        selection=selection[["unique_id", "model", "weight"]].reset_index(drop=True),
        path=path,
        baseline=fitted.quantiles_on(path),
    )
    model.elasticity = _model_elasticity(model)
    return model


def _model_elasticity(model: ScenarioModel) -> float | None:
    """The pooled elasticity of a 10 % cut of every price, on up to ELASTICITY_SAMPLE series (a fixed sample)."""
    ids = list(model.series["unique_id"])
    if len(ids) > ELASTICITY_SAMPLE:
        ids = sorted(pd.Series(ids).sample(ELASTICITY_SAMPLE, random_state=0))
    items = sorted(set(model.series.set_index("unique_id").loc[ids, "item_id"]))
    future, _ = apply(model, Scenario(changes=[Change(items=items, price_factor=0.9)]))
    baseline, scenario = model.forecasts(ids, future)
    keys = list(zip(baseline["unique_id"], baseline["ds"], strict=True))
    before = model.future.set_index(["unique_id", "ds"])["price"].loc[keys].to_numpy()
    after = future.set_index(["unique_id", "ds"])["price"].loc[keys].to_numpy()
    return _elasticity(baseline, scenario, before, after)
