"""The one in-memory frame of forecasting: statsforecast's long format, converted at the boundary once.

`unique_id` is the item (`item_id`, or `item_id|location` when the datasets carry a location), `ds` the
period start (datetime64), `y` the demand. The related series' exogenous columns are joined onto the
target on (unique_id, ds); `related` keeps them over the history and the horizon after window_end.
Input is the forecast-input layout written by glue_jobs/build_forecast_inputs.py: `manifest.json` and one
folder of Spark `part-*.csv` files per dataset.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from core.forecast_datasets import RELATED_COLUMNS, series_keys
from core.object_store import ObjectStore

EXOGENOUS: tuple[str, ...] = RELATED_COLUMNS  # price, promotion_flag, discount, holiday_flag
SEPARATOR = "|"  # between item_id and location in unique_id; item ids never contain it (SKU00001)


class InputError(ValueError):
    """A forecast input that does not match the contract; the message names the file and the field."""


@dataclass(frozen=True)
class ForecastInputs:
    manifest: dict[str, Any]
    target: pd.DataFrame  # unique_id, ds, y, *EXOGENOUS (history up to window_end)
    related: pd.DataFrame  # unique_id, ds, *EXOGENOUS (history and horizon)
    metadata: pd.DataFrame  # unique_id?, item_id, category, brand

    @property
    def frequency(self) -> str:
        return self.manifest["frequency"]

    @property
    def horizon(self) -> int:
        return int(self.manifest["horizon"])

    def future(self) -> pd.DataFrame:
        """The exogenous values over the horizon: one row per series and future period (statsforecast X_df)."""
        last = self.target.groupby("unique_id")["ds"].max().rename("last")
        future = self.related.merge(last, left_on="unique_id", right_index=True)
        future = future[future["ds"] > future["last"]].drop(columns="last")
        return future.sort_values(["unique_id", "ds"]).groupby("unique_id").head(self.horizon).reset_index(drop=True)


def pandas_freq(frequency: str) -> str:
    """The pandas offset of a Forecast frequency: weekly periods start on the ISO week's Monday."""
    return {"W": "W-MON", "D": "D"}[frequency]


def unique_ids(frame: pd.DataFrame, with_location: bool) -> pd.Series:
    if with_location:
        return frame["item_id"].astype(str) + SEPARATOR + frame["location"].astype(str)
    return frame["item_id"].astype(str)


def split_unique_id(frame: pd.DataFrame, with_location: bool) -> pd.DataFrame:
    """The reverse conversion for the export: `unique_id` back into `item_id` (and `location`)."""
    out = frame.drop(columns="unique_id")
    if with_location:
        parts = frame["unique_id"].str.split(SEPARATOR, n=1, expand=True)
        out.insert(0, "location", parts[1].to_numpy())
        out.insert(0, "item_id", parts[0].to_numpy())
    else:
        out.insert(0, "item_id", frame["unique_id"].to_numpy())
    return out


def read_csv_dataset(store: ObjectStore, bucket: str, path: str) -> pd.DataFrame:
    """All `part-*.csv` files under a Spark output folder (or one CSV object) as one frame, all strings."""
    if path.endswith(".csv"):
        keys = [path]
    else:
        prefix = path if path.endswith("/") else path + "/"
        keys = [
            k for k in store.list(bucket, prefix) if k.rsplit("/", 1)[-1].startswith("part-") and k.endswith(".csv")
        ]
    if not keys:
        raise InputError(f"no part-*.csv files under {store.uri(bucket, path)}")
    parts = []
    for key in keys:
        body = store.get(bucket, key)
        if not body.strip():
            continue  # Spark writes empty part files for empty partitions
        parts.append(pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False, na_values=[""]))
    if not parts:
        raise InputError(f"every part file under {store.uri(bucket, path)} is empty")
    return pd.concat(parts, ignore_index=True)


