"""An AutoPredictor-like ensemble: backtest the candidates, weight the best per series, calibrate the interval.

Candidates: the global model (forecast_orchestrator/global_model.py, `LightGBM`: one model over all series)
and the local statsforecast models (AutoETS, AutoARIMA, AutoTheta, SeasonalNaive, MSTL, the Croston family,
...). The default is the global model alone: on the tuning data it was more accurate than every mix with local
models and 20x faster than the old default set (docs/decisions.md); local candidates are configuration.

Train: every candidate is backtested over n_windows windows of one horizon each (step = horizon, the same as
Amazon Forecast's backtest windows; statsforecast's cross_validation for the local models, the same cutoffs for
the global one). Per series the TOP_K models with the lowest backtest quantile loss (all quantiles, all
windows, shrunk towards each model's pooled loss) form the ensemble, weighted by relative loss^-6; the
ensemble's quantiles are the weighted average of the models' quantiles. Its interval is then widened or
narrowed by one factor per quantile so the pooled backtest hits the nominal level (a split conformal step).
Series the local models cannot backtest (too short) get the global model. Forecast: the selected models are
refit on the full history and combined with the stored weights. The ensemble's backtest metrics are in-sample
for the selection and calibration (optimistic); `python -m bench forecast_accuracy` measures it out of sample.

Intervals: AutoETS, AutoARIMA, AutoTheta, SeasonalNaive, MSTL have native prediction intervals; the Croston
family gets statsforecast's ConformalIntervals; the global model has quantile objectives. Exogenous related
series (price, promotion_flag, holiday_flag) reach every model; AutoARIMA (regression with ARIMA errors) and
the global model use them.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from forecast_orchestrator import metrics as m
from forecast_orchestrator.global_model import NAME as GLOBAL
from forecast_orchestrator.global_model import FittedGlobalModel, GlobalModel, GlobalModelConfig
from forecast_orchestrator.series import ForecastInputs, pandas_freq

os.environ.setdefault("NIXTLA_NUMBA_CACHE", "1")  # compiled numba kernels survive the process

TOP_K = 3  # models per series in the ensemble
# Weights are proportional to loss ** -WEIGHT_POWER, so a clearly better model dominates (docs/decisions.md).
WEIGHT_POWER = 6.0
SHRINK = 0.8  # how far a series' verdict is pulled towards the pooled one (select; docs/decisions.md)
INTERMITTENT = ("CrostonOptimized", "ADIDA", "IMAPA")
EXOGENOUS_MODELS = ("AutoARIMA",)  # the candidates that use the related series
# The related columns the models see. `discount` is left out: it is non-zero exactly when promotion_flag is 1,
# which makes ARIMA's regression rank-deficient (docs/decisions.md).
MODEL_EXOGENOUS = ("price", "promotion_flag", "holiday_flag")
DEFAULT_MODELS = (GLOBAL,)
LOCAL_MODELS = ("AutoETS", "AutoARIMA", "AutoTheta", "SeasonalNaive", "Naive", "HistoricAverage", *INTERMITTENT, "MSTL")
CANDIDATES = (GLOBAL, *LOCAL_MODELS)
YEAR = {"W": 52, "D": 365}
FALLBACK = "Naive"


@dataclass(frozen=True)
class EnsembleConfig:
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    backtest_windows: int = 3
    season_length: int | None = None  # None: 52 for W, 7 for D
    models: tuple[str, ...] | None = None  # None: DEFAULT_MODELS
    n_jobs: int = 0  # processes of the local models; 0: every core
    use_spark: bool = False
    include_mean: bool = False
    global_model: GlobalModelConfig = field(default_factory=GlobalModelConfig)
    shrink: float = SHRINK


@dataclass
class TrainResult:
    predictor_id: str
    metrics: pd.DataFrame  # window, cutoff, model, wQL_<q>..., avg_wQL, WAPE, RMSE, MAPE, MASE, coverage_p10_p90
    selection: pd.DataFrame  # unique_id, model, weight, loss, plus scale_<pNN> (interval calibration)
    backtest: pd.DataFrame | None = None  # the ensemble's backtest: unique_id, ds, cutoff, y, pNN..., mean


Report = Callable[[dict[str, Any]], None]
CHUNK = 2_000  # series per call of the local models: bounds memory and paces the progress reports


class Progress:
    """Series done out of the total over the fits of one step (each backtest window and the forecast fit every
    series once), with the elapsed time and an ETA, sent to `report` after each fit."""

    def __init__(self, step: str, total: int, report: Report | None, clock: Callable[[], float] = time.monotonic):
        self.step, self.total, self.done, self.report, self.clock = step, max(total, 1), 0, report, clock
        self.started = clock()

    def advance(self, series: int, phase: str) -> None:
        self.done = min(self.total, self.done + series)
        if self.report is None:
            return
        elapsed = self.clock() - self.started
        eta = elapsed / self.done * (self.total - self.done) if self.done else None
        self.report(
            {
                "step": self.step,
                "phase": phase,
                "series_done": self.done,
                "series_total": self.total,
                "elapsed_s": round(elapsed, 1),
                "eta_s": None if eta is None else round(eta, 1),
            }
        )


def _chunks(ids: np.ndarray) -> list[np.ndarray]:
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)] or [ids]


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
        self.global_model = GlobalModel(replace(config.global_model, quantiles=tuple(config.quantiles)))

    # -- configuration derived from the inputs -------------------------------------------------------
    def season_length(self, frequency: str) -> int:
        return self.config.season_length or m.SEASON_LENGTH[frequency]

    def candidates(self, inputs: ForecastInputs) -> tuple[str, ...]:
        names = self.config.models or DEFAULT_MODELS
        unknown = [n for n in names if n not in CANDIDATES]
        if unknown:
            raise ValueError(f"unknown candidate models {unknown}; choose from {', '.join(CANDIDATES)}")
        if "MSTL" in names and inputs.target.groupby("unique_id").size().max() < 2 * YEAR[inputs.frequency]:
            names = tuple(n for n in names if n != "MSTL")  # the yearly cycle needs two years of history
        return tuple(names)

    def _statsforecast(self, names: tuple[str, ...], inputs: ForecastInputs):
        from statsforecast import StatsForecast
        from statsforecast.models import Naive

        season = self.season_length(inputs.frequency)
        models = build_models(names, inputs.frequency, season, inputs.horizon)
        return StatsForecast(
            models=models, freq=pandas_freq(inputs.frequency), n_jobs=self.config.n_jobs or -1, fallback_model=Naive()
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
    def _local_backtest(self, names: tuple[str, ...], inputs: ForecastInputs, progress: Progress) -> pd.DataFrame:
        """statsforecast's cross_validation of the local models on the series long enough for it, in chunks."""
        h, windows = inputs.horizon, self.config.backtest_windows
        history = inputs.target
        # Series too short for the backtest windows plus two conformal windows are not scored by the local models.
        lengths = history.groupby("unique_id").size()
        long_ids = lengths.index[lengths > h * (windows + 2) + 1].to_numpy()
        sf = self._statsforecast(names, inputs)
        parts = []
        for ids in _chunks(long_ids) if len(long_ids) else []:
            scored = history[history["unique_id"].isin(ids)]
            with _quiet_regression():
                cv = sf.cross_validation(
                    df=self._frame(scored[["unique_id", "ds", "y", *MODEL_EXOGENOUS]]),
                    h=h,
                    n_windows=windows,
                    step_size=h,
                    level=levels_for(self.config.quantiles),
                )
            parts.append(self._per_model(self._collect(cv), names, ["unique_id", "ds", "cutoff", "y"]))
            progress.advance(len(ids) * windows, f"backtest of {', '.join(names)}")
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def _global_backtest(self, inputs: ForecastInputs, progress: Progress) -> pd.DataFrame:
        series = inputs.target["unique_id"].nunique()

        def window_done(number: int) -> None:
            progress.advance(series, f"backtest window {number} of {GLOBAL}")

        frame = self.global_model.backtest(inputs, self.config.backtest_windows, inputs.horizon, window_done)
        return frame.assign(model=GLOBAL) if len(frame) else frame

    def train(self, inputs: ForecastInputs, report: Report | None = None) -> TrainResult:
        """Backtest every candidate, select and weight per series, calibrate; `report` gets progress dicts."""
        names = self.candidates(inputs)
        local = tuple(n for n in names if n != GLOBAL)
        series, windows = inputs.target["unique_id"].nunique(), self.config.backtest_windows
        progress = Progress("train", series * windows * ((GLOBAL in names) + bool(local)), report)
        parts = [self._local_backtest(local, inputs, progress) if local else pd.DataFrame()]
        parts.append(self._global_backtest(inputs, progress) if GLOBAL in names else pd.DataFrame())
        parts = [p for p in parts if len(p)]
        if not parts:
            h = inputs.horizon
            raise ValueError(f"no series long enough to backtest {names} ({windows} windows of {h} periods)")
        backtest = pd.concat(parts, ignore_index=True)
        history = inputs.target
        selection = select(backtest, self.config.quantiles, shrink=self.config.shrink)
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
        return TrainResult(self._predictor_id(inputs, names), table, selection, ensemble)

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
    def forecast(
        self,
        inputs: ForecastInputs,
        trained: TrainResult,
        report: Report | None = None,
        keep: Callable[[FittedGlobalModel], None] | None = None,
    ) -> pd.DataFrame:
        """Refit the selected models on the full history and combine them: unique_id, ds, pNN..., [mean], model.
        `keep` gets the refitted global model (for what-if scenarios) whenever it is a candidate: fitted for that
        alone when no series selected it."""
        selection = complete_selection(trained.selection, inputs.target["unique_id"].unique())
        names = tuple(dict.fromkeys(selection["model"]))
        local = tuple(n for n in names if n != GLOBAL)
        local_ids = selection.loc[selection["model"].isin(local), "unique_id"].unique()
        series = inputs.target["unique_id"].nunique()
        fit_global = GLOBAL in names or (keep is not None and GLOBAL in self.candidates(inputs))
        progress = Progress("forecast", len(local_ids) + series * fit_global, report)
        future = inputs.future()
        parts = []
        if local:
            sf = self._statsforecast(local, inputs)
            for ids in _chunks(local_ids):
                history = inputs.target[inputs.target["unique_id"].isin(ids)]
                with _quiet_regression():
                    result = sf.forecast(
                        df=self._frame(history[["unique_id", "ds", "y", *MODEL_EXOGENOUS]]),
                        h=inputs.horizon,
                        X_df=self._frame(future[future["unique_id"].isin(ids)][["unique_id", "ds", *MODEL_EXOGENOUS]]),
                        level=levels_for(self.config.quantiles),
                    )
                parts.append(self._per_model(self._collect(result), local, ["unique_id", "ds"]))
                progress.advance(len(ids), f"forecast of {', '.join(local)}")
        if fit_global:
            fitted = self.global_model.fit(inputs, inputs.target, with_response=keep is not None)
            if GLOBAL in names:
                parts.append(fitted.predict(inputs.horizon, future).assign(model=GLOBAL))
            if keep is not None:
                keep(fitted)
            progress.advance(series, f"forecast of {GLOBAL}")
        per_model = pd.concat(parts, ignore_index=True)
        out = combine(per_model, selection, ["unique_id", "ds"], self.config.quantiles)
        out = apply_scales(out, selection_scales(selection))
        if not self.config.include_mean:
            out = out.drop(columns="mean")
        out["model"] = "ensemble"
        return out.sort_values(["unique_id", "ds"]).reset_index(drop=True)


