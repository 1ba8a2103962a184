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
# The what-if's response booster: demand only falls when the price rises and only rises with a promotion (LightGBM's
# monotone constraints; its quantile objective allows none, so the quantile boosters are not constrained).
MONOTONE = {"price": -1, "price_ratio": -1, "promotion_flag": 1, "discount": 1}
SCENARIO_COLUMNS = ("price", "promotion_flag", "discount", "price_ratio")
# What drives a forecast: the median booster's feature contributions, summed per group of features.
DRIVERS = ("recent_demand", "seasonality", "price", "promotion", "holiday", "item_and_store")


def driver(feature: str) -> str:
    """The driver group of a global-model feature."""
    if feature.startswith(("lag", "rolling", "expanding")):
        return "recent_demand"
    named = {"price": "price", "price_ratio": "price", "promotion_flag": "promotion", "discount": "promotion",
             "holiday_flag": "holiday"}  # fmt: skip
    return named.get(feature, "item_and_store" if feature in STATIC else "seasonality")


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
        return self.fit(inputs, history).predict(horizon, future)

    def fit(self, inputs: ForecastInputs, history: pd.DataFrame, with_response: bool = False) -> FittedGlobalModel:
        """One booster per quantile on `history`'s features. With_response, also the what-if's response booster: the
        mean of log1p(demand) on the same features, monotone in price and promotion (FittedGlobalModel.scenario)."""
        import lightgbm as lgb
        from mlforecast import MLForecast
        from sklearn.dummy import DummyRegressor

        frequency = inputs.frequency
        history = history.sort_values(["unique_id", "ds"])
        usual = history.groupby("unique_id")["price"].median().replace(0.0, np.nan)
        train = _frame(history, usual)
        train["y"] = np.log1p(train["y"].clip(lower=0.0))
        statics = _statics(inputs, pd.Index(train["unique_id"].unique()))
        for column in STATIC:
            statics[column] = statics[column].astype(pd.CategoricalDtype(sorted(statics[column].unique())))
        train = train.merge(statics, on="unique_id", how="left")

        quantiles = sorted(self.config.quantiles)
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
            response = None
            if with_response:
                signs = [MONOTONE.get(c, 0) for c in columns]
                params = {**self._params(0.5), "objective": "regression", "monotone_constraints": signs}
                params.pop("alpha")
                response = lgb.train(params, data, num_boost_round=self.config.trees)
        return FittedGlobalModel(mlf, boosters, columns, usual, list(statics["unique_id"]), response)

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


def _frame(rows: pd.DataFrame, usual: pd.Series) -> pd.DataFrame:
    """The model's inputs of the rows: target (if any), exogenous, and the price relative to the usual price."""
    out = rows[["unique_id", "ds", *(["y"] if "y" in rows else []), *EXOGENOUS]].copy()
    out["price_ratio"] = (out["price"] / out["unique_id"].map(usual)).fillna(1.0)
    return out


