"""An AutoPredictor-like ensemble on statsforecast: backtest candidates, weight the best per series.

Train: every candidate model is backtested with statsforecast's cross_validation (n_windows windows,
step = horizon, the same as Amazon Forecast's backtest windows). Per series the TOP_K models with the
lowest backtest quantile loss (all quantiles, all windows) form the ensemble, weighted by 1 / loss^6;
the ensemble's quantiles are the weighted average of the models' quantiles. Its interval is then
widened or narrowed by one factor per quantile so the pooled backtest hits the nominal level (a split
conformal step: the models' own intervals are often too narrow on noisy retail series).
Forecast: the selected models are refit on the full history and combined with the stored weights.
The ensemble's backtest metrics are in-sample for the selection and calibration (optimistic); the
held-out test in tests/integration and `python -m bench forecast_accuracy` measure it out of sample.

Intervals: AutoETS, AutoARIMA, AutoTheta, SeasonalNaive, MSTL have native prediction intervals; the
Croston family (CrostonOptimized, ADIDA, IMAPA) gets statsforecast's ConformalIntervals. Exogenous
related series (price, promotion_flag, holiday_flag) are passed to every model; only AutoARIMA
(regression with ARIMA errors) uses them, the others ignore X.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from forecast_orchestrator import metrics as m
from forecast_orchestrator.series import ForecastInputs, pandas_freq

os.environ.setdefault("NIXTLA_NUMBA_CACHE", "1")  # compiled numba kernels survive the process

TOP_K = 3  # models per series in the ensemble
# Weights are proportional to loss ** -WEIGHT_POWER, so a clearly better model dominates (docs/decisions.md).
WEIGHT_POWER = 6.0
INTERMITTENT = ("CrostonOptimized", "ADIDA", "IMAPA")
EXOGENOUS_MODELS = ("AutoARIMA",)  # the candidates that use the related series
# The related columns the models see. `discount` is left out: it is non-zero exactly when promotion_flag is 1,
# which makes ARIMA's regression rank-deficient (docs/decisions.md).
MODEL_EXOGENOUS = ("price", "promotion_flag", "holiday_flag")
DEFAULT_MODELS = {
    "W": ("AutoETS", "AutoARIMA", "AutoTheta", "SeasonalNaive", *INTERMITTENT),
    "D": ("AutoETS", "AutoARIMA", "AutoTheta", "SeasonalNaive", *INTERMITTENT, "MSTL"),
}
YEAR = {"W": 52, "D": 365}
FALLBACK = "Naive"


@dataclass(frozen=True)
class EnsembleConfig:
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    backtest_windows: int = 3
    season_length: int | None = None  # None: 52 for W, 7 for D
    models: tuple[str, ...] | None = None  # None: DEFAULT_MODELS of the frequency
    n_jobs: int = 1
    use_spark: bool = False
    include_mean: bool = False


@dataclass
class TrainResult:
    predictor_id: str
    metrics: pd.DataFrame  # window, cutoff, model, wQL_<q>..., avg_wQL, WAPE, RMSE, MAPE, MASE, coverage_p10_p90
    selection: pd.DataFrame  # unique_id, model, weight, loss, plus scale_<pNN> (interval calibration)


def levels_for(quantiles: tuple[float, ...]) -> list[int]:
    """Central interval levels whose ends are the quantiles: 0.1 and 0.9 -> 80."""
    return sorted({round(100 * (1 - 2 * min(q, 1 - q))) for q in quantiles if abs(q - 0.5) > 1e-9})


def _model_column(alias: str, q: float) -> str:
    if abs(q - 0.5) < 1e-9:
        return alias
    level = round(100 * (1 - 2 * min(q, 1 - q)))
    return f"{alias}-{'lo' if q < 0.5 else 'hi'}-{level}"


def build_models(names: tuple[str, ...], frequency: str, season_length: int, horizon: int) -> list:
    """statsforecast model objects for candidate names; alias = name, so output columns are the names."""
    from statsforecast import models as sm
    from statsforecast.utils import ConformalIntervals

    conformal = ConformalIntervals(h=horizon, n_windows=2)
    factories: dict[str, Callable[[], Any]] = {
        "AutoETS": lambda: sm.AutoETS(season_length=season_length),
        # Non-seasonal for weekly data: the yearly pattern is left to SeasonalNaive/ETS/Theta (docs/decisions.md).
        "AutoARIMA": lambda: sm.AutoARIMA(season_length=season_length if season_length <= 12 else 1),
        "AutoTheta": lambda: sm.AutoTheta(season_length=season_length),
        "SeasonalNaive": lambda: sm.SeasonalNaive(season_length=season_length),
        "Naive": lambda: sm.Naive(),
        "HistoricAverage": lambda: sm.HistoricAverage(),
        "CrostonOptimized": lambda: sm.CrostonOptimized(prediction_intervals=conformal),
        "ADIDA": lambda: sm.ADIDA(prediction_intervals=conformal),
        "IMAPA": lambda: sm.IMAPA(prediction_intervals=conformal),
        # Several seasonalities: daily data with weekly and yearly cycles.
        "MSTL": lambda: sm.MSTL(
            season_length=[season_length, YEAR[frequency]], trend_forecaster=sm.AutoETS(model="ZZN")
        ),
    }
    unknown = [n for n in names if n not in factories]
    if unknown:
        raise ValueError(f"unknown candidate models {unknown}; choose from {sorted(factories)}")
    models: list[Any] = []
    for name in names:
        model = factories[name]()
        model.alias = name
        models.append(model)
    return models


@contextmanager
def _quiet_regression():
    """AutoARIMA's regression on a series whose history has no promotion (a constant promotion_flag column)
    is rank-deficient; statsforecast fits it anyway and statsmodels warns once per series and window."""
    with warnings.catch_warnings():
        try:
            from statsmodels.tools.sm_exceptions import SingularMatrixWarning

            warnings.simplefilter("ignore", SingularMatrixWarning)
        except ImportError:  # statsmodels is only there as statsforecast's dependency
            pass
        yield


class EnsembleModel:
    name = "statsforecast"

    def __init__(self, config: EnsembleConfig):
        self.config = config

    # -- configuration derived from the inputs -------------------------------------------------------
    def season_length(self, frequency: str) -> int:
        return self.config.season_length or m.SEASON_LENGTH[frequency]

    def candidates(self, inputs: ForecastInputs) -> tuple[str, ...]:
        names = self.config.models or DEFAULT_MODELS[inputs.frequency]
        if "MSTL" in names and inputs.target.groupby("unique_id").size().max() < 2 * YEAR[inputs.frequency]:
            names = tuple(n for n in names if n != "MSTL")  # the yearly cycle needs two years of history
        return tuple(names)

    def _statsforecast(self, names: tuple[str, ...], inputs: ForecastInputs):
        from statsforecast import StatsForecast
        from statsforecast.models import Naive

        season = self.season_length(inputs.frequency)
        models = build_models(names, inputs.frequency, season, inputs.horizon)
        return StatsForecast(
            models=models, freq=pandas_freq(inputs.frequency), n_jobs=self.config.n_jobs, fallback_model=Naive()
        )

    def _frame(self, frame: pd.DataFrame):
        """The frame statsforecast gets: pandas, or a Spark DataFrame to run through fugue on the cluster."""
        if not self.config.use_spark:
            return frame
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.getOrCreate()
        return spark.createDataFrame(frame)

    def _collect(self, result) -> pd.DataFrame:
        out = result if isinstance(result, pd.DataFrame) else result.toPandas()
        out["ds"] = pd.to_datetime(out["ds"])
        if "cutoff" in out:
            out["cutoff"] = pd.to_datetime(out["cutoff"])
        return out.reset_index(drop=True) if "unique_id" in out else out.reset_index()

    def _per_model(self, wide: pd.DataFrame, names: tuple[str, ...], keys: list[str]) -> pd.DataFrame:
        """statsforecast's wide output -> one row per (keys, model) with the quantile columns, clipped at 0."""
        parts = []
        for name in names:
            part = wide[keys].copy()
            part["model"] = name
            for q in self.config.quantiles:
                part[m.quantile_column(q)] = wide[_model_column(name, q)].to_numpy(dtype=float)
            part["mean"] = wide[name].to_numpy(dtype=float)
            parts.append(part)
        out = pd.concat(parts, ignore_index=True)
        columns = [*map(m.quantile_column, self.config.quantiles), "mean"]
        out[columns] = out[columns].clip(lower=0.0)  # demand is never negative
        return out

    # -- train ---------------------------------------------------------------------------------------
    def train(self, inputs: ForecastInputs) -> TrainResult:
        names = self.candidates(inputs)
        h, windows = inputs.horizon, self.config.backtest_windows
        history = inputs.target
        # Series too short for the backtest windows plus two conformal windows are not scored; they get
        # the models that are best over all scored series.
        lengths = history.groupby("unique_id").size()
        long_ids = lengths.index[lengths > h * (windows + 2) + 1]
        scored = history[history["unique_id"].isin(long_ids)]
        if scored.empty:
            raise ValueError(f"no series longer than {h * (windows + 2) + 1} periods to backtest (horizon {h})")
        sf = self._statsforecast(names, inputs)
        with _quiet_regression():
            cv = sf.cross_validation(
                df=self._frame(scored[["unique_id", "ds", "y", *MODEL_EXOGENOUS]]),
                h=h,
                n_windows=windows,
                step_size=h,
                level=levels_for(self.config.quantiles),
            )
        backtest = self._per_model(self._collect(cv), names, ["unique_id", "ds", "cutoff", "y"])
        selection = select(backtest, self.config.quantiles)
        ensemble = combine(backtest, selection, ["unique_id", "ds", "cutoff"], self.config.quantiles)
        ensemble = ensemble.merge(
            backtest[["unique_id", "ds", "cutoff", "y"]].drop_duplicates(), on=["unique_id", "ds", "cutoff"]
        )
        scales = calibrate(ensemble, self.config.quantiles)
        ensemble = apply_scales(ensemble, scales)
        for column, scale in scales.items():
            selection[f"scale_{column}"] = scale
        scored_frames = pd.concat([backtest, ensemble.assign(model="ensemble")], ignore_index=True)
        table = backtest_metrics(scored_frames, history, self.config, self.season_length(inputs.frequency))
        return TrainResult(predictor_id=self._predictor_id(inputs, names), metrics=table, selection=selection)

    def _predictor_id(self, inputs: ForecastInputs, names: tuple[str, ...]) -> str:
        key = json.dumps(
            {
                "config": asdict(self.config),
                "models": names,
                "window": [inputs.manifest.get(k) for k in ("frequency", "window_start", "window_end", "horizon")],
                "series": int(inputs.target["unique_id"].nunique()),
                "demand": round(float(inputs.target["y"].sum()), 3),
            },
            sort_keys=True,
            default=str,
        )
        return "sf-" + hashlib.sha1(key.encode()).hexdigest()[:16]

    # -- forecast ------------------------------------------------------------------------------------
    def forecast(self, inputs: ForecastInputs, trained: TrainResult) -> pd.DataFrame:
        """Refit the selected models on the full history and combine them: unique_id, ds, pNN..., [mean], model."""
        selection = complete_selection(trained.selection, inputs.target["unique_id"].unique())
        names = tuple(dict.fromkeys(selection["model"]))
        sf = self._statsforecast(names, inputs)
        future = inputs.future()
        kwargs = {"level": levels_for(self.config.quantiles)}
        with _quiet_regression():
            result = sf.forecast(
                df=self._frame(inputs.target[["unique_id", "ds", "y", *MODEL_EXOGENOUS]]),
                h=inputs.horizon,
                X_df=self._frame(future[["unique_id", "ds", *MODEL_EXOGENOUS]]),
                **kwargs,
            )
        per_model = self._per_model(self._collect(result), names, ["unique_id", "ds"])
        out = combine(per_model, selection, ["unique_id", "ds"], self.config.quantiles)
        scales = {c[len("scale_") :]: float(selection[c].iloc[0]) for c in selection.columns if c.startswith("scale_")}
        out = apply_scales(out, scales)
        if not self.config.include_mean:
            out = out.drop(columns="mean")
        out["model"] = "ensemble"
        return out.sort_values(["unique_id", "ds"]).reset_index(drop=True)


