"""Drivers: what a series' forecast is made of. Which models the published ensemble combines, with what weight, and
what moves the global model's median: its feature contributions (LightGBM's pred_contrib on the run's baseline path,
kept with the scenario model, forecast_orchestrator/whatif.py), summed per driver (recent demand, seasonality, price,
promotion, holiday, item and store) and averaged over the horizon.

A contribution is in log1p units of demand; `effect` is exp(contribution), the factor that driver applies to
(1 + demand) against the model's base (the booster's expected value over the training rows): 1.25 means the driver
lifts demand by about a quarter, 0.8 lowers it by a fifth. They multiply: base x effects = 1 + the median.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from forecast_orchestrator.global_model import DRIVERS
from forecast_orchestrator.whatif import ScenarioModel, UnknownItem


def drivers(model: ScenarioModel, items: list[str]) -> dict[str, Any]:
    """Per series of the items: the ensemble's models and weights, and the global model's drivers per period and
    over the horizon."""
    series = model.series[model.series["item_id"].isin(items)]
    missing = sorted(set(items) - set(series["item_id"]))
    if missing:
        raise UnknownItem(f"no forecast series for item(s) {', '.join(missing[:5])} in run {model.run_id}")
    ids = set(series["unique_id"])
    rows = model.path["unique_id"].isin(ids).to_numpy()
    contributions = model.fitted.contributions(model.path[rows])
    answers = []
    named = series.set_index("unique_id")
    for uid, frame in contributions.groupby("unique_id", sort=True):
        chosen = model.selection[model.selection["unique_id"] == uid].sort_values("weight", ascending=False)
        mean = {name: float(frame[name].mean()) for name in ("base", *DRIVERS)}
        periods = [
            {"date": ds.date().isoformat(), **{name: round(float(row[name]), 4) for name in ("base", *DRIVERS)}}
            for ds, row in zip(frame["ds"], frame.to_dict("records"), strict=True)
        ]
        answers.append(
            {
                "item_id": named.at[uid, "item_id"],
                "location": named.at[uid, "location"],
                "ensemble": [
                    {"model": m, "weight": round(float(w), 4)}
                    for m, w in zip(chosen["model"], chosen["weight"], strict=True)
                ],  # fmt: skip
                "global_model_weight": round(model.weights.get(uid, 0.0), 4),
                "drivers": {
                    name: {"contribution": round(mean[name], 4), "effect": round(math.exp(mean[name]), 4)}
                    for name in DRIVERS
                },  # fmt: skip
                "base": round(math.exp(mean["base"]), 4),
                "periods": periods,
            }
        )
    return {"run_id": model.run_id, "model": "LightGBM", "series": answers}


def driver_table(model: ScenarioModel) -> pd.DataFrame:
    """Every series' drivers per forecast period, for the export and the enriched table: unique_id, ds,
    driver_<name> (the factor on 1 + demand) and ensemble (`model:weight;...`, heaviest first)."""
    contributions = model.fitted.contributions(model.path)
    out = contributions[["unique_id", "ds"]].copy()
    for name in DRIVERS:
        out[f"driver_{name}"] = np.exp(contributions[name].to_numpy()).round(4)
    chosen = model.selection.sort_values(["unique_id", "weight"], ascending=[True, False])
    chosen = chosen.assign(part=chosen["model"] + ":" + chosen["weight"].map("{:.2f}".format))
    out["ensemble"] = out["unique_id"].map(chosen.groupby("unique_id")["part"].agg(";".join))
    return out
