"""The open ensemble as a planner sees it: on generated sales the default (the global LightGBM model) beats the
seasonal naive forecast and every single local model, its p10-p90 band holds about 80 % of the actuals, items
with a short history get forecasts, long training reports progress. Plus reading the forecast-input layout,
writing the export layout and the same code on Spark."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest

from bench.forecast import DAYS, HORIZON, holdout, score, single_model, weekly_demand
from core.object_store import LocalObjectStore
from forecast_orchestrator.ensemble import EnsembleConfig, EnsembleModel, TrainResult
from forecast_orchestrator.export import write_export
from forecast_orchestrator.reconcile import expected_demand
from forecast_orchestrator.series import EXOGENOUS, ForecastInputs, InputError, load_inputs
from streaming.generator import GeneratorConfig

warnings.filterwarnings("ignore", module="statsforecast")
LOCAL = ("AutoETS", "AutoTheta", "SeasonalNaive", "CrostonOptimized")


@pytest.fixture(scope="module")
def generated():
    target, related = weekly_demand(GeneratorConfig(seed=11, stores=2, items=40, days=DAYS))
    return holdout(target, related)


@pytest.fixture(scope="module")
def holdout_run(generated):
    inputs, actual = generated
    reports: list[dict] = []
    backend = EnsembleModel(EnsembleConfig())
    trained = backend.train(inputs, reports.append)
    forecast = backend.forecast(inputs, trained, reports.append)
    return backend, inputs, actual, trained, forecast, reports


@pytest.mark.slow
def test_the_global_model_beats_seasonal_naive_and_every_single_local_model(holdout_run):
    backend, inputs, actual, trained, forecast, _ = holdout_run
    assert set(trained.selection["model"]) == {"LightGBM"}
    ours = score(forecast, actual, inputs.target)
    singles = {name: score(single_model(inputs, name, backend), actual, inputs.target) for name in LOCAL}
    best = min(singles, key=lambda n: singles[n]["WAPE"])
    print({"ensemble": ours["WAPE"], **{n: round(s["WAPE"], 4) for n, s in singles.items()}})
    assert ours["WAPE"] <= 0.9 * singles["SeasonalNaive"]["WAPE"]
    assert ours["WAPE"] <= singles[best]["WAPE"], f"best single model {best}"


@pytest.mark.slow
def test_p10_p90_band_covers_about_80_percent(holdout_run):
    _, inputs, actual, trained, forecast, _ = holdout_run
    assert list(forecast.columns) == ["unique_id", "ds", "p10", "p50", "p90", "model"]
    assert len(forecast) == inputs.target["unique_id"].nunique() * HORIZON
    assert (forecast["p10"] <= forecast["p50"]).all() and (forecast["p50"] <= forecast["p90"]).all()
    assert abs(score(forecast, actual, inputs.target)["coverage_p10_p90"] - 0.8) <= 0.05


@pytest.mark.slow
def test_backtest_metrics_have_a_row_per_window_and_a_summary(holdout_run):
    _, _, _, trained, _, _ = holdout_run
    ensemble = trained.metrics[trained.metrics["model"] == "ensemble"]
    assert list(ensemble["window"]) == ["1", "2", "3", "summary"]
    for column in ("wQL_0.1", "wQL_0.5", "wQL_0.9", "avg_wQL", "WAPE", "RMSE", "MAPE", "MASE", "coverage_p10_p90"):
        assert ensemble[column].notna().all(), column
    weights = trained.selection.groupby("unique_id")["weight"].sum()
    assert weights.round(6).eq(1.0).all()


@pytest.mark.slow
def test_training_and_forecast_report_series_done_elapsed_and_eta(holdout_run):
    _, inputs, _, _, _, reports = holdout_run
    series = inputs.target["unique_id"].nunique()
    train = [r for r in reports if r["step"] == "train"]
    assert [r["phase"] for r in train] == [f"backtest window {k} of LightGBM" for k in (1, 2, 3)]
    assert [r["series_done"] for r in train] == [series, 2 * series, 3 * series]
    assert all(r["series_total"] == 3 * series and r["elapsed_s"] >= 0 for r in train)
    assert train[-1]["eta_s"] == 0 and train[0]["eta_s"] >= 0
    assert [r["step"] for r in reports][-1] == "forecast" and reports[-1]["series_done"] == series


@pytest.mark.slow
def test_items_with_a_short_history_get_forecasts_from_what_they_share(generated):
    """Cold start: eight items that first sold two weeks before the end, too short for any local model's backtest,
    get a forecast from the global model (from their recent weeks, the calendar and what the other items do):
    together within half of what they really sold in the held-out weeks. Together is their expected demand (the
    quantiles' mean, what adds up): the sum of right-skewed items' medians falls short of the sum's (here 173 and 249
    of 368 sold)."""
    inputs, actual = generated
    target = inputs.target
    new = sorted(target["unique_id"].unique())[:8]
    keep = ~target["unique_id"].isin(new) | (target["ds"] > target["ds"].max() - pd.Timedelta(weeks=2))
    short = ForecastInputs(inputs.manifest, target[keep].reset_index(drop=True), inputs.related, inputs.metadata)
    with pytest.raises(ValueError, match="no series long enough"):
        only_new = short.target[short.target["unique_id"].isin(new)]
        EnsembleModel(EnsembleConfig(models=("AutoETS",))).train(
            ForecastInputs(inputs.manifest, only_new, inputs.related, inputs.metadata)
        )
    backend = EnsembleModel(EnsembleConfig())
    forecast = backend.forecast(short, backend.train(short))
    cold = forecast[forecast["unique_id"].isin(new)]
    assert len(cold) == len(new) * HORIZON and cold["p50"].notna().all()
    sold = actual[actual["unique_id"].isin(new)]["y"].sum()
    together = expected_demand(cold).sum()
    assert abs(together - sold) <= 0.5 * sold, (together, cold["p50"].sum(), sold)


def _put_csv(store, bucket, key, frame):
    store.put(bucket, key, frame.to_csv(index=False).encode())


def _write_inputs(store, bucket="fin", with_location=True, periods=30, horizon=4):
    base = "datasets/W/2024-07-29/"
    weeks = pd.date_range("2024-01-01", periods=periods, freq="W-MON")
    future = pd.date_range(weeks[-1], periods=horizon + 1, freq="W-MON")[1:]
    rows, related = [], []
    for item in ("SKU00001", "SKU00002"):
        for store_id in ("S001", "S002"):
            for k, ds in enumerate(weeks):
                rows.append({"item_id": item, "location": store_id, "timestamp": f"{ds:%Y-%m-%d}", "demand": 5 + k % 4})
            for ds in [*weeks, *future]:
                promo = int(ds.day < 8)
                related.append(
                    {
                        "item_id": item,
                        "location": store_id,
                        "timestamp": f"{ds:%Y-%m-%d}",
                        "price": 2.5,
                        "promotion_flag": promo,
                        "discount": 0.2 * promo,
                        "holiday_flag": 0,
                    }
                )
    target, related = pd.DataFrame(rows), pd.DataFrame(related)
    if not with_location:
        target = target[target["location"] == "S001"].drop(columns="location")
        related = related[related["location"] == "S001"].drop(columns="location")
    half = len(target) // 2
    _put_csv(store, bucket, base + "target/part-00000-abc.csv", target.iloc[:half])
    _put_csv(store, bucket, base + "target/part-00001-abc.csv", target.iloc[half:])
    store.put(bucket, base + "target/part-00002-abc.csv", b"")  # an empty Spark partition
    store.put(bucket, base + "target/_SUCCESS", b"")
    _put_csv(store, bucket, base + "related/part-00000-abc.csv", related)
    _put_csv(
        store,
        bucket,
        base + "metadata/part-00000-abc.csv",
        pd.DataFrame({"item_id": ["SKU00001", "SKU00002"], "category": ["snacks", "apparel"], "brand": ["A", "B"]}),
    )
    manifest = {
        "frequency": "W",
        "window_start": "2024-01-01",
        "window_end": f"{weeks[-1] + pd.Timedelta(weeks=1):%Y-%m-%d}",
        "horizon": horizon,
        "with_location": with_location,
        "timestamp_format": "yyyy-MM-dd",
        "datasets": {
            name: {"path": base + name + "/", "dataset_type": name, "rows": 0, "schema": ""}
            for name in ("target", "related", "metadata")
        },
    }
    store.put(bucket, base + "manifest.json", json.dumps(manifest).encode())
    return base + "manifest.json"


def test_load_inputs_reads_the_manifest_layout_into_the_long_format(tmp_path):
    store = LocalObjectStore(tmp_path)
    inputs = load_inputs(store, "fin", _write_inputs(store))
    assert list(inputs.target.columns) == ["unique_id", "ds", "y", *EXOGENOUS]
    assert sorted(inputs.target["unique_id"].unique()) == [
        "SKU00001|S001",
        "SKU00001|S002",
        "SKU00002|S001",
        "SKU00002|S002",
    ]
    assert len(inputs.target) == 4 * 30 and inputs.target["ds"].dt.dayofweek.eq(0).all()
    assert inputs.target["promotion_flag"].sum() > 0 and inputs.target["y"].sum() == 4 * sum(
        5 + k % 4 for k in range(30)
    )
    future = inputs.future()
    assert len(future) == 4 * 4 and future["ds"].min() == pd.Timestamp("2024-07-29")
    assert sorted(inputs.metadata["item_id"]) == ["SKU00001", "SKU00002"]


def test_load_inputs_names_the_bad_field(tmp_path):
    store = LocalObjectStore(tmp_path)
    key = _write_inputs(store, with_location=False)
    bad = pd.DataFrame({"item_id": ["SKU00001"], "timestamp": ["01/02/2024"], "demand": [3]})
    _put_csv(store, "fin", "datasets/W/2024-07-29/target/part-00000-abc.csv", bad)
    with pytest.raises(InputError, match="01/02/2024"):
        load_inputs(store, "fin", key)
    store.delete("fin", "datasets/W/2024-07-29/related/part-00000-abc.csv")
    with pytest.raises(InputError, match="no part-"):
        load_inputs(store, "fin", key)


def test_export_writes_the_forecast_layout_and_replaces_on_rerun(tmp_path):
    store = LocalObjectStore(tmp_path)
    forecast = pd.DataFrame(
        {
            "unique_id": ["SKU00002|S001", "SKU00001|S002"],
            "ds": pd.to_datetime(["2024-07-29", "2024-07-29"]),
            "p10": [1.0, 2.0],
            "p50": [2.0, 3.0],
            "p90": [3.0, 5.0],
            "mean": [2.1, 3.2],
            "model": "ensemble",
        }
    )
    metrics = pd.DataFrame(
        [
            {"window": "1", "cutoff": "2024-06-03", "model": "ensemble", "WAPE": 0.3, "MASE": float("nan")},
            {"window": "summary", "cutoff": None, "model": "ensemble", "WAPE": 0.3, "MASE": float("nan")},
        ]
    )
    trained = TrainResult("sf-1", metrics, pd.DataFrame())
    manifest = {"frequency": "W", "window_end": "2024-07-29", "horizon": 1, "with_location": True}
    keys = write_export(store, "fout", "exports/run-1", forecast, trained, manifest)
    again = write_export(store, "fout", "exports/run-1/", forecast, trained, manifest)
    assert keys == again and sorted(store.list("fout")) == sorted(keys.values())
    lines = store.get("fout", keys["forecast"]).decode().splitlines()
    assert lines[0] == "item_id,location,date,p10,p50,p90,mean"
    assert lines[1] == "SKU00001,S002,2024-07-29T00:00:00Z,2.0000,3.0000,5.0000,3.2000"
    document = json.loads(store.get("fout", keys["metrics_json"]))
    assert document["predictor_id"] == "sf-1" and document["windows"][1]["MASE"] is None
    assert store.get("fout", keys["metrics_csv"]).decode().startswith("window,cutoff,model,WAPE,MASE")


def test_the_same_ensemble_runs_on_spark(spark, tmp_path):
    """The local candidates through fugue on Spark, the global model on the driver: the same forecasts."""
    store = LocalObjectStore(tmp_path)
    inputs = load_inputs(store, "fin", _write_inputs(store))
    config = dict(
        models=("LightGBM", "AutoETS", "SeasonalNaive", "CrostonOptimized"), season_length=4, backtest_windows=2
    )
    local = EnsembleModel(EnsembleConfig(**config))
    on_spark = EnsembleModel(EnsembleConfig(**config, use_spark=True))
    expected = local.forecast(inputs, local.train(inputs))
    trained = on_spark.train(inputs)
    got = on_spark.forecast(inputs, trained)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, atol=1e-6)
    assert set(trained.metrics["model"]) == {"LightGBM", "AutoETS", "SeasonalNaive", "CrostonOptimized", "ensemble"}
