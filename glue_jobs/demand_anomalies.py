"""Demand anomalies: periods whose demand leaves its expected band, per series of any dimension (item, item at a
store, category, store, channel, the total), with a direction, a 0-100 severity and the series below that moved it.

Plain pandas over the long frame (`series`, `ds`, `y`: one row per series and period, zeros included), so the
scheduled Glue job runs it per series group and the tests and the bench run it directly.

The expected demand of a period is a seasonal baseline from the series' own past only: the median of the same
weekday over the previous 8 weeks (daily) or of the previous 8 weeks (weekly), less the largest and the smallest.
Its spread is the mean absolute past residual (x 1.2533, a standard deviation for normal noise), floored at the
Poisson spread of the expected demand (a series selling 4 a day varies by about 2 even when its past happened to be
flat). Periods the frame marks `explained` (a promotion, a holiday, a day the shop was closed) are neither judged
nor used as a reference. A period
is scored alone and as the end of a run of 3 and of 7 periods (the sum of their residuals over its spread): a spike
is one period far out, a stock-out or a broken feed is several periods a little out each, and a level shift starts
as such a run. The strongest of the three is the period's score; beyond THRESHOLD it is an anomaly.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.ndimage import maximum_filter1d

from forecast_orchestrator.series import pandas_freq

SEASON = {"D": 7, "W": 1}  # periods between the same position in the cycle the baseline compares with
HISTORY = 8  # cycles behind the baseline (8 weeks)
SPREAD_WINDOW = {"D": 56, "W": 26}  # past residuals behind the spread
RUNS = (1, 3, 7, 14)
THRESHOLD = 4.0  # standard deviations; severity 50 at the threshold


@dataclass(frozen=True)
class AnomalyConfig:
    frequency: str = "D"
    threshold: float = THRESHOLD
    runs: tuple[int, ...] = RUNS
    history: int = HISTORY


def _window_sums(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(sum, count) of the non-NaN values of each column's last `window` rows up to each row (cumulative sums: every
    column at once; rounded to 9 digits, so sums of whole units stay whole)."""
    known = ~np.isnan(values)
    zero = np.zeros((1, values.shape[1]))
    total = np.concatenate([zero, np.cumsum(np.where(known, values, 0.0), axis=0)])
    count = np.concatenate([zero, np.cumsum(known, axis=0)])
    start = np.maximum(np.arange(1, len(values) + 1) - window, 0)
    end = np.arange(1, len(values) + 1)
    return np.round(total[end] - total[start], 9), count[end] - count[start]


def _past(values: np.ndarray) -> np.ndarray:
    """Each row's previous row (NaN for the first): a period's references are its past only."""
    return np.concatenate([np.full((1, values.shape[1]), np.nan), values[:-1]])


def _rolling(values: np.ndarray, window: int, min_periods: int | None = None) -> np.ndarray:
    """The rolling sum down each column over `window` rows (min_periods None: NaN unless all are there), or the
    rolling mean of at least `min_periods` values."""
    total, count = _window_sums(values, window)
    if min_periods is None:
        return np.where(count == window, total, np.nan)
    return np.where(count >= min_periods, total / np.maximum(count, 1), np.nan)


