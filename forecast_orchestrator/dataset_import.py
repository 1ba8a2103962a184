"""Bring your own datasets: target / related / item-metadata CSVs in the Amazon Forecast RETAIL layout, checked
against Forecast's dataset rules and written to the forecast-input bucket as a dataset build would write them.

The rules (Amazon Forecast developer guide, "Dataset guidelines" and "Handling missing values"), each failure named
by file, row (1 = the first data row) and column:
- the target has item_id, timestamp, demand (and location when series are per store); related the same keys and
  numeric columns (price, promotion_flag, discount, holiday_flag: those missing are 1.0, 0, 0 and 0); metadata
  item_id and, optionally, category and brand;
- timestamps are yyyy-MM-dd (or yyyy-MM-dd HH:mm:ss), and weekly ones fall on a Monday (ISO weeks);
- demand and the related values are numbers; demand is not negative;
- no two rows share a series and timestamp;
- every target series' related rows reach `horizon` periods past its last timestamp;
- the metadata (when given) describes every target item.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.forecast_datasets import DATASETS, RELATED_COLUMNS, TIMESTAMP_FORMAT, built_at, series_keys
from core.forecast_datasets import columns as dataset_columns
from core.object_store import ObjectStore

RELATED_DEFAULTS = {"price": 1.0, "promotion_flag": 0.0, "discount": 0.0, "holiday_flag": 0.0}
STEP = {"D": pd.Timedelta(days=1), "W": pd.Timedelta(weeks=1)}


class DatasetImportError(ValueError):
    """A dataset that breaks a Forecast rule; the message names the file, the row and the column."""


@dataclass(frozen=True)
class Imported:
    manifest_key: str
    manifest: dict
    series: int


def _read(path: Path, name: str) -> pd.DataFrame:
    if not path.is_file():
        raise DatasetImportError(f"{name}: no file {path}")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    frame.columns = [c.strip() for c in frame.columns]
    return frame


def _where(path: Path, frame: pd.DataFrame, mask: pd.Series, column: str, what: str) -> DatasetImportError:
    rows = frame.index[mask.to_numpy()]
    first = rows[0]
    value = frame.at[first, column] if column in frame else None
    more = f" ({len(rows)} rows)" if len(rows) > 1 else ""
    return DatasetImportError(f"{path.name} row {first + 1}, column {column}: {value!r} {what}{more}")


def _require(path: Path, frame: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DatasetImportError(f"{path.name}: missing column(s) {missing}; it has {list(frame.columns)}")


def _timestamps(path: Path, frame: pd.DataFrame, frequency: str) -> pd.Series:
    parsed = pd.to_datetime(frame["timestamp"], format="%Y-%m-%d", errors="coerce")
    long = pd.to_datetime(frame["timestamp"], format="%Y-%m-%d %H:%M:%S", errors="coerce")
    parsed = parsed.fillna(long)
    if parsed.isna().any():
        raise _where(path, frame, parsed.isna(), "timestamp", "is not a date like 2024-01-01")
    if frequency == "W" and (parsed.dt.dayofweek != 0).any():
        raise _where(path, frame, parsed.dt.dayofweek != 0, "timestamp", "is not a Monday (weekly data: ISO weeks)")
    return parsed.dt.normalize()


def _numbers(path: Path, frame: pd.DataFrame, column: str) -> pd.Series:
    parsed = pd.to_numeric(frame[column], errors="coerce")
    bad = parsed.isna() & frame[column].notna()
    if bad.any():
        raise _where(path, frame, bad, column, "is not a number")
    return parsed


def _unique(path: Path, frame: pd.DataFrame, as_read: pd.DataFrame, keys: list[str]) -> None:
    duplicated = frame.duplicated([*keys, "timestamp"], keep=False)
    if duplicated.any():
        raise _where(path, as_read, duplicated, "timestamp", f"repeats a {'/'.join(keys)} and timestamp")


def check(
    target_path: Path, related_path: Path, metadata_path: Path | None, frequency: str, horizon: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, bool]:
    """(target, related, metadata, with_location) in the Forecast layout, or DatasetImportError."""
    target, related = _read(target_path, "target"), _read(related_path, "related")
    as_read = {target_path: target.copy(), related_path: related.copy()}  # errors quote the file's text
    with_location = "location" in target.columns
    keys = series_keys(with_location)
    _require(target_path, target, [*keys, "timestamp", "demand"])
    _require(related_path, related, [*keys, "timestamp"])
    target["timestamp"] = _timestamps(target_path, target, frequency)
    related["timestamp"] = _timestamps(related_path, related, frequency)
    target["demand"] = _numbers(target_path, target, "demand").fillna(0.0)
    if (target["demand"] < 0).any():
        raise _where(target_path, as_read[target_path], target["demand"] < 0, "demand", "is negative")
    for column in RELATED_COLUMNS:
        related[column] = _numbers(related_path, related, column) if column in related else RELATED_DEFAULTS[column]
    _unique(target_path, target, as_read[target_path], keys)
    _unique(related_path, related, as_read[related_path], keys)
    last = target.groupby(keys)["timestamp"].max().rename("last").reset_index()
    reach = related.groupby(keys)["timestamp"].max().rename("reach").reset_index()
    short = last.merge(reach, on=keys, how="left")
    short = short[short["reach"].isna() | (short["reach"] < short["last"] + horizon * STEP[frequency])]
    if len(short):
        row = short.iloc[0]
        raise DatasetImportError(
            f"{related_path.name}: series {'/'.join(str(row[k]) for k in keys)} is covered to "
            f"{row['reach'].date() if pd.notna(row['reach']) else 'nowhere'}, the horizon needs "
            f"{(row['last'] + horizon * STEP[frequency]).date()} ({len(short)} series short)"
        )
    if metadata_path is not None:
        metadata = _read(metadata_path, "metadata")
        _require(metadata_path, metadata, ["item_id"])
        missing = sorted(set(target["item_id"]) - set(metadata["item_id"]))
        if missing:
            raise DatasetImportError(f"{metadata_path.name}: no row for target item(s) {missing[:5]}")
    else:
        metadata = pd.DataFrame({"item_id": sorted(target["item_id"].unique())})
    for column in ("category", "brand"):
        if column not in metadata:
            metadata[column] = "unknown"
    return target, related, metadata, with_location


def write(
    store: ObjectStore,
    bucket: str,
    frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, bool],
    frequency: str,
    horizon: int,
    prefix: str,
) -> Imported:
    """The datasets, their schemas and the manifest (last) under `datasets/<frequency>/import-<digest>/`."""
    target, related, metadata, with_location = frames
    out = {"target": target, "related": related, "metadata": metadata}
    texts = {}
    for name, frame in out.items():
        columns = [c for c, _ in dataset_columns(name, with_location)]
        table = frame[columns].copy()
        if "timestamp" in table:
            table["timestamp"] = table["timestamp"].dt.strftime("%Y-%m-%d")
        texts[name] = table.to_csv(index=False)
    digest = hashlib.sha256("".join(texts.values()).encode()).hexdigest()[:16]
    base = f"datasets/{frequency}/import-{digest}/"
    datasets = {}
    for name, text in texts.items():
        store.put(bucket, f"{base}{name}/part-00000.csv", text.encode())
        schema = {
            "Attributes": [{"AttributeName": c, "AttributeType": t} for c, t in dataset_columns(name, with_location)]
        }
        store.put(bucket, f"{base}schema/{name}.json", json.dumps(schema, indent=2).encode())
        datasets[name] = {"path": f"{base}{name}/", "dataset_type": DATASETS[name][0], "rows": len(out[name]),
                          "schema": f"{base}schema/{name}.json"}  # fmt: skip
    window_end = target["timestamp"].max() + STEP[frequency]
    manifest = {
        "domain": "RETAIL",
        "frequency": frequency,
        "window_start": str(target["timestamp"].min().date()),
        "window_end": str(window_end.date()),
        "horizon": horizon,
        "timestamp_format": TIMESTAMP_FORMAT,
        "with_location": with_location,
        "datasets": datasets,
        "source": "import",
        "prefix": base,
        "content_digest": digest,
        "idempotency_key": f"{prefix}:{frequency}:import:{digest}:{horizon}",
        "built_at": built_at(),
    }
    key = base + "manifest.json"
    store.put(bucket, key, json.dumps(manifest, indent=2).encode())
    return Imported(key, manifest, int(target.groupby(series_keys(with_location)).ngroups))
