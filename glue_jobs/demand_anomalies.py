"""Demand anomalies: periods whose demand leaves its expected band, per series of any dimension (item, item at a
store, category, store, channel, the total), with a direction, a 0-100 severity and the series below that moved it.

Plain pandas over the long frame (`series`, `ds`, `y`: one row per series and period, zeros included), so the
scheduled Glue job runs it per series group and the tests and the bench run it directly.

The expected demand of a period comes from the series' own past only: the mean of the same weekday over the previous
8 weeks (daily) or of the previous 8 weeks (weekly) without their largest and smallest, shrunk halfway to the same
trimmed mean of the last 56 days. Its variance is the mean of the last 56 squared residuals without the largest, at
least the series' long-run variance-to-mean ratio times the expectation. Periods the frame marks `explained` (a
promotion, a holiday, a closed day, a delisted item) are neither judged nor used as a reference, and neither end nor
extend a run.

A period is scored alone and as the end of runs of 3, 7 and 14 periods (the usable ones among them): the tail
probability of their demand under a negative binomial of that mean and variance, as a normal quantile. A spike is one
period far out; a stock-out, a broken feed or a level shift is several periods a little out each. A run of periods
without a sale is also scored on the share of periods the series sold in before it (counts, not units: an item whose
variance is its rare wholesale orders still sells on most days). The strongest score is the period's; beyond
THRESHOLD it is an anomaly. docs/decisions.md has the measurements behind each choice.
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
HOLD = 0.5  # an anomaly goes on through periods beyond this share of the threshold


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


def _trimmed_mean(values: np.ndarray, window: int, min_periods: int | None = None) -> np.ndarray:
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
    return np.where(count >= (window // 2 if min_periods is None else min_periods), mean, np.nan)


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


def _zero_runs(known: np.ndarray, usable: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The drop score of each period that ends a run of usable periods without a sale: counts of selling periods, not
    units (an item whose variance is its rare wholesale orders still sells on most days). With z zero periods among
    the n of the `window` before the run, the chance of k more in a row is the beta-binomial's
    prod_i (z + 1 + i) / (n + 2 + i): the share is uncertain, so a short past cannot make a short run unlikely.
    Explained periods neither end nor extend a run; a run longer than `window` scores no more. Returns (score, run
    length)."""
    sold = np.where(np.isnan(known), np.nan, (known > 0).astype(float))
    total, count = _window_sums(_past(sold), window)
    zeros_before, n_before = count - total, count
    score = np.zeros(known.shape)
    runs = np.ones(known.shape, dtype=int)
    length = np.zeros(known.shape[1], dtype=int)
    first_row = np.zeros(known.shape[1], dtype=int)
    alpha = np.ones(known.shape[1])
    beta = np.ones(known.shape[1])
    log_p = np.zeros(known.shape[1])
    for row in range(len(known)):
        zero = usable[row] & (np.nan_to_num(known[row], nan=1.0) == 0) & (n_before[row] >= window // 4)
        starts = zero & (length == 0)
        alpha = np.where(starts, zeros_before[row] + 1.0, alpha)
        beta = np.where(starts, n_before[row] - zeros_before[row] + 1.0, beta)
        log_p = np.where(starts, 0.0, log_p)
        first_row = np.where(starts, row, first_row)
        log_p = np.where(zero, log_p + np.log((alpha + length) / (alpha + beta + length)), log_p)
        length = np.where(zero, length + 1, np.where(usable[row], 0, length))
        runs[row] = np.where(zero, row - first_row + 1, 1)  # in periods of the calendar, explained ones included
        # Past the reference window the run is the series' new normal (a delisting the product events did not
        # report): it stops adding evidence, so the anomaly ends instead of lasting as long as the silence.
        scored = zero & (length <= window)
        score[row] = np.where(scored, -stats.norm.isf(np.exp(np.maximum(log_p, -700.0))), 0.0)
    return np.minimum(score, 0.0), runs


def _run_score(
    y: np.ndarray, expected: np.ndarray, variance: np.ndarray, usable: np.ndarray, run: int
) -> tuple[np.ndarray, int]:
    """The signed tail score of each period as the end of a run of `run` periods: the usable periods among them (a
    closed Saturday or a promotion day inside a stock-out does not end it), at least half of them."""
    observed, count = _window_sums(np.where(usable, y, np.nan), run)
    mean, _ = _window_sums(np.where(usable, expected, np.nan), run)
    valid = usable & (count >= max(1, -(-run // 2)))
    score = np.zeros(y.shape)
    score[valid] = _tail_score(observed[valid], mean[valid], count[valid] * variance[valid])
    return score, run


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
    recent = _trimmed_mean(known, spread_window, season * 2)
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
    for score, run in (*(_run_score(y, expected, variance, usable, run) for run in config.runs),
                       _zero_runs(known, usable, spread_window)):  # fmt: skip
        better = np.abs(score) > np.abs(best)
        best = np.where(better, score, best)
        best_run = np.where(better, run, best_run)
    spread = np.sqrt(np.fmax(variance, np.nan_to_num(expected)))
    wide = {"y": y, "expected": expected, "lower": np.maximum(expected - config.threshold * spread, 0.0),
            "upper": expected + config.threshold * spread, "score": best, "run": best_run,
            "explained": explained}  # fmt: skip
    series, periods = y_wide.columns.to_numpy(), y_wide.index.to_numpy()
    out = pd.DataFrame({"series": np.tile(series, len(periods)), "ds": np.repeat(periods, len(series)),
                        **{name: values.ravel() for name, values in wide.items()}})  # fmt: skip
    return out[~np.isnan(out["y"])].sort_values(["series", "ds"]).reset_index(drop=True)


def period(frequency: str) -> pd.Timedelta:
    """The length of one period of the frequency (D: a day, W: a week)."""
    return pd.Timedelta(days=1 if frequency == "D" else 7)


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
    scored = scored.sort_values(["series", "ds"]).reset_index(drop=True)
    flagged = scored[np.abs(scored["score"]) >= config.threshold].copy()
    if flagged.empty:
        days = pd.Series(dtype="datetime64[ns]")
        return flagged.assign(direction=pd.Series(dtype=object), severity=pd.Series(dtype=int), start=days, end=days,
                              first=days)  # fmt: skip
    flagged["direction"] = np.where(flagged["score"] > 0, "spike", "drop")
    step = period(config.frequency)
    # An explained period (a closed Saturday, a promotion day) neither ends an episode nor starts one: it carries the
    # state of the period before it. So does a period beyond half the threshold the same way (hysteresis: a 5-day
    # outage whose Sunday scored 3.9 is one anomaly).
    size, sign = np.abs(scored["score"]), np.sign(scored["score"])
    state = sign.where(size >= config.threshold, 0.0)
    carried = size >= config.threshold * HOLD
    if "explained" in scored:
        carried |= scored["explained"].to_numpy(bool)
    carried &= size < config.threshold
    state = state.mask(carried).groupby(scored["series"]).ffill().fillna(0.0)
    state = state.where(~carried | (state == sign) | (size == 0), 0.0)
    new = (scored["series"] != scored["series"].shift()) | (state != state.shift())
    new |= scored["ds"] - scored["ds"].shift() > step
    flagged["episode"] = new.cumsum().loc[flagged.index]
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
    strongest["start"] = np.minimum(strongest["start"], _run_start(scored, strongest, config, step))
    strongest = _merge_overlaps(strongest.drop(columns="episode"), step)
    strongest["severity"] = severity(strongest["score"].to_numpy(), config.threshold)
    return strongest


def _run_start(scored: pd.DataFrame, peaks: pd.DataFrame, config: AnomalyConfig, step: pd.Timedelta) -> pd.Series:
    """Where the run that scored each peak began: of its last `run` periods up to the peak, the start of the stretch
    whose deviations in the anomaly's direction are largest for their length (sum over the square root of the count,
    as the run scores do), so a 14-period run that scored a shift on its 10th day starts at the shift. A run of zeros
    longer than the longest run starts at its first zero."""
    spread = np.fmax((scored["upper"] - scored["expected"]).to_numpy() / config.threshold, 1e-9)
    explained = scored["explained"].to_numpy(bool) if "explained" in scored else np.zeros(len(scored), bool)
    usable = scored["expected"].notna().to_numpy() & ~explained
    deviation = np.where(usable, np.nan_to_num((scored["y"] - scored["expected"]).to_numpy() / spread), 0.0)
    series = scored["series"].to_numpy()
    peak = peaks.index.to_numpy()
    offsets = np.arange(max(config.runs))
    rows = peak[:, None] - offsets[None, :]
    inside = (rows >= 0) & (offsets[None, :] < peaks["run"].to_numpy()[:, None])
    rows = np.maximum(rows, 0)
    inside &= series[rows] == series[peak][:, None]
    sign = np.sign(peaks["score"].to_numpy())[:, None]
    total = np.cumsum(np.where(inside, deviation[rows], 0.0) * sign, axis=1)
    count = np.cumsum(inside & usable[rows], axis=1)
    strength = np.where(inside, total / np.sqrt(np.maximum(count, 1)), -np.inf)
    start = scored["ds"].to_numpy()[rows[np.arange(len(peak)), strength.argmax(axis=1)]]
    zeros = peaks["run"].to_numpy() > max(config.runs)
    start = np.where(zeros, (peaks["ds"] - (peaks["run"] - 1) * step).to_numpy(), start)
    return pd.Series(start, index=peaks.index)


def _merge_overlaps(found: pd.DataFrame, step: pd.Timedelta) -> pd.DataFrame:
    """Anomalies of one series and direction whose spans overlap or touch are one (a run's span reaches back before
    the period that first crossed the threshold, so a stock-out scored by two tests can be two episodes): the
    strongest row, over the union of the spans, from the first period flagged."""
    columns = list(found.columns)
    found = found.sort_values(["series", "direction", "start"])
    reach = found.groupby(["series", "direction"])["end"].cummax()
    new = (found["series"] != found["series"].shift()) | (found["direction"] != found["direction"].shift())
    found = found.assign(merged=(new | (found["start"] > reach.shift() + step)).cumsum())
    spans = found.groupby("merged").agg(start=("start", "min"), end=("end", "max"), first=("first", "min"))
    strongest = found.loc[found["score"].abs().groupby(found["merged"]).idxmax()]
    merged = strongest.drop(columns=["start", "end", "first"]).join(spans, on="merged")
    return merged[columns].reset_index(drop=True)


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
    step = period(frequency)
    new = (flagged["series"] != flagged["series"].shift()) | (flagged["direction"] != flagged["direction"].shift())
    new |= flagged["ds"] - flagged["ds"].shift() > step
    flagged["episode"] = new.cumsum()
    spans = flagged.groupby("episode").agg(series=("series", "first"), direction=("direction", "first"),
                                           start=("ds", "min"), end=("ds", "max"))  # fmt: skip
    return spans.reset_index(drop=True)
