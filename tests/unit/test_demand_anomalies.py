"""Demand anomalies (glue_jobs/demand_anomalies.py) on seeded daily series with known events: a stock-out, a level
shift and a spike are found with their direction and span; a promotion marked explained is not an anomaly; a quiet
series gives none."""

from __future__ import annotations

import numpy as np
import pandas as pd

from glue_jobs.demand_anomalies import AnomalyConfig, anomalies, rolling_zscore, severity

DAYS = pd.date_range("2024-01-01", periods=240, freq="D")


def _series(name: str, level: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    weekly = np.tile([1.0, 1.0, 1.1, 1.1, 1.3, 1.5, 0.6], len(DAYS) // 7 + 1)[: len(DAYS)]
    return pd.DataFrame({"series": name, "ds": DAYS, "y": rng.poisson(level * weekly).astype(float)})


def test_a_stock_out_a_level_shift_and_a_spike_are_found_with_their_direction():
    stock_out, shift, spike, quiet = (_series(n, 12.0, s) for n, s in (("A", 1), ("B", 2), ("C", 3), ("D", 4)))
    stock_out.loc[stock_out["ds"].between("2024-07-01", "2024-07-07"), "y"] = 0.0
    shift.loc[shift["ds"] >= "2024-07-10", "y"] = np.round(shift.loc[shift["ds"] >= "2024-07-10", "y"] * 2.5)
    spike.loc[spike["ds"] == "2024-07-15", "y"] += 60
    found = anomalies(pd.concat([stock_out, shift, spike, quiet]), AnomalyConfig())
    by_series = {s: group for s, group in found.groupby("series")}
    assert set(by_series) == {"A", "B", "C"}  # the quiet series has none
    (a,) = by_series["A"].itertuples()
    assert a.direction == "drop" and pd.Timestamp("2024-07-01") <= a.start <= a.end <= pd.Timestamp("2024-07-08")
    assert (by_series["B"]["direction"] == "spike").all() and by_series["B"]["start"].min() >= pd.Timestamp(
        "2024-07-04"
    )
    (c,) = by_series["C"].itertuples()
    assert (c.direction, c.ds, c.run) == ("spike", pd.Timestamp("2024-07-15"), 1) and c.y > c.upper
    assert 50 <= c.severity <= 100 and a.severity >= 50


def test_an_explained_promotion_is_no_anomaly_and_the_z_score_flags_it():
    promoted = _series("P", 10.0, 5)
    week = promoted["ds"].between("2024-06-03", "2024-06-09")
    promoted.loc[week, "y"] *= 3
    assert anomalies(promoted.assign(explained=week), AnomalyConfig()).empty
    assert len(anomalies(promoted, AnomalyConfig())) >= 1  # unexplained, the same week is one
    flagged = rolling_zscore(promoted, "D")
    assert ((flagged["start"] <= pd.Timestamp("2024-06-09")) & (flagged["end"] >= pd.Timestamp("2024-06-03"))).any()


def test_severity_ranks_like_the_score_and_stays_within_0_and_100():
    scores = np.array([0.0, 4.0, -4.0, 12.0, 1e6])
    assert severity(scores).tolist() == [0, 50, 50, 75, 100]