# -- pure functions over the long frames -----------------------------------------------------------------
def select(
    backtest: pd.DataFrame,
    quantiles: tuple[float, ...],
    top_k: int = TOP_K,
    power: float = WEIGHT_POWER,
    shrink: float = SHRINK,
) -> pd.DataFrame:
    """Per series the top_k models by backtest quantile loss, weighted by relative loss ** -power (weights sum to 1).

    The loss is the pinball loss summed over quantiles, windows and periods; for one series it ranks the
    models exactly like wQL (same denominator) and stays defined when the series' actuals are all zero. A
    model's loss relative to the series' best is shrunk towards its pooled relative loss over all series
    (geometric blend, `shrink` in 0..1): a few backtest periods of one series are a noisy verdict, so a model
    that is worse almost everywhere needs a clear win on a series to take its weight.
    """
    loss = np.zeros(len(backtest))
    for q in quantiles:
        loss += m.pinball(backtest["y"].to_numpy(float), backtest[m.quantile_column(q)].to_numpy(float), q)
    scores = (backtest.assign(loss=loss).groupby(["unique_id", "model"], sort=True)["loss"].sum().reset_index()).dropna(
        subset=["loss"]
    )
    floor = scores.groupby("unique_id")["loss"].transform("min").clip(lower=1e-9)
    relative = np.maximum(scores["loss"].to_numpy(), 1e-9) / floor.to_numpy()
    pooled = scores.assign(floor=floor).groupby("model")[["loss", "floor"]].sum()
    pooled_relative = (pooled["loss"].clip(lower=1e-9) / pooled["floor"]).reindex(scores["model"]).to_numpy()
    scores["score"] = relative ** (1 - shrink) * pooled_relative**shrink
    scores = scores.sort_values(["unique_id", "score", "model"])
    best = scores.groupby("unique_id").head(top_k).copy()
    inverse = (best.groupby("unique_id")["score"].transform("min").to_numpy() / best["score"].to_numpy()) ** power
    best["weight"] = inverse / best.assign(inv=inverse).groupby("unique_id")["inv"].transform("sum").to_numpy()
    return best[["unique_id", "model", "weight", "loss"]].reset_index(drop=True)


def complete_selection(selection: pd.DataFrame, ids) -> pd.DataFrame:
    """The stored selection, plus series it has never seen (new items, a champion from an older run): those
    get the global model when it is a candidate (it forecasts from the item's metadata and the little history
    there is), else the models that won most often, equally weighted."""
    missing = sorted(set(ids) - set(selection["unique_id"]))
    known = selection[selection["unique_id"].isin(set(ids))]
    if not missing:
        return known
    popular = selection.groupby("model")["weight"].sum().sort_values(ascending=False).head(TOP_K).index
    if GLOBAL in set(selection["model"]):
        popular = pd.Index([GLOBAL])  # the one candidate that forecasts a series it has barely seen
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


def selection_scales(selection: pd.DataFrame) -> dict[str, float]:
    """The interval calibration a selection carries (its scale_<pNN> columns, one value each): pNN -> factor."""
    return {c[len("scale_") :]: float(selection[c].iloc[0]) for c in selection.columns if c.startswith("scale_")}


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
