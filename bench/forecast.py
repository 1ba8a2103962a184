"""Benchmarks `forecast` (series/s of the default ensemble against one AutoETS and against a plain mlforecast
LightGBM) and `forecast_accuracy` (held-out accuracy against seasonal naive and the plain LightGBM).

Data: generator sales aggregated to weekly demand per item with pandas (the labelled outliers and duplicates
removed, as the outlier split would), the last `horizon` weeks held out (`"dataset": "generator"`); and the real
Online Retail II year, daily per stock code, the last 28 days held out (`"dataset": "online_retail"`: every stock
code that sold in the last quarter, `--quick` the 200 best sellers; bench/online_retail.py).
"""

from __future__ import annotations

import time
import warnings
from datetime import date, timedelta

import pandas as pd

from bench import online_retail
from bench.report import emit
from core.holidays import holidays
from forecast_orchestrator import metrics as m
from forecast_orchestrator.ensemble import MODEL_EXOGENOUS, EnsembleConfig, EnsembleModel
from forecast_orchestrator.series import EXOGENOUS, SEPARATOR, ForecastInputs, pandas_freq
from streaming.generator import GeneratorConfig, generate

HORIZON = 8
# 96 weeks from 2023-01-02: the held-out 8 weeks are Sep-Oct 2024. Holding out Black Friday and Christmas
# needs a yearly-seasonal model that two years of weekly history cannot fit (only SeasonalNaive copies it).
DAYS = 7 * 96