# -- pure functions over the long frames -----------------------------------------------------------------
def select(
    backtest: pd.DataFrame, quantiles: tuple[float, ...], top_k: int = TOP_K, power: float = WEIGHT_POWER
) -> pd.DataFrame:
    """Per series the top_k models by backtest quantile loss, weighted by loss ** -power (weights sum to 1).

    The loss is the pinball loss summed over quantiles, windows and periods; for one series it ranks the
    models exactly like wQL (same denominator) and stays defined when the series' actuals are all zero.
    """
    loss = np.zeros(len(backtest))
    for q in quantiles:
        loss += m.pinball(backtest["y"].to_numpy(float), backtest[m.quantile_column(q)].to_numpy(float), q)
    scores = (backtest.assign(loss=loss).groupby(["unique_id", "model"], sort=True)["loss"].sum().reset_index()).dropna(
        subset=["loss"]
    )
    scores = scores.sort_values(["unique_id", "loss", "model"])
    best = scores.groupby("unique_id").head(top_k).copy()
    loss = np.maximum(best["loss"].to_numpy(), 1e-9)
    inverse = (best.groupby("unique_id")["loss"].transform("min").clip(lower=1e-9).to_numpy() / loss) ** power
    best["weight"] = inverse / best.assign(inv=inverse).groupby("unique_id")["inv"].transform("sum").to_numpy()
    return best[["unique_id", "model", "weight", "loss"]].reset_index(drop=True)


