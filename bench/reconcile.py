"""Benchmark `reconcile`: held-out WAPE of each level's coherent forecast against the same level's base forecast.

The forecast step's own path (forecast_orchestrator/totals.py): the ensemble on the bottom series, the aggregates'
ensemble on every category, store and the total, the method chosen on the backtest windows, the horizon reconciled.
Each level's median is scored on the held-out periods against the actual demand summed to that level; the baseline
is the level's base forecast in the same run (the bottom's is the published item forecast; an aggregate's is its
own model's forecast before reconciliation). A ratio at or below 1 at every level is the goal.

Data: generator sales per item and store, weekly, the last 8 weeks held out (`"dataset": "generator"`, seed 53:
no test uses it); the real Online Retail II year, daily per stock code, the last 28 days held out
(`"dataset": "online_retail"`, no stores: total, category, item; `--quick` the 200 best sellers).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from bench import online_retail
from bench.forecast import DAYS, holdout, item_metadata, weekly_demand
from bench.report import emit
from core.settings import Settings
from forecast_orchestrator import reconcile
from forecast_orchestrator.ensemble import EnsembleConfig, EnsembleModel
from forecast_orchestrator.series import ForecastInputs
from forecast_orchestrator.totals import bottom_series, coherent_totals
from streaming.generator import GeneratorConfig

SEED = 53


def generator_inputs(quick: bool, seed: int = SEED) -> tuple[ForecastInputs, pd.DataFrame]:
    config = GeneratorConfig(seed=seed, stores=3, items=20 if quick else 60, days=DAYS)
    return holdout(*weekly_demand(config, by_store=True), metadata=item_metadata(config))


def level_scores(inputs: ForecastInputs, actual: pd.DataFrame, models: tuple[str, ...]) -> tuple[list[dict], dict]:
    """Per level: held-out WAPE of the coherent and of the base median; and the run's method, timings, backtest."""
    model = EnsembleModel(EnsembleConfig())
    started = time.perf_counter()
    trained = model.train(inputs)
    forecast = model.forecast(inputs, trained)
    bottom_seconds = time.perf_counter() - started
    started = time.perf_counter()
    totals = coherent_totals(model, models, inputs, forecast, trained.backtest)
    totals_seconds = time.perf_counter() - started
    tree = reconcile.hierarchy(bottom_series(inputs), bool(inputs.manifest["with_location"]))
    periods = sorted(forecast["ds"].unique())
    truth = reconcile.aggregate(actual[actual["ds"].isin(periods)], tree, "y", periods)
    chosen = totals.accuracy[totals.accuracy["chosen"]].set_index("level")
    rows = []
    for level in tree.levels:
        # coherent_forecast lists the nodes in the hierarchy's order, each node's periods in time order.
        frame = totals.forecast[totals.forecast["level"] == level]
        held = truth[tree.rows(level)].ravel()
        wape = float(np.abs(held - frame["p50"].to_numpy()).sum() / max(np.abs(held).sum(), 1e-9))
        base = float(np.abs(held - frame["base_p50"].to_numpy()).sum() / max(np.abs(held).sum(), 1e-9))
        rows.append({"level": level, "wape": wape, "base_wape": base, "nodes": len(tree.rows(level)),
                     "backtest_ratio": round(float(chosen.loc[level, "ratio"]), 4)})  # fmt: skip
    run = {"method": totals.method, "bottom_s": round(bottom_seconds, 1), "totals_s": round(totals_seconds, 1)}
    return rows, run


def run(quick: bool, only: str | None = None) -> None:
    warnings.simplefilter("ignore")  # statsforecast's short-history notes would bury the JSON lines
    models = Settings().totals_models
    real, real_actual = online_retail.daily_inputs(online_retail.sales_lines(), top=200 if quick else None)
    for dataset, (inputs, actual) in (("generator", generator_inputs(quick)), ("online_retail", (real, real_actual))):
        rows, run_info = level_scores(inputs, actual, models)
        for row in rows:
            emit("reconcile", "wape", row["wape"], "fraction", baseline=row["base_wape"], dataset=dataset,
                 level=row["level"], nodes=row["nodes"], backtest_ratio=row["backtest_ratio"], **run_info)  # fmt: skip