def _require(frame: pd.DataFrame, columns: list[str], where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{where}: missing columns {missing}; has {list(frame.columns)}")


def _timestamps(values: pd.Series, where: str) -> pd.Series:
    parsed = pd.to_datetime(values, format="%Y-%m-%d", errors="coerce")
    bad = values[parsed.isna()]
    if len(bad):
        raise InputError(f"{where}: timestamp {bad.iloc[0]!r} is not yyyy-MM-dd ({len(bad)} rows)")
    return parsed


def _numbers(frame: pd.DataFrame, columns: tuple[str, ...] | list[str], where: str) -> pd.DataFrame:
    for column in columns:
        parsed = pd.to_numeric(frame[column], errors="coerce")
        bad = frame[column][parsed.isna() & frame[column].notna()]
        if len(bad):
            raise InputError(f"{where}: {column} value {bad.iloc[0]!r} is not a number ({len(bad)} rows)")
        frame[column] = parsed.astype(float)
    return frame


def _carry(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column's gaps filled with the series' last value (its first value before that), 0.0 where it has none.
    `frame` is sorted by unique_id and ds."""
    groups = frame.groupby("unique_id", sort=False)[column]
    filled = groups.ffill()
    return filled.fillna(filled.groupby(frame["unique_id"], sort=False).bfill()).fillna(0.0)


def to_long(target: pd.DataFrame, related: pd.DataFrame, with_location: bool, where: str) -> tuple:
    """Forecast-layout target and related frames (strings) -> (target, related) in the long format."""
    keys = series_keys(with_location)
    _require(target, [*keys, "timestamp", "demand"], f"{where} target")
    _require(related, [*keys, "timestamp", *EXOGENOUS], f"{where} related")
    y = pd.DataFrame({"unique_id": unique_ids(target, with_location), "ds": _timestamps(target["timestamp"], where)})
    y["y"] = _numbers(target[["demand"]].copy(), ["demand"], f"{where} target")["demand"].fillna(0.0).to_numpy()
    x = pd.DataFrame({"unique_id": unique_ids(related, with_location), "ds": _timestamps(related["timestamp"], where)})
    x = pd.concat([x, _numbers(related[list(EXOGENOUS)].copy(), EXOGENOUS, f"{where} related")], axis=1)
    if y.duplicated(["unique_id", "ds"]).any():
        dup = y[y.duplicated(["unique_id", "ds"])].iloc[0]
        raise InputError(f"{where} target: duplicate (unique_id, timestamp) {dup['unique_id']}, {dup['ds']:%Y-%m-%d}")
    x = x.drop_duplicates(["unique_id", "ds"], keep="last").sort_values(["unique_id", "ds"])
    # Gaps in the related series: carry the last price, no promotion, no discount, no holiday.
    x["price"] = _carry(x, "price")
    x[["promotion_flag", "discount", "holiday_flag"]] = x[["promotion_flag", "discount", "holiday_flag"]].fillna(0.0)
    y = y.merge(x, on=["unique_id", "ds"], how="left").sort_values(["unique_id", "ds"]).reset_index(drop=True)
    y["price"] = _carry(y, "price")
    y[list(EXOGENOUS)] = y[list(EXOGENOUS)].fillna(0.0)
    return y, x.reset_index(drop=True)


def load_inputs(store: ObjectStore, bucket: str, manifest_key: str) -> ForecastInputs:
    """Read a forecast-input manifest and its three datasets into the long format."""
    manifest = json.loads(store.get(bucket, manifest_key))
    where = store.uri(bucket, manifest_key)
    for field in ("frequency", "horizon", "datasets"):
        if field not in manifest:
            raise InputError(f"{where}: manifest has no {field!r}")
    with_location = bool(manifest.get("with_location", False))
    datasets = manifest["datasets"]
    target = read_csv_dataset(store, bucket, datasets["target"]["path"])
    related = read_csv_dataset(store, bucket, datasets["related"]["path"])
    y, x = to_long(target, related, with_location, where)
    if "metadata" in datasets:
        metadata = read_csv_dataset(store, bucket, datasets["metadata"]["path"])
    else:
        metadata = pd.DataFrame(columns=["item_id", "category", "brand"])
    return ForecastInputs(manifest=manifest, target=y, related=x, metadata=metadata)