def complete_selection(selection: pd.DataFrame, ids) -> pd.DataFrame:
    """The stored selection, plus series it has never seen (new items, a champion from an older run): those
    get the models that won most often, equally weighted."""
    missing = sorted(set(ids) - set(selection["unique_id"]))
    known = selection[selection["unique_id"].isin(set(ids))]
    if not missing:
        return known
    popular = selection.groupby("model")["weight"].sum().sort_values(ascending=False).head(TOP_K).index
    extra = pd.DataFrame([(uid, model) for uid in missing for model in popular], columns=["unique_id", "model"])
    extra["weight"] = 1.0 / len(popular)
    extra["loss"] = np.nan
    for column in [c for c in selection.columns if c.startswith("scale_")]:
        extra[column] = selection[column].iloc[0]
    return pd.concat([known, extra], ignore_index=True)


def combine(per_model: pd.DataFrame, selection: pd.DataFrame, keys: list[str], quantiles) -> pd.DataFrame:
    """Weighted average of the selected models' quantiles and means per series (quantile averaging)."""
    columns = [*map(m.quantile_column, quantiles), "mean"]
    joined = per_model.merge(selection[["unique_id", "model", "weight"]], on=["unique_id", "model"])
    present = joined[columns].notna()
    weighted = joined[columns].mul(joined["weight"], axis=0).fillna(0.0)
    weights = present.mul(joined["weight"], axis=0)
    weighted[keys] = weights[keys] = joined[keys]
    total = weighted.groupby(keys, sort=True)[columns].sum()
    # Renormalise over the models that did forecast the period.
    return (total / weights.groupby(keys, sort=True)[columns].sum().replace(0.0, np.nan)).reset_index()


