"""Forecast accuracy as Amazon Forecast defines it (developer guide, "Evaluating Predictor Accuracy").

Plain numpy/pandas over the long frame: `unique_id, ds, y` plus one column per quantile (`p10`, `p50`,
`p90`, ...) and optionally `mean`. Every backend's backtests are scored by these functions, so the
accuracy gate compares like with like.

- wQL[tau] = 2 * sum(tau * max(y - q, 0) + (1 - tau) * max(q - y, 0)) / sum(|y|); average wQL = their mean.
- WAPE = sum|y - yhat| / sum|y|, RMSE = sqrt(mean((y - yhat)^2)), MAPE = mean(|y - yhat| / |y|) over y != 0.
  Forecast scores WAPE and RMSE with the mean forecast when the predictor produced one; we do the same
  and fall back to p50 when there is no `mean` column.
- MASE = mean|y - yhat| / MAE of the in-sample seasonal naive forecast, per series, averaged over the
  series with a non-zero scale. Season length 52 (W) or 7 (D), 1 when the history is too short.
- coverage = share of actuals inside [p10, p90] (both ends inclusive).

Undefined ratios (all actuals zero) are 0.0 when the forecast is exact too and NaN otherwise: a defined
value a report can show as "n/a", never a ZeroDivisionError.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

SEASON_LENGTH = {"W": 52, "D": 7}


def quantile_column(q: float) -> str:
    """`p10` for 0.1: the column name Forecast's export uses for a quantile."""
    return f"p{round(q * 100):d}"


def quantile_columns(frame: pd.DataFrame) -> list[str]:
    """A frame's quantile columns (p10, p50, ...), lowest first."""
    return sorted((c for c in frame.columns if c.startswith("p") and c[1:].isdigit()), key=lambda c: int(c[1:]))


def _ratio(numerator: float, denominator: float) -> float:
    if denominator > 0:
        return float(numerator / denominator)
    return 0.0 if numerator == 0 else float("nan")


def pinball(y: np.ndarray, q: np.ndarray, tau: float) -> np.ndarray:
    """Pinball loss of quantile forecast q at level tau, per element."""
    diff = np.asarray(y, dtype=float) - np.asarray(q, dtype=float)
    return np.maximum(diff, 0) * tau + np.maximum(-diff, 0) * (1 - tau)


def quantile_loss(y: np.ndarray, q: np.ndarray, tau: float) -> float:
    """Total pinball loss of quantile forecast q at level tau (the wQL numerator before the factor 2)."""
    return float(np.sum(pinball(y, q, tau)))


def wql(y: np.ndarray, q: np.ndarray, tau: float) -> float:
    return _ratio(2 * quantile_loss(y, q, tau), float(np.sum(np.abs(y))))


def wape(y: np.ndarray, yhat: np.ndarray) -> float:
    return _ratio(float(np.sum(np.abs(np.asarray(y, float) - np.asarray(yhat, float)))), float(np.sum(np.abs(y))))


def rmse(y: np.ndarray, yhat: np.ndarray) -> float:
    if len(y) == 0:
        return float("nan")
    return float(np.sqrt(np.mean((np.asarray(y, float) - np.asarray(yhat, float)) ** 2)))


def mape(y: np.ndarray, yhat: np.ndarray) -> float:
    y = np.asarray(y, dtype=float)
    keep = y != 0
    if not keep.any():
        return float("nan")
    return float(np.mean(np.abs(y[keep] - np.asarray(yhat, float)[keep]) / np.abs(y[keep])))


def coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    y = np.asarray(y, dtype=float)
    if len(y) == 0:
        return float("nan")
    slack = 1e-9 * np.maximum(np.abs(y), 1.0)  # a band that collapses onto the actual still covers it
    return float(np.mean((y >= np.asarray(lo, float) - slack) & (y <= np.asarray(hi, float) + slack)))


def seasonal_naive_scale(history: np.ndarray, season_length: int) -> float:
    """In-sample MAE of the seasonal naive forecast y[t-m]; m falls back to 1 when history <= m."""
    history = np.asarray(history, dtype=float)
    m = season_length if len(history) > season_length else 1
    if len(history) <= m:
        return float("nan")
    return float(np.mean(np.abs(history[m:] - history[:-m])))


def mase(actuals: pd.DataFrame, history: pd.DataFrame, season_length: int, point: str = "p50") -> float:
    """Mean over series of MAE(y, point) / seasonal naive in-sample MAE. Series with zero scale are skipped."""
    scales = (
        history.sort_values(["unique_id", "ds"])
        .groupby("unique_id", sort=False)["y"]
        .agg(lambda s: seasonal_naive_scale(s.to_numpy(), season_length))
    )
    errors = (actuals["y"] - actuals[point]).abs().groupby(actuals["unique_id"]).mean()
    scaled = errors / scales.reindex(errors.index)
    scaled = scaled[np.isfinite(scaled)]
    return float(scaled.mean()) if len(scaled) else float("nan")


def point_column(frame: pd.DataFrame) -> str:
    """The forecast WAPE, RMSE, MAPE and MASE are scored with: `mean` when present (as Forecast does), else p50."""
    return "mean" if "mean" in frame.columns and frame["mean"].notna().all() else "p50"


def metric_columns(quantiles: Sequence[float]) -> list[str]:
    return [*(f"wQL_{q:g}" for q in quantiles), "avg_wQL", "WAPE", "RMSE", "MAPE", "MASE", "coverage_p10_p90"]


def accuracy(
    frame: pd.DataFrame,
    quantiles: Sequence[float],
    history: pd.DataFrame | None = None,
    season_length: int = 1,
) -> dict[str, float]:
    """All metrics of one forecast frame (actual `y` beside the quantile columns), pooled over its series.

    `history` (unique_id, ds, y before the forecast start) is needed for MASE; without it MASE is NaN.
    """
    y = frame["y"].to_numpy(dtype=float)
    out: dict[str, float] = {}
    for q in quantiles:
        out[f"wQL_{q:g}"] = wql(y, frame[quantile_column(q)].to_numpy(dtype=float), q)
    losses = [out[f"wQL_{q:g}"] for q in quantiles]
    out["avg_wQL"] = float(np.mean(losses)) if losses else float("nan")
    point = point_column(frame)
    yhat = frame[point].to_numpy(dtype=float)
    out["WAPE"] = wape(y, yhat)
    out["RMSE"] = rmse(y, yhat)
    out["MAPE"] = mape(y, yhat)
    out["MASE"] = mase(frame, history, season_length, point) if history is not None else float("nan")
    if {"p10", "p90"} <= set(frame.columns):
        out["coverage_p10_p90"] = coverage(y, frame["p10"].to_numpy(float), frame["p90"].to_numpy(float))
    else:
        out["coverage_p10_p90"] = float("nan")
    return out
