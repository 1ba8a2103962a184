"""Amazon Forecast's accuracy metrics on hand-computed examples, including the all-zero edge cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from forecast_orchestrator import metrics as m


def frame(y, p10, p50, p90, uid="A"):
    n = len(y)
    return pd.DataFrame(
        {
            "unique_id": [uid] * n,
            "ds": pd.date_range("2024-01-01", periods=n, freq="W-MON"),
            "y": y,
            "p10": p10,
            "p50": p50,
            "p90": p90,
        }
    )


def test_wql_matches_forecast_definition():
    # y=[10, 0, 5], q=[8, 2, 5], tau=0.1: 0.1*2 + 0.9*2 + 0 = 2.0; wQL = 2 * 2.0 / 15
    assert m.wql(np.array([10.0, 0, 5]), np.array([8.0, 2, 5]), 0.1) == pytest.approx(4 / 15)
    # tau=0.9: 0.9*2 + 0.1*2 = 2.0 as well
    assert m.wql(np.array([10.0, 0, 5]), np.array([8.0, 2, 5]), 0.9) == pytest.approx(4 / 15)


def test_point_metrics():
    y, p = np.array([10.0, 0, 5]), np.array([8.0, 2, 5])
    assert m.wape(y, p) == pytest.approx(4 / 15)
    assert m.rmse(y, p) == pytest.approx(math.sqrt(8 / 3))
    assert m.mape(y, p) == pytest.approx((0.2 + 0.0) / 2)  # the y == 0 term is ignored
    assert m.coverage(y, np.array([9.0, 0, 5]), np.array([11.0, 1, 6])) == pytest.approx(1.0)
    assert m.coverage(y, np.array([11.0, 0, 6]), np.array([12.0, 1, 7])) == pytest.approx(1 / 3)


def test_accuracy_pools_quantiles_and_uses_mean_when_present():
    f = frame([10.0, 0, 5], [6.0, 0, 4], [8.0, 2, 5], [12.0, 3, 6])
    acc = m.accuracy(f, (0.1, 0.5, 0.9))
    # wQL_0.1: 0.1*(4+0+1) = 0.5 -> 1/15; wQL_0.5: 0.5*(2+2+0)=2 -> 4/15; wQL_0.9: 0.1*(2+3+1)=0.6 -> 1.2/15
    assert acc["wQL_0.1"] == pytest.approx(1 / 15)
    assert acc["wQL_0.5"] == pytest.approx(4 / 15)
    assert acc["wQL_0.9"] == pytest.approx(1.2 / 15)
    assert acc["avg_wQL"] == pytest.approx((1 + 4 + 1.2) / 45)
    assert acc["WAPE"] == pytest.approx(4 / 15)
    assert acc["coverage_p10_p90"] == pytest.approx(1.0)
    assert math.isnan(acc["MASE"])  # no history given
    with_mean = m.accuracy(f.assign(mean=[10.0, 0, 5]), (0.1, 0.5, 0.9))
    assert with_mean["WAPE"] == 0.0 and with_mean["RMSE"] == 0.0


def test_mase_scales_by_in_sample_seasonal_naive():
    history = frame([1.0, 3, 2, 4], [0] * 4, [0] * 4, [0] * 4)[["unique_id", "ds", "y"]]
    actual = frame([5.0, 5], [0, 0], [4.0, 7], [0, 0])
    # season 2: in-sample |2-1| + |4-3| -> MAE 1; forecast MAE (1 + 2) / 2 = 1.5
    assert m.mase(actual, history, season_length=2) == pytest.approx(1.5)
    # season 52 > history: falls back to 1: |3-1|,|2-3|,|4-2| -> 5/3
    assert m.mase(actual, history, season_length=52) == pytest.approx(1.5 / (5 / 3))


def test_all_zero_actuals_give_defined_values():
    zeros = frame([0.0, 0, 0], [0.0, 0, 0], [0.0, 0, 0], [0.0, 0, 0])
    exact = m.accuracy(zeros, (0.1, 0.5, 0.9), zeros[["unique_id", "ds", "y"]], 52)
    assert exact["WAPE"] == 0.0 and exact["avg_wQL"] == 0.0 and exact["coverage_p10_p90"] == 1.0
    assert math.isnan(exact["MAPE"]) and math.isnan(exact["MASE"])  # no non-zero actual, zero scale
    off = m.accuracy(zeros.assign(p50=1.0, p90=2.0), (0.1, 0.5, 0.9))
    assert math.isnan(off["WAPE"]) and math.isnan(off["wQL_0.5"])  # undefined, not a ZeroDivisionError
    empty = m.accuracy(zeros.iloc[:0], (0.1, 0.5, 0.9))
    assert empty["WAPE"] == 0.0 and math.isnan(empty["RMSE"]) and math.isnan(empty["coverage_p10_p90"])


def test_quantile_column_names():
    assert [m.quantile_column(q) for q in (0.1, 0.5, 0.9, 0.29, 0.05)] == ["p10", "p50", "p90", "p29", "p5"]