def _trimmed_variance(squares: np.ndarray, window: int, min_periods: int) -> np.ndarray:
    """The mean of each column's last `window` squared residuals without the largest: one past spike does not hide
    the next one for the whole window."""
    total, count = _window_sums(squares, window)
    largest = maximum_filter1d(np.nan_to_num(squares), window, axis=0, origin=(window - 1) // 2, mode="constant")
    return np.where(count >= min_periods, (total - largest) / np.maximum(count - 1, 1), np.nan)


def _dispersion(values: np.ndarray, min_periods: int) -> np.ndarray:
    """Each column's variance over mean of all its past values (at least 1, NaN before `min_periods` of them)."""
    past = _past(values)
    count = np.cumsum(~np.isnan(past), axis=0)
    total, squares = np.nancumsum(past, axis=0), np.nancumsum(past**2, axis=0)
    with np.errstate(all="ignore"):
        mean = total / count
        ratio = (squares / count - mean**2) / mean
    return np.where(count >= min_periods, np.fmax(np.nan_to_num(ratio, nan=1.0), 1.0), np.nan)


def _trimmed_mean(values: np.ndarray, window: int) -> np.ndarray:
    """The mean of each column's previous `window` values without their largest and smallest (NaNs left out, at least
    window // 2 of them): a past spike does not lift it, and an intermittent series' expectation is not the zero its
    median would be."""
    past = _past(values)
    total, count = _window_sums(past, window)
    padded = np.concatenate([np.full((window - 1, values.shape[1]), np.nan), past])
    windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows: NaN, left out below
        trimmed = (total - np.nanmax(windows, axis=-1) - np.nanmin(windows, axis=-1)) / np.maximum(count - 2, 1)
    mean = np.where(count >= 3, trimmed, total / np.maximum(count, 1))
    return np.where(count >= window // 2, mean, np.nan)


def _tail_score(observed: np.ndarray, mean: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """Signed z-score of an observed count against a negative binomial of that mean and variance (Poisson where
    the variance is not above the mean): + the upper tail's, - the lower tail's, as a normal quantile."""
    variance = np.maximum(variance, mean + 1e-9)
    p = np.clip(mean / variance, 1e-9, 1 - 1e-9)
    n = np.maximum(mean * p / (1 - p), 1e-9)
    upper = stats.nbinom.sf(np.ceil(observed) - 1, n, p)  # P(Y >= observed)
    lower = stats.nbinom.cdf(np.floor(observed), n, p)  # P(Y <= observed)
    spike = stats.norm.isf(np.clip(upper, 1e-300, 1.0))
    drop = stats.norm.isf(np.clip(lower, 1e-300, 1.0))
    return np.where(spike > drop, np.maximum(spike, 0.0), -np.maximum(drop, 0.0))


def score_series(frame: pd.DataFrame, config: AnomalyConfig) -> pd.DataFrame:
    """Every series' periods with their expected demand, band, score (signed) and the run length behind it. Series
    are columns of one calendar (a period before a series' first is no period of it), scored all at once."""
    season, spread_window = SEASON[config.frequency], SPREAD_WINDOW[config.frequency]
    frame = frame.sort_values(["series", "ds"])
    if "explained" not in frame:
        frame = frame.assign(explained=False)
    y_wide = frame.pivot(index="ds", columns="series", values="y")
    y_wide = y_wide.reindex(pd.date_range(y_wide.index.min(), y_wide.index.max(), freq=pandas_freq(config.frequency)))
    y = y_wide.to_numpy(float)
    explained = frame.pivot(index="ds", columns="series", values="explained").reindex(y_wide.index)
    explained = explained.to_numpy(dtype=float, na_value=0.0) > 0
    known = np.where(explained, np.nan, y)  # promotions, holidays, closed days: neither judged nor a reference
    cycle = np.full(y.shape, np.nan)
    for phase in range(season):  # the same weekday (or every week): the previous `history` values
        cycle[phase::season] = _trimmed_mean(known[phase::season], config.history)
    recent = _rolling(_past(known), spread_window, season * 2)
    # The weekday's own level has 8 observations; half of it comes from every recent day (shrinkage).
    expected = cycle if season == 1 else 0.5 * cycle + 0.5 * recent
    variance = _trimmed_variance(_past((known - expected) ** 2), spread_window, season * 2)
    # A series that sold nothing lately still sells now and then (half a unit over the spread window), and in
    # orders as lumpy as its whole past's: its variance is at least its long-run dispersion times its expectation.
    expected = np.where(np.isnan(expected), np.nan, np.fmax(expected, 0.5 / spread_window))
    variance = np.fmax(variance, _dispersion(known, season * 2) * expected)
    best = np.zeros(y.shape)
    best_run = np.ones(y.shape, dtype=int)
    usable = ~explained & ~np.isnan(y) & ~np.isnan(expected) & ~np.isnan(variance)
    for run in config.runs:
        observed = _rolling(np.where(usable, y, np.nan), run)
        mean = _rolling(expected, run)
        valid = usable & ~np.isnan(observed) & ~np.isnan(mean)
        score = np.zeros(y.shape)
        score[valid] = _tail_score(observed[valid], mean[valid], run * variance[valid])
        better = np.abs(score) > np.abs(best)
        best = np.where(better, score, best)
        best_run = np.where(better, run, best_run)
    spread = np.sqrt(np.fmax(variance, np.nan_to_num(expected)))
    wide = {"y": y, "expected": expected, "lower": np.maximum(expected - config.threshold * spread, 0.0),
            "upper": expected + config.threshold * spread, "score": best, "run": best_run}  # fmt: skip
    series, periods = y_wide.columns.to_numpy(), y_wide.index.to_numpy()
    out = pd.DataFrame({"series": np.tile(series, len(periods)), "ds": np.repeat(periods, len(series)),
                        **{name: values.ravel() for name, values in wide.items()}})  # fmt: skip
    return out[~np.isnan(out["y"])].sort_values(["series", "ds"]).reset_index(drop=True)


def severity(score: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """0-100, ranking like the score's size: 50 at the threshold, 75 at three times it."""
    size = np.abs(score)
    return np.round(100 * size / (size + threshold)).astype(int)


def anomalies(frame: pd.DataFrame, config: AnomalyConfig) -> pd.DataFrame:
    """The anomalies of the frame's series (episodes of score_series)."""
    return episodes(score_series(frame, config), config)


def episodes(scored: pd.DataFrame, config: AnomalyConfig) -> pd.DataFrame:
    """The anomalous periods: series, ds, y, expected, lower, upper, score, run, direction (spike | drop), severity.
    Consecutive anomalous periods of a series in one direction are one anomaly, reported at its strongest period
    with `start` and `end` (so a level shift or a stock-out is one alert, not one per day) and `first`, the first
    period flagged: scores use only the past, so later data never moves it (an anomaly's identity across runs)."""
    flagged = scored[np.abs(scored["score"]) >= config.threshold].copy()
    if flagged.empty:
        days = pd.Series(dtype="datetime64[ns]")
        return flagged.assign(direction=pd.Series(dtype=object), severity=pd.Series(dtype=int), start=days, end=days,
                              first=days)  # fmt: skip
    flagged["direction"] = np.where(flagged["score"] > 0, "spike", "drop")
    step = pd.Timedelta(days=1 if config.frequency == "D" else 7)
    flagged = flagged.sort_values(["series", "ds"])
    new = (flagged["series"] != flagged["series"].shift()) | (flagged["direction"] != flagged["direction"].shift())
    new |= flagged["ds"] - flagged["ds"].shift() > step
    flagged["episode"] = new.cumsum()
    strongest = flagged.loc[flagged.groupby("episode")["score"].apply(lambda s: s.abs().idxmax())]
    # A run's score stays high for a while after the run: the anomaly ends at its last period that is itself more
    # than one spread off in the anomaly's direction.
    spread = (flagged["upper"] - flagged["expected"]) / config.threshold
    own = (flagged["y"] - flagged["expected"]) * np.sign(flagged["score"]) > spread
    ends = flagged[own].groupby("episode")["ds"].max()
    spans = flagged.groupby("episode")["ds"].agg(start="min", end="max")
    spans["first"] = spans["start"]
    spans["end"] = ends.reindex(spans.index).fillna(spans["end"])
    strongest = strongest.join(spans, on="episode")
    strongest["end"] = np.maximum(strongest["end"], strongest["ds"])
    # A run's score ends at its last period: the anomaly started `run - 1` periods before.
    strongest["start"] = np.minimum(strongest["start"], strongest["ds"] - (strongest["run"] - 1) * step)
    strongest["severity"] = severity(strongest["score"].to_numpy(), config.threshold)
    return strongest.drop(columns="episode").reset_index(drop=True)


def rolling_zscore(frame: pd.DataFrame, frequency: str, window: int = 28, threshold: float = 3.0) -> pd.DataFrame:
    """The baseline the bench compares with: a period beyond `threshold` standard deviations of the previous
    `window` periods' mean, consecutive ones merged the same way."""
    frame = frame.sort_values(["series", "ds"])
    past = frame.groupby("series")["y"]
    mean = past.transform(lambda s: s.shift(1).rolling(window, min_periods=window // 2).mean())
    sd = past.transform(lambda s: s.shift(1).rolling(window, min_periods=window // 2).std()).clip(lower=1e-9)
    scored = frame.assign(score=((frame["y"] - mean) / sd).fillna(0.0))
    flagged = scored[np.abs(scored["score"]) >= threshold].copy()
    flagged["direction"] = np.where(flagged["score"] > 0, "spike", "drop")
    step = pd.Timedelta(days=1 if frequency == "D" else 7)
    new = (flagged["series"] != flagged["series"].shift()) | (flagged["direction"] != flagged["direction"].shift())
    new |= flagged["ds"] - flagged["ds"].shift() > step
    flagged["episode"] = new.cumsum()
    spans = flagged.groupby("episode").agg(series=("series", "first"), direction=("direction", "first"),
                                           start=("ds", "min"), end=("ds", "max"))  # fmt: skip
    return spans.reset_index(drop=True)
