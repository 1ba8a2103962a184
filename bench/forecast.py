"""Benchmarks `forecast` (series/s of the ensemble vs one AutoETS) and `forecast_accuracy` (held-out accuracy).

Data: generator sales aggregated to weekly demand per item with pandas (the labelled outliers and
duplicates removed, as the outlier split would), the last `horizon` weeks held out.
"""

from __future__ import annotations

import time
import warnings
from datetime import date, timedelta

import pandas as pd

from bench.report import emit
from core.holidays import holidays
from forecast_orchestrator import metrics as m
from forecast_orchestrator.ensemble import MODEL_EXOGENOUS, EnsembleConfig, EnsembleModel
from forecast_orchestrator.series import EXOGENOUS, ForecastInputs
from streaming.generator import GeneratorConfig, generate

HORIZON = 8
# 96 weeks from 2023-01-02: the held-out 8 weeks are Sep-Oct 2024. Holding out Black Friday and Christmas
# needs a yearly-seasonal model that two years of weekly history cannot fit (only SeasonalNaive copies it).
DAYS = 7 * 96


def weekly_demand(config: GeneratorConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(target, related) in the long format from generated events: demand, price, promotion, holiday per week."""
    data = generate(config)
    drop = {label.line for label in data.labels if label.expected != "clean"}
    events = pd.DataFrame([e for i, e in enumerate(data.events) if i not in drop])
    sales = events[events["event_type"] == "sale"].copy()
    sales["ds"] = pd.to_datetime(sales["event_time"]).dt.tz_localize(None).dt.to_period("W-SUN").dt.start_time
    start = pd.Timestamp(config.start)
    weeks = pd.date_range(start, periods=config.days // 7, freq="W-MON")
    demand = sales.groupby(["item_id", "ds"])["quantity"].sum().clip(lower=0).rename("y")
    first = sales.groupby("item_id")["ds"].min()
    grid = pd.DataFrame(
        [(i, d) for i in sorted(first.index) for d in weeks if d >= first[i]], columns=["item_id", "ds"]
    )
    target = grid.merge(demand.reset_index(), on=["item_id", "ds"], how="left").fillna({"y": 0.0})

    horizon_weeks = pd.date_range(start, periods=len(weeks) + HORIZON, freq="W-MON")
    related = pd.DataFrame([(i, d) for i in sorted(first.index) for d in horizon_weeks], columns=["item_id", "ds"])
    price = sales.groupby(["item_id", "ds"])["unit_price"].median().rename("price").reset_index()
    related = related.merge(price, on=["item_id", "ds"], how="left")
    related["price"] = related.groupby("item_id")["price"].transform(lambda s: s.ffill().bfill())
    campaigns = events[(events["event_type"] == "campaign") & (events["action"] == "start")]
    promo = []
    for row in campaigns.itertuples():
        days = pd.date_range(
            pd.Timestamp(row.starts_at).tz_localize(None).normalize(),
            pd.Timestamp(row.ends_at).tz_localize(None),
            inclusive="left",
        )
        for week in sorted(set(days.to_period("W-SUN").start_time)):
            promo.append((row.item_id, week, 1.0, float(row.discount_pct)))
    promo_df = (
        pd.DataFrame(promo, columns=["item_id", "ds", "promotion_flag", "discount"]).groupby(["item_id", "ds"]).max()
    )
    related = related.merge(promo_df.reset_index(), on=["item_id", "ds"], how="left")
    end = date.fromisoformat(config.start) + timedelta(days=7 * len(horizon_weeks))
    holiday_weeks = {
        pd.Timestamp(d - timedelta(days=d.weekday()))
        for d in holidays(config.country, date.fromisoformat(config.start), end)
    }
    related["holiday_flag"] = related["ds"].isin(holiday_weeks).astype(float)
    related = related.fillna({"promotion_flag": 0.0, "discount": 0.0}).rename(columns={"item_id": "unique_id"})
    target = target.rename(columns={"item_id": "unique_id"}).merge(related, on=["unique_id", "ds"], how="left")
    return target[["unique_id", "ds", "y", *EXOGENOUS]], related[["unique_id", "ds", *EXOGENOUS]]


def holdout(target: pd.DataFrame, related: pd.DataFrame, horizon: int = HORIZON) -> tuple[ForecastInputs, pd.DataFrame]:
    """Inputs ending `horizon` weeks before the last week, and the held-out actuals."""
    cut = target["ds"].max() - pd.Timedelta(weeks=horizon)
    train = target[target["ds"] <= cut].reset_index(drop=True)
    actual = target[(target["ds"] > cut) & target["unique_id"].isin(train["unique_id"].unique())]
    manifest = {
        "frequency": "W",
        "window_start": str(train["ds"].min().date()),
        "window_end": str((cut + pd.Timedelta(weeks=1)).date()),
        "horizon": horizon,
        "with_location": False,
        "timestamp_format": "yyyy-MM-dd",
    }
    return ForecastInputs(manifest, train, related, pd.DataFrame(columns=["item_id", "category", "brand"])), actual[
        ["unique_id", "ds", "y"]
    ].reset_index(drop=True)


def score(forecast: pd.DataFrame, actual: pd.DataFrame, history: pd.DataFrame, quantiles=(0.1, 0.5, 0.9)) -> dict:
    frame = actual.merge(forecast, on=["unique_id", "ds"], how="inner")
    return m.accuracy(frame, quantiles, history, m.SEASON_LENGTH["W"])


def single_model(inputs: ForecastInputs, name: str, backend: EnsembleModel) -> pd.DataFrame:
    """One candidate fitted on every series, no selection: its quantile forecast over the horizon."""
    sf = backend._statsforecast((name,), inputs)
    out = sf.forecast(
        df=inputs.target[["unique_id", "ds", "y", *MODEL_EXOGENOUS]],
        h=inputs.horizon,
        X_df=inputs.future()[["unique_id", "ds", *MODEL_EXOGENOUS]],
        level=[80],
    )
    out = backend._per_model(backend._collect(out), (name,), ["unique_id", "ds"]).drop(columns="mean")
    if out.isna().any().any():  # SeasonalNaive has no forecast for series shorter than a season: use Naive
        naive = single_model(inputs, "Naive", backend).set_index(["unique_id", "ds"])
        out = out.set_index(["unique_id", "ds"]).fillna(naive).reset_index()
    return out


def run(quick: bool, only: str | None = None) -> None:
    warnings.simplefilter("ignore")  # ARIMA rank warnings (stderr) would bury the JSON lines
    items, stores = (20, 2) if quick else (60, 2)
    target, related = weekly_demand(GeneratorConfig(seed=11, stores=stores, items=items, days=DAYS))
    inputs, actual = holdout(target, related)
    series = inputs.target["unique_id"].nunique()
    backend = EnsembleModel(EnsembleConfig(n_jobs=1))

    single_model(inputs, "AutoETS", backend)  # warm the numba cache so neither side pays compilation
    began = time.perf_counter()
    trained = backend.train(inputs)
    forecast = backend.forecast(inputs, trained)
    ensemble_seconds = time.perf_counter() - began
    began = time.perf_counter()
    ets = single_model(inputs, "AutoETS", backend)
    ets_seconds = time.perf_counter() - began
    naive = single_model(inputs, "SeasonalNaive", backend)

    ours, ets_acc, naive_acc = (score(f, actual, inputs.target) for f in (forecast, ets, naive))
    if only in (None, "forecast"):
        emit(
            "forecast",
            "series_per_second",
            series / ensemble_seconds,
            "series/s",
            baseline=series / ets_seconds,
            series=int(series),
            models=len(backend.candidates(inputs)),
            backtest_windows=backend.config.backtest_windows,
            wape=round(ours["WAPE"], 4),
            baseline_wape=round(ets_acc["WAPE"], 4),
        )
    if only in (None, "forecast_accuracy"):
        emit("forecast_accuracy", "wape", ours["WAPE"], "fraction", baseline=naive_acc["WAPE"], series=int(series))
        emit("forecast_accuracy", "wql", ours["avg_wQL"], "fraction", baseline=naive_acc["avg_wQL"], series=int(series))
        emit("forecast_accuracy", "coverage_p10_p90", ours["coverage_p10_p90"], "fraction", baseline=0.8)
        emit("forecast_accuracy", "mase", ours["MASE"], "ratio", baseline=naive_acc["MASE"])
