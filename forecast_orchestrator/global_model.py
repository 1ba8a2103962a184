"""The global model: one LightGBM over every series (mlforecast features), quantiles from quantile objectives.

Local models see one series at a time; on item-level retail demand (short, lumpy, many items) one model over all
series learns what the items share: how demand follows its recent level, the calendar, price and promotions,
and what a category sells, so it also forecasts items with a short history (cold start from their metadata).

Features (mlforecast builds them): lags and rolling means of the target, calendar features of the period, the
related series known over the horizon (price, promotion_flag, discount, holiday_flag, and the price relative to
the series' usual price), and the item metadata (category, brand) and the location as categorical features.
The target is modelled as log1p(demand), so items of very different volume share one model; quantiles survive
the monotone transform back. One booster per quantile, all on the same features. The horizon is forecast
recursively with the median booster, and every quantile booster reads the features of that median path (so
the p90 booster never feeds on its own p90s). Quantiles are sorted per row: they never cross.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from forecast_orchestrator import metrics as m
from forecast_orchestrator.series import SEPARATOR, ForecastInputs, pandas_freq

NAME = "LightGBM"
EXOGENOUS = ("price", "promotion_flag", "discount", "holiday_flag")
STATIC = ("category", "brand", "location")
# Lags per frequency: the recent level, the month, the quarter and the year (weekly); a week, the month (daily).
LAGS = {"W": (1, 2, 3, 4, 8, 13, 26, 52), "D": (1, 2, 3, 7, 14, 21, 28)}


@dataclass(frozen=True)
class GlobalModelConfig:
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    trees: int = 150
    learning_rate: float = 0.05
    leaves: int = 31
    min_leaf: int = 10  # fewest rows a leaf holds
    threads: int = 0  # 0: every core
    seed: int = 0


def _week(dates: pd.DatetimeIndex) -> np.ndarray:
    return dates.isocalendar().week.to_numpy(dtype=int)


def _rolling(frequency: str) -> dict[int, list[Any]]:
    from mlforecast.lag_transforms import ExpandingMean, RollingMean

    if frequency == "W":
        return {1: [RollingMean(4), RollingMean(13), ExpandingMean()], 52: [RollingMean(4)]}
    return {1: [RollingMean(7), RollingMean(28), ExpandingMean()], 7: [RollingMean(4)]}


def _date_features(frequency: str) -> list[Any]:
    return ["month", _week] if frequency == "W" else ["dayofweek", "day", "month", _week]


def _statics(inputs: ForecastInputs, ids: pd.Index) -> pd.DataFrame:
    """category, brand, location per series as categoricals ('unknown' where the metadata says nothing)."""
    out = pd.DataFrame({"unique_id": ids})
    split = out["unique_id"].str.split(SEPARATOR, n=1, expand=True)
    out["item_id"] = split[0]
    out["location"] = split[1] if split.shape[1] > 1 else "all"
    meta = inputs.metadata
    if len(meta) and "item_id" in meta:
        meta = meta.drop_duplicates("item_id").set_index("item_id")
        for column in ("category", "brand"):
            values = meta[column] if column in meta else pd.Series(dtype=object)
            out[column] = out["item_id"].map(values)
    for column in STATIC:
        if column not in out:
            out[column] = "unknown"
        out[column] = out[column].fillna("unknown").astype(str)
    return out.drop(columns="item_id")


class GlobalModel:
    """Fit on a history, forecast the next `horizon` periods of every series, quantiles as `pNN` columns."""

    def __init__(self, config: GlobalModelConfig | None = None):
        self.config = config or GlobalModelConfig()

    def _params(self, alpha: float) -> dict[str, Any]:
        cfg = self.config
        return {
            "objective": "quantile",
            "alpha": alpha,
            "learning_rate": cfg.learning_rate,
            "num_leaves": cfg.leaves,
            "min_data_in_leaf": cfg.min_leaf,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "feature_fraction": 0.8,
            "num_threads": cfg.threads or os.cpu_count() or 1,
            "seed": cfg.seed,
            "deterministic": True,  # the same forecasts on any thread count (pandas and Spark runs agree)
            "verbosity": -1,
        }

    def forecast(
        self, inputs: ForecastInputs, history: pd.DataFrame, horizon: int, future: pd.DataFrame
    ) -> pd.DataFrame:
        """Fit on `history` (unique_id, ds, y, exogenous) and forecast `horizon` periods with the exogenous values
        in `future` (unique_id, ds, exogenous over the horizon): unique_id, ds, pNN..., mean (= the median)."""
        import lightgbm as lgb
        from mlforecast import MLForecast
        from sklearn.dummy import DummyRegressor

        frequency = inputs.frequency
        history = history.sort_values(["unique_id", "ds"])
        usual = history.groupby("unique_id")["price"].median().replace(0.0, np.nan)
        categories: dict[str, pd.CategoricalDtype] = {}

        def frame(rows: pd.DataFrame) -> pd.DataFrame:
            out = rows[["unique_id", "ds", *(["y"] if "y" in rows else []), *EXOGENOUS]].copy()
            out["price_ratio"] = (out["price"] / out["unique_id"].map(usual)).fillna(1.0)
            return out

        train = frame(history)
        train["y"] = np.log1p(train["y"].clip(lower=0.0))
        statics = _statics(inputs, pd.Index(train["unique_id"].unique()))
        for column in STATIC:
            categories[column] = pd.CategoricalDtype(sorted(statics[column].unique()))
            statics[column] = statics[column].astype(categories[column])
        train = train.merge(statics, on="unique_id", how="left")

        quantiles = sorted(self.config.quantiles)
        median = min(quantiles, key=lambda q: abs(q - 0.5))  # the path the recursion follows
        mlf = MLForecast(
            models={"median": DummyRegressor()},  # replaced by the fitted median booster
            freq=pandas_freq(frequency),
            lags=[lag for lag in LAGS[frequency] if lag < len(train)],
            lag_transforms=_rolling(frequency),
            date_features=_date_features(frequency),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lags of short series are null, which LightGBM handles
            features: pd.DataFrame = mlf.preprocess(train, static_features=list(STATIC), dropna=False)  # type: ignore[assignment]
            columns = list(mlf.ts.features_order_)
            data = lgb.Dataset(features[columns], features["y"], free_raw_data=False)  # binned once, for every q
            boosters = {q: lgb.train(self._params(q), data, num_boost_round=self.config.trees) for q in quantiles}
            mlf.models_ = {"median": boosters[median]}
            steps: list[pd.DataFrame] = []

            def keep(step: pd.DataFrame) -> pd.DataFrame:
                steps.append(step)
                return step

            future_x = frame(future[future["unique_id"].isin(statics["unique_id"])])
            path = mlf.predict(horizon, X_df=future_x, before_predict_callback=keep)
        out = path[["unique_id", "ds"]].copy()
        # mlforecast asks for one step of every series at a time (series in path order): (steps, series) -> rows.
        for q in quantiles:
            values = np.stack([boosters[q].predict(step[columns]) for step in steps]).T.ravel()
            out[m.quantile_column(q)] = np.expm1(values).clip(min=0.0)
        names = [m.quantile_column(q) for q in quantiles]
        out[names] = np.sort(out[names].to_numpy(float), axis=1)
        out["mean"] = out[m.quantile_column(median)]
        return out.reset_index(drop=True)

    def backtest(
        self, inputs: ForecastInputs, windows: int, horizon: int, done: Callable[[int], None] | None = None
    ) -> pd.DataFrame:
        """Forecasts from `windows` cutoffs, each `horizon` periods apart and the last `horizon` periods before the
        history's end (the cutoffs statsforecast's cross_validation uses): unique_id, ds, cutoff, y, pNN..., mean.
        `done(n)` is called after window n."""
        target = inputs.target
        step = pd.tseries.frequencies.to_offset(pandas_freq(inputs.frequency))
        end = target["ds"].max()
        parts = []
        for k in range(windows, 0, -1):
            cutoff = end - step * (k * horizon)
            history = target[target["ds"] <= cutoff]
            actual = target[(target["ds"] > cutoff) & (target["ds"] <= cutoff + step * horizon)]
            if history.empty or actual.empty:
                continue
            future = actual.drop(columns="y")
            forecast = self.forecast(inputs, history, horizon, future)
            scored = forecast.merge(actual[["unique_id", "ds", "y"]], on=["unique_id", "ds"], how="inner")
            parts.append(scored.assign(cutoff=cutoff))
            if done is not None:
                done(windows - k + 1)
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
