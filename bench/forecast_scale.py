"""Benchmark `forecast_scale`: a retailer-sized catalogue through the forecast workflow's steps on this machine.

30,000 weekly series (1,500 items x 20 stores, two years; `--quick`: 3,000 = 150 x 20) are written in the
forecast-input layout (CSV parts and a manifest, as the Glue build writes them), then the default `statsforecast`
backend runs import, train (backtests), accuracy, forecast and export in a child process, whose peak resident
memory is read back. Baseline: a plain mlforecast LightGBM fit and forecast of the same series, same process.
The series are synthetic (numpy, seeded): level, trend, yearly season, promotions with a lift and a discount,
price changes with elasticity, holidays, Poisson-gamma noise, a share of intermittent items.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from bench.forecast import plain_lightgbm
from bench.report import emit
from core.holidays import holidays
from core.object_store import LocalObjectStore
from core.settings import Settings
from forecast_orchestrator.series import load_inputs

START = date(2023, 1, 2)
WEEKS = 104
HORIZON = 8
STORES = 20


def series_frames(items: int, seed: int = 29) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(target, related, metadata) in the Forecast layout (with location) for items x STORES weekly series."""
    rng = np.random.default_rng(seed)
    n, weeks = items * STORES, WEEKS + HORIZON
    item = np.repeat(np.arange(items), STORES)
    category = rng.integers(0, 12, items)
    level = np.exp(rng.normal(1.5, 1.1, items))[item] * rng.lognormal(0, 0.4, n)
    level[rng.random(items)[item] < 0.2] *= 0.08  # intermittent items
    t = np.arange(weeks)
    phase = rng.uniform(0, 2 * np.pi, 12)[category][item]
    season = 1 + rng.uniform(0, 0.6, n)[:, None] * np.sin(2 * np.pi * t[None, :] / 52 + phase[:, None])
    trend = np.maximum(1 + rng.normal(0, 0.003, n)[:, None] * t[None, :], 0.2)
    promo = rng.random((n, weeks)) < 0.05
    discount = np.where(promo, rng.choice([0.1, 0.2, 0.3], (n, weeks)), 0.0)
    base_price = rng.uniform(1, 30, items)[item]
    changes = np.cumprod(np.where(rng.random((n, weeks)) < 0.02, rng.uniform(0.9, 1.12, (n, weeks)), 1.0), axis=1)
    price = base_price[:, None] * changes * (1 - discount)
    holiday_weeks = {(d - START).days // 7 for d in holidays("DE", START, date(2025, 3, 1))}
    holiday = np.isin(t, sorted(holiday_weeks)).astype(int)
    mean = level[:, None] * season * trend * (price / base_price[:, None]) ** -1.5 * (1 + holiday * 0.3)
    demand = rng.poisson(rng.gamma(2.0, mean / 2.0))
    stamps = pd.date_range(START, periods=weeks, freq="W-MON").strftime("%Y-%m-%d")
    stores = np.tile(np.arange(STORES), items)
    ids = {"item_id": np.repeat([f"I{i:05d}" for i in item], weeks),
           "location": np.repeat([f"S{s:02d}" for s in stores], weeks)}  # fmt: skip
    related = pd.DataFrame({**ids, "timestamp": np.tile(stamps, n), "price": price.round(2).ravel(),
                            "promotion_flag": promo.astype(int).ravel(), "discount": discount.ravel(),
                            "holiday_flag": np.tile(holiday, n)})  # fmt: skip
    history = np.tile(t < WEEKS, n)
    target = pd.DataFrame({**ids, "timestamp": related["timestamp"], "demand": demand.ravel().astype(float)})[history]
    metadata = pd.DataFrame({"item_id": [f"I{i:05d}" for i in range(items)], "category": [f"c{c}" for c in category]})
    metadata["brand"] = [f"b{i % 40}" for i in range(items)]
    return target, related, metadata


def write_inputs(root: Path, items: int) -> tuple[Settings, str]:
    settings = Settings(data_root=root, prefix="scale", frequency="W", horizon=HORIZON)
    store = LocalObjectStore(root)
    bucket, base = settings.names.bucket("forecast-input"), f"datasets/W/{START.isoformat()}-scale/"
    datasets = {}
    for name, frame in zip(("target", "related", "metadata"), series_frames(items), strict=True):
        key = f"{base}{name}/part-00000.csv"
        store.put(bucket, key, frame.to_csv(index=False).encode())
        datasets[name] = {"path": f"{base}{name}/", "dataset_type": name, "rows": len(frame), "schema": ""}
    end = (pd.Timestamp(START) + pd.Timedelta(weeks=WEEKS)).date().isoformat()
    manifest = {"frequency": "W", "window_start": START.isoformat(), "window_end": end, "horizon": HORIZON,
                "with_location": True, "timestamp_format": "yyyy-MM-dd", "datasets": datasets}  # fmt: skip
    store.put(bucket, base + "manifest.json", json.dumps(manifest).encode())
    return settings, base + "manifest.json"


def _steps(root: str, manifest_key: str, out: multiprocessing.Queue) -> None:
    """The workflow's backend steps, as the local workflow or the Glue step job runs them."""
    from forecast_orchestrator.ensemble_backend import EnsembleBackend

    settings = Settings(data_root=Path(root), prefix="scale", frequency="W", horizon=HORIZON)
    backend = EnsembleBackend(settings, LocalObjectStore(Path(root)))
    run = {"run_id": "scale", "bucket": settings.names.bucket("forecast-input"), "manifest_key": manifest_key}
    began = time.perf_counter()
    run.update(backend.import_datasets(run))
    run.update(backend.train_predictor(run))
    run.update(backend.get_accuracy(run))
    run["forecast_predictor"] = run["predictor_id"]
    run["manifest"] = json.loads(LocalObjectStore(Path(root)).get(run["bucket"], manifest_key))
    run.update(backend.create_forecast(run))
    run.update(backend.export_forecast(run))
    out.put({"seconds": time.perf_counter() - began, "accuracy": run["accuracy"]})


def run(quick: bool, only: str | None = None) -> None:
    items = 150 if quick else 1_500
    with tempfile.TemporaryDirectory() as tmp:
        settings, manifest_key = write_inputs(Path(tmp), items)
        queue: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
        child = multiprocessing.get_context("spawn").Process(target=_steps, args=(tmp, manifest_key, queue))
        child.start()
        result = queue.get()
        child.join()
        peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2  # KiB on Linux
        inputs = load_inputs(LocalObjectStore(Path(tmp)), settings.names.bucket("forecast-input"), manifest_key)
        began = time.perf_counter()
        plain_lightgbm(inputs)
        plain_seconds = time.perf_counter() - began
    series = items * STORES
    tags = {"series": series, "weeks": WEEKS, "horizon": HORIZON, "backtest_windows": settings.backtest_windows}
    emit("forecast_scale", "seconds", result["seconds"], "s", **tags)
    emit("forecast_scale", "series_per_second", series / result["seconds"], "series/s",
         baseline=series / plain_seconds, baseline_model="plain LightGBM (no backtest)", **tags,
         backtest_wape=round(result["accuracy"]["WAPE"], 4))  # fmt: skip
    emit("forecast_scale", "peak_rss_gib", peak_gib, "GiB", **tags)