def weekly_demand(config: GeneratorConfig, by_store: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(target, related) in the long format from generated events: demand, price, promotion, holiday per week;
    per item, or per item and store (`by_store`: unique_id item|store, a store's own promotions only there)."""
    data = generate(config)
    drop = {label.line for label in data.labels if label.expected != "clean"}
    events = pd.DataFrame([e for i, e in enumerate(data.events) if i not in drop])
    sales = events[events["event_type"] == "sale"].copy()
    sales["ds"] = pd.to_datetime(sales["event_time"]).dt.tz_localize(None).dt.to_period("W-SUN").dt.start_time
    sales["series"] = sales["item_id"] + (SEPARATOR + sales["store_id"] if by_store else "")
    start = pd.Timestamp(config.start)
    weeks = pd.date_range(start, periods=config.days // 7, freq="W-MON")
    demand = sales.groupby(["series", "ds"])["quantity"].sum().clip(lower=0).rename("y")
    first = sales.groupby("series")["ds"].min()
    grid = pd.DataFrame([(i, d) for i in sorted(first.index) for d in weeks if d >= first[i]], columns=["series", "ds"])
    target = grid.merge(demand.reset_index(), on=["series", "ds"], how="left").fillna({"y": 0.0})

    horizon_weeks = pd.date_range(start, periods=len(weeks) + HORIZON, freq="W-MON")
    related = pd.DataFrame([(i, d) for i in sorted(first.index) for d in horizon_weeks], columns=["series", "ds"])
    related["item_id"] = related["series"].str.split(SEPARATOR).str[0]
    price = sales.groupby(["item_id", "ds"])["unit_price"].median().rename("price").reset_index()
    related = related.merge(price, on=["item_id", "ds"], how="left")
    related["price"] = related.groupby("series")["price"].transform(lambda s: s.ffill().bfill())
    campaigns = events[(events["event_type"] == "campaign") & (events["action"] == "start")]
    stores = sorted(sales["store_id"].unique())
    promo = []
    for row in campaigns.itertuples():
        days = pd.date_range(
            pd.Timestamp(row.starts_at).tz_localize(None).normalize(),
            pd.Timestamp(row.ends_at).tz_localize(None),
            inclusive="left",
        )
        where = (
            [row.item_id + SEPARATOR + s for s in stores if row.store_id in (None, s)] if by_store else [row.item_id]
        )
        for week in sorted(set(days.to_period("W-SUN").start_time)):
            promo += [(series, week, 1.0, float(row.discount_pct)) for series in where]
    promo_df = (
        pd.DataFrame(promo, columns=["series", "ds", "promotion_flag", "discount"]).groupby(["series", "ds"]).max()
    )
    related = related.merge(promo_df.reset_index(), on=["series", "ds"], how="left")
    end = date.fromisoformat(config.start) + timedelta(days=7 * len(horizon_weeks))
    holiday_weeks = {
        pd.Timestamp(d - timedelta(days=d.weekday()))
        for d in holidays(config.country, date.fromisoformat(config.start), end)
    }
    related["holiday_flag"] = related["ds"].isin(holiday_weeks).astype(float)
    related = related.fillna({"promotion_flag": 0.0, "discount": 0.0}).rename(columns={"series": "unique_id"})
    target = target.rename(columns={"series": "unique_id"}).merge(related, on=["unique_id", "ds"], how="left")
    return target[["unique_id", "ds", "y", *EXOGENOUS]], related[["unique_id", "ds", *EXOGENOUS]]


def item_metadata(config: GeneratorConfig) -> pd.DataFrame:
    """item_id, category, brand from the generator's product events."""
    products = [e for e in generate(config).events if e["event_type"] == "product"]
    return pd.DataFrame(products)[["item_id", "category", "brand"]].drop_duplicates("item_id").reset_index(drop=True)


def holdout(
    target: pd.DataFrame, related: pd.DataFrame, horizon: int = HORIZON, metadata: pd.DataFrame | None = None
) -> tuple[ForecastInputs, pd.DataFrame]:
    """Inputs ending `horizon` weeks before the last week, and the held-out actuals (series per item and store when
    their ids hold a location)."""
    cut = target["ds"].max() - pd.Timedelta(weeks=horizon)
    train = target[target["ds"] <= cut].reset_index(drop=True)
    actual = target[(target["ds"] > cut) & target["unique_id"].isin(train["unique_id"].unique())]
    manifest = {
        "frequency": "W",
        "window_start": str(train["ds"].min().date()),
        "window_end": str((cut + pd.Timedelta(weeks=1)).date()),
        "horizon": horizon,
        "with_location": bool(train["unique_id"].str.contains(SEPARATOR, regex=False).any()),
        "timestamp_format": "yyyy-MM-dd",
    }
    metadata = metadata if metadata is not None else pd.DataFrame(columns=["item_id", "category", "brand"])
    return ForecastInputs(manifest, train, related, metadata), actual[["unique_id", "ds", "y"]].reset_index(drop=True)


def score(
    forecast: pd.DataFrame, actual: pd.DataFrame, history: pd.DataFrame, season: int = 52, quantiles=(0.1, 0.5, 0.9)
) -> dict:
    """Accuracy over every held-out period (a series without a forecast scores as a forecast of zero)."""
    frame = actual.merge(forecast, on=["unique_id", "ds"], how="left").fillna(0.0)
    return m.accuracy(frame, quantiles, history, season)


def single_model(inputs: ForecastInputs, name: str, backend: EnsembleModel) -> pd.DataFrame:
    """One local candidate fitted on every series, no selection: its quantile forecast over the horizon."""
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


def plain_lightgbm(inputs: ForecastInputs, quantiles=(0.1, 0.5, 0.9)) -> pd.DataFrame:
    """The baseline a data scientist writes first: mlforecast with LightGBM's defaults, one quantile objective
    per quantile, lags and rolling means of the raw target and two calendar features, no related series."""
    import lightgbm as lgb
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean

    weekly = inputs.frequency == "W"
    mlf = MLForecast(
        models={m.quantile_column(q): lgb.LGBMRegressor(objective="quantile", alpha=q, verbose=-1) for q in quantiles},
        freq=pandas_freq(inputs.frequency),
        lags=[1, 2, 4, 52] if weekly else [1, 7, 14, 28],
        lag_transforms={1: [RollingMean(4), RollingMean(13)]} if weekly else {1: [RollingMean(7), RollingMean(28)]},
        date_features=["month"] if weekly else ["dayofweek", "month"],
    )
    mlf.fit(inputs.target[["unique_id", "ds", "y"]], static_features=[])
    out = mlf.predict(inputs.horizon)
    columns = [m.quantile_column(q) for q in quantiles]
    out[columns] = out[columns].clip(lower=0.0)
    return out


def timed(fn, *args) -> tuple[pd.DataFrame, float]:
    began = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - began


def ensemble_forecast(inputs: ForecastInputs, backend: EnsembleModel) -> pd.DataFrame:
    return backend.forecast(inputs, backend.train(inputs))


def accuracy_lines(dataset: str, inputs: ForecastInputs, actual: pd.DataFrame, season: int, **extra) -> None:
    """forecast_accuracy's lines for one data set: the default ensemble against seasonal naive and plain LightGBM."""
    backend = EnsembleModel(EnsembleConfig(season_length=season))
    forecast = ensemble_forecast(inputs, backend)
    ours = score(forecast, actual, inputs.target, season)
    scored = actual.merge(forecast, on=["unique_id", "ds"], how="left").fillna(0.0)
    # One-sided rates beside the interval's coverage: with many zero actuals p10 sits on the zero mass, so the
    # inclusive interval covers more than 80 % even when p90 is calibrated.
    sides = {
        "share_at_most_p90": round(float((scored["y"] <= scored["p90"]).mean()), 4),
        "share_at_least_p10": round(float((scored["y"] >= scored["p10"]).mean()), 4),
        "zero_actuals_share": round(float((scored["y"] == 0).mean()), 4),
    }
    naive = score(single_model(inputs, "SeasonalNaive", backend), actual, inputs.target, season)
    plain = score(plain_lightgbm(inputs), actual, inputs.target, season)
    tags = {"dataset": dataset, "series": int(inputs.target["unique_id"].nunique()), **extra}
    emit("forecast_accuracy", "wape", ours["WAPE"], "fraction", baseline=naive["WAPE"], **tags)
    emit("forecast_accuracy", "wql", ours["avg_wQL"], "fraction", baseline=naive["avg_wQL"], **tags)
    emit("forecast_accuracy", "coverage_p10_p90", ours["coverage_p10_p90"], "fraction", baseline=0.8, **tags, **sides)
    emit("forecast_accuracy", "mase", ours["MASE"], "ratio", baseline=naive["MASE"], **tags)
    emit("forecast_accuracy", "wape_vs_lightgbm", ours["WAPE"], "fraction", baseline=plain["WAPE"], **tags)


def run(quick: bool, only: str | None = None) -> None:
    warnings.simplefilter("ignore")  # ARIMA rank warnings (stderr) would bury the JSON lines
    items, stores = (20, 2) if quick else (60, 2)
    target, related = weekly_demand(GeneratorConfig(seed=11, stores=stores, items=items, days=DAYS))
    inputs, actual = holdout(target, related)
    series = int(inputs.target["unique_id"].nunique())
    if only in (None, "forecast"):
        backend = EnsembleModel(EnsembleConfig())
        single_model(inputs, "AutoETS", backend)  # warm the numba caches and imports so neither side pays them
        ensemble_forecast(inputs, backend)
        forecast, seconds = timed(ensemble_forecast, inputs, backend)
        ets, ets_seconds = timed(single_model, inputs, "AutoETS", backend)
        plain, plain_seconds = timed(plain_lightgbm, inputs)
        ours = score(forecast, actual, inputs.target)["WAPE"]
        tags = {
            "series": series,
            "models": len(backend.candidates(inputs)),
            "backtest_windows": 3,
            "wape": round(ours, 4),
        }
        emit("forecast", "series_per_second", series / seconds, "series/s", baseline=series / ets_seconds, **tags,
             baseline_wape=round(score(ets, actual, inputs.target)["WAPE"], 4), baseline_model="AutoETS")  # fmt: skip
        plain_wape = round(score(plain, actual, inputs.target)["WAPE"], 4)
        emit("forecast", "series_per_second_vs_lightgbm", series / seconds, "series/s",
             baseline=series / plain_seconds, **tags, baseline_wape=plain_wape,
             baseline_model="plain LightGBM")  # fmt: skip
    if only in (None, "forecast_accuracy"):
        accuracy_lines("generator", inputs, actual, m.SEASON_LENGTH["W"], frequency="W", horizon=HORIZON)
        real, real_actual = online_retail.daily_inputs(online_retail.sales_lines(), top=200 if quick else None)
        accuracy_lines("online_retail", real, real_actual, online_retail.SEASON, frequency="D",
                       horizon=online_retail.HORIZON)  # fmt: skip
