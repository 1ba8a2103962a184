"""The Amazon Forecast export layout, written by every backend through the object store.

`<prefix>forecast/part-00000.csv`: `item_id,[location,]date,p10,p50,p90[,mean]` with header, the date as
Forecast's export writes it (`yyyy-MM-ddTHH:mm:ssZ`). `<prefix>accuracy-metrics/metrics.csv` and `.json`:
one row per backtest window and model plus the summary rows. `<prefix>drivers/part-00000.csv` (runs with the global
model): `item_id,[location,]date,driver_<name>...,ensemble`. Names are fixed, so a re-run replaces them.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from core.forecast_datasets import series_keys
from forecast_orchestrator.metrics import quantile_columns
from forecast_orchestrator.series import split_unique_id

DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # Forecast export: 2024-01-01T00:00:00Z
FORECAST_KEY = "forecast/part-00000.csv"
METRICS_CSV_KEY = "accuracy-metrics/metrics.csv"
METRICS_JSON_KEY = "accuracy-metrics/metrics.json"
DRIVERS_KEY = "drivers/part-00000.csv"
COHERENT_KEY = "coherent/part-00000.csv"
COHERENT_ACCURACY_KEY = "coherent-accuracy/metrics.csv"


def forecast_table(forecast: pd.DataFrame, with_location: bool) -> pd.DataFrame:
    """Long forecast frame (unique_id, ds, pNN..., [mean]) -> the export columns, sorted."""
    quantiles = quantile_columns(forecast)
    columns = ["unique_id", "ds", *quantiles, *(["mean"] if "mean" in forecast.columns else [])]
    out = split_unique_id(forecast[columns], with_location)
    out = out.rename(columns={"ds": "date"})
    out["date"] = pd.to_datetime(out["date"]).dt.strftime(DATE_FORMAT)
    return out.sort_values([*series_keys(with_location), "date"]).reset_index(drop=True)


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_export(store, bucket: str, prefix: str, forecast_df: pd.DataFrame, train_result, manifest: dict) -> dict:
    """Write forecast and accuracy metrics under bucket/prefix; returns {"forecast", "metrics_csv", "metrics_json"}."""
    prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    table = forecast_table(forecast_df, bool(manifest.get("with_location", False)))
    keys = {
        "forecast": prefix + FORECAST_KEY,
        "metrics_csv": prefix + METRICS_CSV_KEY,
        "metrics_json": prefix + METRICS_JSON_KEY,
    }
    store.put(bucket, keys["forecast"], table.to_csv(index=False, float_format="%.4f").encode())
    metrics = train_result.metrics
    store.put(bucket, keys["metrics_csv"], metrics.to_csv(index=False).encode())
    document = {
        "predictor_id": train_result.predictor_id,
        "frequency": manifest.get("frequency"),
        "window_end": manifest.get("window_end"),
        "horizon": manifest.get("horizon"),
        "quantiles": quantile_columns(table),
        "windows": [{k: _clean(v) for k, v in row.items()} for row in metrics.to_dict(orient="records")],
    }
    store.put(bucket, keys["metrics_json"], json.dumps(document, indent=2).encode())
    return keys


def write_drivers(store, bucket: str, prefix: str, drivers: pd.DataFrame, with_location: bool) -> str:
    """The drivers per series and period (forecast_orchestrator/drivers.driver_table) in the export layout."""
    prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    table = split_unique_id(drivers, with_location).rename(columns={"ds": "date"})
    table["date"] = pd.to_datetime(table["date"]).dt.strftime(DATE_FORMAT)
    table = table.sort_values([*series_keys(with_location), "date"]).reset_index(drop=True)
    store.put(bucket, prefix + DRIVERS_KEY, table.to_csv(index=False).encode())
    return prefix + DRIVERS_KEY


def write_coherent(store, bucket: str, prefix: str, coherent: pd.DataFrame, accuracy: pd.DataFrame) -> dict:
    """The coherent forecasts of every level (forecast_orchestrator/totals.py) and their backtest table."""
    prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    chosen = accuracy[accuracy["chosen"]].set_index("level")
    table = coherent.drop(columns="node_id").rename(columns={"ds": "date"})
    table["backtest_wape"] = table["level"].map(chosen["wape"])
    table["base_backtest_wape"] = table["level"].map(chosen["base_wape"])
    table["date"] = pd.to_datetime(table["date"]).dt.strftime(DATE_FORMAT)
    keys = {"coherent": prefix + COHERENT_KEY, "coherent_accuracy": prefix + COHERENT_ACCURACY_KEY}
    store.put(bucket, keys["coherent"], table.to_csv(index=False).encode())  # full precision: the sums are exact
    store.put(bucket, keys["coherent_accuracy"], accuracy.to_csv(index=False).encode())
    return keys