@dataclass
class FittedGlobalModel:
    """The fitted global model: the feature state of every series (mlforecast), one booster per quantile."""

    mlf: Any
    boosters: dict[float, Any]
    columns: list[str]
    usual_price: pd.Series  # per unique_id: the median price of its history (price_ratio's denominator)
    ids: list[str]
    response: Any = None  # the monotone response booster of a what-if (fit with_response)

    @property
    def quantiles(self) -> list[float]:
        return sorted(self.boosters)

    def path(self, horizon: int, future: pd.DataFrame, ids: list[str] | None = None) -> pd.DataFrame:
        """The median path of the series `ids` (default: every fitted one) with `future`'s exogenous values: one row
        per series and period (series by series), unique_id, ds and the features every booster reads there. The
        horizon is forecast recursively with the median booster, so the quantile boosters read the features of the
        median's path (the p90 booster never feeds on its own p90s)."""
        median = min(self.quantiles, key=lambda q: abs(q - 0.5))
        self.mlf.models_ = {"median": self.boosters[median]}
        known = set(self.ids)
        wanted = self.ids if ids is None else [i for i in ids if i in known]
        steps: list[pd.DataFrame] = []

        def keep(step: pd.DataFrame) -> pd.DataFrame:
            steps.append(step[self.columns])
            return step

        future_x = _frame(future[future["unique_id"].isin(wanted)], self.usual_price)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            keys = self.mlf.predict(
                horizon, X_df=future_x, before_predict_callback=keep, ids=None if ids is None else wanted
            )[["unique_id", "ds"]].reset_index(drop=True)
        # mlforecast asks for one step of every series at a time: (steps, series) -> series by series
        stacked = pd.concat(steps, ignore_index=True)
        order = (np.arange(len(steps))[None, :] * len(steps[0]) + np.arange(len(steps[0]))[:, None]).ravel()
        return pd.concat([keys, stacked.iloc[order].reset_index(drop=True)], axis=1)

    def quantiles_on(self, path: pd.DataFrame) -> pd.DataFrame:
        """Every quantile booster on a path's features: unique_id, ds, pNN..., mean (= the median), never crossing."""
        out = path[["unique_id", "ds"]].copy()
        for q in self.quantiles:
            out[m.quantile_column(q)] = np.expm1(self.boosters[q].predict(path[self.columns])).clip(min=0.0)
        names = [m.quantile_column(q) for q in self.quantiles]
        out[names] = np.sort(out[names].to_numpy(float), axis=1)
        median = min(self.quantiles, key=lambda q: abs(q - 0.5))
        out["mean"] = out[m.quantile_column(median)]
        return out

    def predict(self, horizon: int, future: pd.DataFrame, ids: list[str] | None = None) -> pd.DataFrame:
        """Forecast `horizon` periods of the series `ids` (default: every fitted one) with the exogenous values in
        `future`: unique_id, ds, pNN..., mean (= the median)."""
        return self.quantiles_on(self.path(horizon, future, ids))

    def scenario(self, path: pd.DataFrame, baseline: pd.DataFrame, changed: pd.DataFrame) -> pd.DataFrame:
        """The scenario forecast of a path's series: the baseline (quantiles_on(path)) times the response booster's
        ratio at `changed`'s values (price, promotion, discount per unique_id and ds) against the path's, period by
        period on the baseline's path. The response is monotone, so a price cut never lowers a forecast and a
        promotion never does; the scenario's extra sales do not feed later periods' lags."""
        if self.response is None:
            raise ValueError("this global model was fit without the what-if response booster (fit with_response)")
        values = path[["unique_id", "ds"]].merge(_frame(changed, self.usual_price), on=["unique_id", "ds"], how="left")
        features = path[self.columns]
        altered = features.copy()
        for column in SCENARIO_COLUMNS:
            if column in altered:
                altered[column] = values[column].to_numpy()
        shift = self.response.predict(altered) - self.response.predict(features)
        scenario = baseline.copy()
        for column in [m.quantile_column(q) for q in self.quantiles] + ["mean"]:
            scenario[column] = ((1.0 + baseline[column].to_numpy()) * np.exp(shift) - 1.0).clip(min=0.0)
        return scenario

    def contributions(self, path: pd.DataFrame) -> pd.DataFrame:
        """What drives the median forecast on a path: LightGBM's feature contributions of the median booster, summed
        per driver (DRIVERS) and the booster's base value, in log1p units (they add up to log1p of the median before
        the quantiles are sorted): unique_id, ds, base, <driver>..."""
        median = min(self.quantiles, key=lambda q: abs(q - 0.5))
        values = self.boosters[median].predict(path[self.columns], pred_contrib=True)
        out = path[["unique_id", "ds"]].copy()
        out["base"] = values[:, -1]
        groups = [driver(c) for c in self.columns]
        for name in DRIVERS:
            picked = [i for i, g in enumerate(groups) if g == name]
            out[name] = values[:, picked].sum(axis=1) if picked else 0.0
        return out
