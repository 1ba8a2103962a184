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

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

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


def _trimmed_mean(values: np.ndarray) -> float:
    """The mean without the largest and the smallest value (NaNs left out): a past spike does not lift it, and an
    intermittent series' expectation is not the zero its median would be."""
    values = values[~np.isnan(values)]
    if len(values) < 3:
        return float(values.mean()) if len(values) else float("nan")
    return float((values.sum() - values.max() - values.min()) / (len(values) - 2))


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


def _per_series(group: pd.DataFrame, config: AnomalyConfig) -> pd.DataFrame:
    season, spread_window = SEASON[config.frequency], SPREAD_WINDOW[config.frequency]
    y = group["y"].to_numpy(float)
    explained = group["explained"].to_numpy(bool) if "explained" in group else np.zeros(len(y), dtype=bool)
    known = np.where(explained, np.nan, y)  # promotions, holidays, closed days: neither judged nor a reference
    n = len(y)
    cycle = np.full(n, np.nan)
    for phase in range(season):  # the same weekday (or every week): the previous `history` values
        idx = np.arange(phase, n, season)
        past = pd.Series(known[idx]).shift(1).rolling(config.history, min_periods=config.history // 2)
        cycle[idx] = past.apply(_trimmed_mean, raw=True).to_numpy()
    recent = pd.Series(known).shift(1).rolling(spread_window, min_periods=season * 2).mean().to_numpy()
    # The weekday's own level has 8 observations; half of it comes from every recent day (shrinkage).
    expected = cycle if season == 1 else 0.5 * cycle + 0.5 * recent
    residual = known - expected
    variance = pd.Series(residual**2).shift(1).rolling(spread_window, min_periods=season * 2).mean().to_numpy()
    best = np.zeros(n)
    best_run = np.ones(n, dtype=int)
    usable = ~explained & ~np.isnan(expected) & ~np.isnan(variance)
    for run in config.runs:
        observed = pd.Series(np.where(usable, y, np.nan)).rolling(run).sum().to_numpy()
        mean = pd.Series(expected).rolling(run).sum().to_numpy()
        valid = usable & ~np.isnan(observed) & ~np.isnan(mean)
        score = np.zeros(n)
        score[valid] = _tail_score(observed[valid], mean[valid], run * variance[valid])
        better = np.abs(score) > np.abs(best)
        best = np.where(better, score, best)
        best_run = np.where(better, run, best_run)
    spread = np.sqrt(np.fmax(variance, np.nan_to_num(expected)))
    out = group[["series", "ds", "y"]].copy()
    out["expected"] = expected
    out["lower"] = np.maximum(expected - config.threshold * spread, 0.0)
    out["upper"] = expected + config.threshold * spread
    out["score"] = best
    out["run"] = best_run
    return out


def score_series(frame: pd.DataFrame, config: AnomalyConfig) -> pd.DataFrame:
    """Every series' periods with their expected demand, band, score (signed) and the run length behind it."""
    frame = frame.sort_values(["series", "ds"])
    parts = [_per_series(group, config) for _, group in frame.groupby("series", sort=True)]
    return pd.concat(parts, ignore_index=True) if parts else frame.assign(expected=[], lower=[], upper=[], score=[])


def severity(score: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """0-100, ranking like the score's size: 50 at the threshold, 75 at three times it."""
    size = np.abs(score)
    return np.round(100 * size / (size + threshold)).astype(int)


def anomalies(frame: pd.DataFrame, config: AnomalyConfig) -> pd.DataFrame:
    """The anomalous periods: series, ds, y, expected, lower, upper, score, run, direction (spike | drop), severity.
    Consecutive anomalous periods of a series in one direction are one anomaly, reported at its strongest period
    with `start` and `end` (so a level shift or a stock-out is one alert, not one per day)."""
    scored = score_series(frame, config)
    flagged = scored[np.abs(scored["score"]) >= config.threshold].copy()
    if flagged.empty:
        return flagged.assign(direction=[], severity=[], start=[], end=[])
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
