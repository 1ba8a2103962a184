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


def test_a_stock_out_across_closed_days_is_one_anomaly_from_its_first_day():
    shop = _series("S", 12.0, 6)
    sundays = shop["ds"].dt.dayofweek == 6
    shop.loc[sundays, "y"] = 0.0  # the shop is closed on Sundays
    out = shop["ds"].between("2024-07-02", "2024-07-15")
    shop.loc[out, "y"] = 0.0
    (anomaly,) = anomalies(shop.assign(explained=sundays), AnomalyConfig()).itertuples()
    assert anomaly.direction == "drop"
    assert pd.Timestamp("2024-07-02") <= anomaly.start <= pd.Timestamp("2024-07-04")
    assert anomaly.end >= pd.Timestamp("2024-07-12")  # not cut at the first closed Sunday (July 7)


def test_a_wholesale_item_that_stops_selling_is_a_drop_though_its_units_vary_wildly():
    # Retail orders of 1-6 units on 9 days in 10, and now and then a wholesale order of 400-800: the units' variance
    # is the wholesale orders', so ten days without a sale are likely by units alone, not by the days it sells on.
    rng = np.random.default_rng(8)
    y = np.where(rng.random(len(DAYS)) < 0.9, rng.integers(1, 7, len(DAYS)), 0).astype(float)
    wholesale = rng.random(len(DAYS)) < 0.05
    y[wholesale] += rng.integers(400, 800, wholesale.sum())
    item = pd.DataFrame({"series": "W", "ds": DAYS, "y": y})
    item.loc[item["ds"].between("2024-07-01", "2024-07-10"), "y"] = 0.0
    found = anomalies(item, AnomalyConfig())
    drops = found[(found["direction"] == "drop") & (found["end"] >= pd.Timestamp("2024-07-01"))]
    assert len(drops) == 1 and drops["start"].iloc[0] <= pd.Timestamp("2024-07-05")
    assert found[found["end"] < pd.Timestamp("2024-07-01")].query("direction == 'drop'").empty


def test_weekly_demand_a_three_week_stock_out_and_a_spike_are_one_anomaly_each():
    weeks = pd.date_range("2023-01-02", periods=104, freq="W-MON")
    y = np.random.default_rng(3).poisson(30, len(weeks)).astype(float)
    y[90:93] = 0.0
    y[70] += 120
    found = anomalies(pd.DataFrame({"series": "A", "ds": weeks, "y": y}), AnomalyConfig(frequency="W"))
    spans = {(a.direction, a.start, a.end) for a in found.itertuples()}
    assert spans == {("drop", weeks[90], weeks[92]), ("spike", weeks[70], weeks[70])}


def test_severity_ranks_like_the_score_and_stays_within_0_and_100():
    scores = np.array([0.0, 4.0, -4.0, 12.0, 1e6])
    assert severity(scores).tolist() == [0, 50, 50, 75, 100]


def _inputs(with_location: bool = False):
    """Forecast inputs of 2 categories x 3 items (x 2 stores), daily Poisson demand with a weekly cycle."""
    from forecast_orchestrator.series import ForecastInputs

    rows, metadata = [], []
    for c, category in enumerate(("Garden", "Kitchen")):
        for i in range(3):
            item = f"{category[0]}{i}"
            metadata.append({"item_id": item, "category": category, "brand": "b"})
            for s, store in enumerate(("s1", "s2") if with_location else ("all",)):
                one = _series(item if not with_location else f"{item}|{store}", 8.0 + 2 * i, 10 * c + i + s * 100)
                rows.append(one.rename(columns={"series": "unique_id"}))
    target = pd.concat(rows, ignore_index=True).assign(price=2.0, promotion_flag=0.0, discount=0.0, holiday_flag=0.0)
    manifest = {"frequency": "D", "horizon": 7, "with_location": with_location}
    return ForecastInputs(manifest, target, target.drop(columns="y"), pd.DataFrame(metadata))