def calibrate(ensemble: pd.DataFrame, quantiles) -> dict[str, float]:
    """One factor per quantile scaling its distance from p50, so the pooled backtest share of actuals below
    it equals the quantile (split conformal on the backtest windows). 1.0 when there is nothing to fit."""
    if "p50" not in ensemble:
        return {}
    scales = {}
    for q in quantiles:
        column = m.quantile_column(q)
        if column == "p50":
            continue
        spread = (ensemble[column] - ensemble["p50"]).to_numpy(float)
        residual = (ensemble["y"] - ensemble["p50"]).to_numpy(float)
        usable = np.abs(spread) > 1e-9
        if usable.sum() < 10:
            scales[column] = 1.0
            continue
        # y <= p50 + s * spread  <=>  residual / spread <= s (spread > 0) or >= s (spread < 0).
        ratio = residual[usable] / spread[usable]
        target = q if q > 0.5 else 1 - q  # share of ratios that must stay inside
        scales[column] = float(max(np.quantile(ratio, target), 0.0))
    return scales


def apply_scales(frame: pd.DataFrame, scales: dict[str, float]) -> pd.DataFrame:
    out = frame.copy()
    for column, scale in scales.items():
        if column in out:
            out[column] = (out["p50"] + scale * (out[column] - out["p50"])).clip(lower=0.0)
    return out


def backtest_metrics(frames: pd.DataFrame, history: pd.DataFrame, config: EnsembleConfig, season: int) -> pd.DataFrame:
    """Accuracy per backtest window and model, plus a summary row per model pooled over all windows."""
    rows = []
    cutoffs = sorted(frames["cutoff"].unique())
    # WAPE/RMSE/MAPE/MASE use `mean` only when the predictor exports it (as Forecast does), or when there is no p50.
    keep_mean = config.include_mean or all(abs(q - 0.5) > 1e-9 for q in config.quantiles)
    scored = frames if keep_mean else frames.drop(columns="mean")
    for model, per_model in scored.groupby("model", sort=True):
        for number, cutoff in enumerate(cutoffs, start=1):
            window = per_model[per_model["cutoff"] == cutoff]
            past = history[history["ds"] <= cutoff]
            rows.append(
                {
                    "window": str(number),
                    "cutoff": pd.Timestamp(cutoff).strftime("%Y-%m-%d"),
                    "model": model,
                    **m.accuracy(window, config.quantiles, past, season),
                }
            )
        summary = {
            c: float(pd.Series([r[c] for r in rows if r["model"] == model], dtype=float).mean())
            for c in m.metric_columns(config.quantiles)
        }
        rows.append({"window": "summary", "cutoff": None, "model": model, **summary})
    return pd.DataFrame(rows)