def test_every_level_is_judged_and_a_category_drop_names_the_item_that_caused_it():
    from glue_jobs.anomaly_levels import detect

    inputs = _inputs(with_location=True)
    target = inputs.target
    out = target["unique_id"].str.startswith("K1|") & target["ds"].between("2024-07-01", "2024-07-07")
    target.loc[out, "y"] = 0.0  # a stock-out of item K1 at both stores
    promoted = target["unique_id"].str.startswith("G0|") & target["ds"].between("2024-06-03", "2024-06-09")
    target.loc[promoted, "y"] *= 4  # a promotion: explained, at the item and above it
    target.loc[promoted, "promotion_flag"] = 1.0
    found = detect(inputs, AnomalyConfig(), since=pd.Timestamp("2024-05-01"))
    assert set(found["level"]) <= {"total", "category", "store", "item", "item_store"}
    k1 = found[(found["series"] == "item=K1")]
    assert len(k1) == 1 and k1["direction"].iloc[0] == "drop" and k1["category"].iloc[0] == "Kitchen"
    assert k1["contributors"].iloc[0].startswith("item_store=K1|s") and k1["excess_units"].iloc[0] < -50
    kitchen = found[found["series"] == "category=Kitchen"]
    assert len(kitchen) == 1 and kitchen["direction"].iloc[0] == "drop"
    assert kitchen["contributors"].iloc[0].startswith("item=K1 ")  # the item that stopped selling
    june = found["start_date"] <= pd.Timestamp("2024-06-09")
    assert not (june & found["series"].str.contains("G0|Garden|total")).any()  # the promotion is explained
    assert found["anomaly_id"].is_unique
    again = detect(inputs, AnomalyConfig(), since=pd.Timestamp("2024-05-01"))
    pd.testing.assert_frame_equal(found, again)  # deterministic


def test_a_discontinued_item_stopping_is_neither_its_anomaly_nor_its_categorys():
    from glue_jobs.anomaly_levels import detect

    inputs = _inputs()
    target = inputs.target
    delisted = (target["unique_id"] == "K2") & (target["ds"] >= "2024-07-01")
    target.loc[delisted, "y"] = 0.0
    since = pd.Timestamp("2024-06-01")
    unexplained = detect(inputs, AnomalyConfig(), since)
    assert {"item=K2", "category=Kitchen"} <= set(unexplained["series"])  # without the product event: drops
    found = detect(inputs, AnomalyConfig(), since, discontinued={"K2": pd.Timestamp("2024-07-01")})
    assert not found["series"].isin(["item=K2", "category=Kitchen", "total"]).any()


def test_a_sales_channel_that_stops_is_a_drop_of_its_own_level_and_names_its_items():
    from glue_jobs.anomaly_levels import detect

    inputs = _inputs()
    days = inputs.target["ds"].drop_duplicates().sort_values()
    web = pd.concat([
        _series(item, level, seed).rename(columns={"series": "item_id"}).assign(channel="web")
        for item, level, seed in (("G0", 15.0, 7), ("K1", 5.0, 9))
    ])  # fmt: skip
    web.loc[web["ds"].between("2024-07-20", "2024-07-24"), "y"] = 0.0  # the web shop's feed broke
    shops = _series("G0", 40.0, 8).rename(columns={"series": "item_id"}).assign(channel="store")
    channels = pd.concat([web, shops])
    found = detect(inputs, AnomalyConfig(), pd.Timestamp("2024-05-01"), channels=channels)
    (outage,) = found[found["level"] == "channel"].itertuples()
    assert (outage.series, outage.channel, outage.direction) == ("channel=web", "web", "drop")
    assert pd.Timestamp("2024-07-18") <= outage.start_date <= pd.Timestamp("2024-07-20") and len(days) == 240
    # Both items stopped, the one selling three times as much lost about three quarters of the units.
    first, second = outage.contributors.split("; ")
    assert first.startswith("item=G0 -") and second.startswith("item=K1 -"), outage.contributors
    assert 65 <= int(first.rsplit("(", 1)[1].rstrip("%)")) <= 85
