"""Glue job: staged sales, product and campaign events -> the three Forecast datasets for one run window.

Runs unchanged on Glue 5.0 and local PySpark:
    build_forecast_inputs.py --JOB_NAME build [--window_start 2023-01-02 --window_end 2024-01-01] \
        [--frequency W --horizon 8 --country DE --with_location false --prefix demand --runtime local]

Writes under `forecast-input/datasets/<frequency>/<window_end>-<digest>/`: target/, related/, metadata/ (CSV with
header), schema/<dataset>.json (CreateDataset schemas), then manifest.json, then _SUCCESS. The digest covers the
options (window, horizon, country, location) and the datasets' content, and is the run's idempotency key: a rebuild
after late or corrected data, or with other options, is a new build and is forecast; a rebuild of the same data is
the same build. A re-run first removes the manifest and marker, replaces the data, and writes them again last, so a
consumer that waits for the manifest never sees a half-written dataset.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime

from core.forecast_datasets import DATASETS, TIMESTAMP_FORMAT, built_at, series_keys
from core.forecast_datasets import columns as dataset_columns
from core.holidays import DEFAULT_COUNTRY, holidays
from core.object_store import ObjectStore, object_store
from core.settings import Settings
from core.tables import CAMPAIGNS, OUTLIERS, PRODUCTS, SALES, Table
from glue_jobs import forecast_inputs as fi
from glue_jobs.runtime import read_landed, resolve_args, settings_from_args, skipping_undecodable, spark_session

OPTIONAL = {
    "window_end": "",
    "window_start": "",
    "frequency": "",
    "horizon": "",
    "country": "",
    "with_location": "false",
    "prefix": "",
    "runtime": "",
    "data_root": "",
}


class DatasetError(ValueError):
    """Input that cannot give valid Forecast datasets (empty window, missing staged data, broken rule)."""


@dataclass(frozen=True)
class BuildRequest:
    window: fi.RunWindow
    country: str = DEFAULT_COUNTRY
    with_location: bool = False


def build_key(settings: Settings, request: BuildRequest, content: str) -> tuple[str, str]:
    """(idempotency key, its digest) of a build: the options and the content digest of its datasets."""
    w = request.window
    keys = "location" if request.with_location else "item"
    options = f"{w.frequency}:{w.start}:{w.end}:{w.horizon}:{request.country}:{keys}"
    digest = hashlib.sha256(f"{options}:{content}".encode()).hexdigest()
    return f"{settings.prefix}:{options}:{digest[:16]}", digest


def _read(spark, store: ObjectStore, settings: Settings, landing: Table, required: bool, skipped: list[str],
          excluded: set[str]):  # fmt: skip
    """The landed table (objects that are not whole parquet files, or excluded, are skipped and added to `skipped`)."""
    rows, broken = read_landed(spark, store, settings, landing, excluded)
    skipped += broken
    if rows is None and required:
        uri = store.uri(settings.names.bucket(landing.bucket_role), landing.prefix + "/")
        raise DatasetError(f"no staged {landing.prefix} under {uri}: run the landing first")
    return rows


def check_datasets(target, related, metadata, window: fi.RunWindow, with_location: bool) -> None:
    """Amazon Forecast's dataset rules; raises DatasetError naming the first broken one."""
    keys = series_keys(with_location)
    for name, df in (("target", target), ("related", related)):
        dup = df.groupBy(*keys, "timestamp").count().where("count > 1").limit(1).collect()
        if dup:
            raise DatasetError(f"{name} has duplicate {'/'.join(keys)}/timestamp: {dup[0].asDict()}")
    short = (
        target.groupBy(*keys)
        .count()
        .join(related.groupBy(*keys).agg(fi.F.max("timestamp").alias("last")), on=keys, how="left")
        .where(fi.F.col("last").isNull() | (fi.F.col("last") < fi.F.lit(window.horizon_end)))
        .limit(1)
        .collect()
    )
    if short:
        raise DatasetError(f"related series does not reach the horizon end {window.horizon_end}: {short[0]}")
    uncovered = target.select("item_id").distinct().join(metadata, "item_id", "left_anti").limit(1).collect()
    if uncovered:
        raise DatasetError(f"item metadata misses target item {uncovered[0]['item_id']}")


def build(spark, settings: Settings, request: BuildRequest) -> dict:
    """Read staged data, build and check the datasets, write them and the manifest. Returns the manifest. A landed
    file that does not decode is left out and named in the manifest's skipped_files (the build runs again)."""
    return skipping_undecodable(spark, lambda excluded: _build(spark, settings, request, excluded))


def _build(spark, settings: Settings, request: BuildRequest, excluded: set[str]) -> dict:
    store = object_store(settings)
    window = request.window
    skipped: list[str] = []
    sales = _read(spark, store, settings, SALES, required=True, skipped=skipped, excluded=excluded)
    products = _read(spark, store, settings, PRODUCTS, required=False, skipped=skipped, excluded=excluded)
    campaigns = _read(spark, store, settings, CAMPAIGNS, required=False, skipped=skipped, excluded=excluded)
    outliers = _read(spark, store, settings, OUTLIERS, required=False, skipped=skipped, excluded=excluded)
    sales = fi.in_window(sales, window)
    credited = fi.credited_lines(None if outliers is None else fi.in_window(outliers, window), sales)
    sales = fi.net_sales(sales, credited)
    totals = fi.period_totals(sales, window, request.with_location).cache()  # the one pass over the sales
    if totals.limit(1).count() == 0:
        raise DatasetError(f"no staged sales in the window {window.start}..{window.end} (end exclusive)")
    days = holidays(request.country, window.start, window.horizon_end + window.step)
    target = fi.target_series(totals, window, request.with_location).cache()
    related = fi.related_series(totals, campaigns, days, window, request.with_location).cache()
    metadata = fi.item_metadata(products, target).cache()
    check_datasets(target, related, metadata, window, request.with_location)
    frames = {
        name: df.select(*[c for c, _ in dataset_columns(name, request.with_location)])
        for name, df in (("target", target), ("related", related), ("metadata", metadata))
    }
    content, counts = fi.content_digest(frames)
    key, digest = build_key(settings, request, content)

    bucket = settings.names.bucket("forecast-input")
    base = f"datasets/{window.frequency}/{window.end.isoformat()}-{digest[:16]}/"
    for marker in ("_SUCCESS", "manifest.json"):
        store.delete(bucket, base + marker)
    datasets = {}
    for name, df in frames.items():
        dataset_type, columns = DATASETS[name][0], dataset_columns(name, request.with_location)
        # Sorted, range-partitioned part files (part-00000 holds the first keys): written in parallel, and read back
        # in name order they are in order.
        df.write.mode("overwrite").option("header", True).option("dateFormat", TIMESTAMP_FORMAT).csv(
            store.uri(bucket, base + name)
        )
        schema = {"Attributes": [{"AttributeName": c, "AttributeType": t} for c, t in columns]}
        store.put(bucket, f"{base}schema/{name}.json", json.dumps(schema, indent=2).encode())
        datasets[name] = {
            "path": base + name + "/",
            "dataset_type": dataset_type,
            "rows": counts[name],
            "schema": f"{base}schema/{name}.json",
        }
    manifest = {
        "domain": "RETAIL",
        "frequency": window.frequency,
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "horizon": window.horizon,
        "timestamp_format": TIMESTAMP_FORMAT,
        "country": request.country,
        "with_location": request.with_location,
        "datasets": datasets,
        "prefix": base,
        "skipped_files": skipped,
        "content_digest": digest,
        "idempotency_key": key,
        "built_at": built_at(),
    }
    store.put(bucket, base + "manifest.json", json.dumps(manifest, indent=2).encode())
    store.put(bucket, base + "_SUCCESS", b"")
    return manifest


def _date(args: dict[str, str], key: str) -> date:
    try:
        return date.fromisoformat(args[key])
    except ValueError:
        raise DatasetError(f"--{key}={args[key]!r} is not a date like 2024-01-01") from None


def request_from_args(args: dict[str, str], settings: Settings) -> BuildRequest:
    """Glue arguments (strings; "" = default) -> the build request. Default window: the two years up to the
    start of the current period (what a scheduled run wants: every complete day or ISO week so far)."""
    frequency = args.get("frequency") or settings.frequency
    if args.get("window_end"):
        end = _date(args, "window_end")
    else:
        today = datetime.now(UTC).date()
        end = date.fromordinal(today.toordinal() - today.weekday()) if frequency == "W" else today
    start = _date(args, "window_start") if args.get("window_start") else date(end.year - 2, end.month, 1)
    if frequency == "W":
        start = date.fromordinal(start.toordinal() - start.weekday())
    try:
        window = fi.RunWindow(start, end, frequency, int(args.get("horizon") or settings.horizon))
    except ValueError as exc:
        raise DatasetError(str(exc)) from None
    return BuildRequest(
        window, args.get("country") or settings.country, (args.get("with_location") or "").lower() == "true"
    )


def main(argv: list[str]) -> dict:
    args = resolve_args(argv, ["JOB_NAME"], OPTIONAL)
    settings = settings_from_args(args)
    request = request_from_args(args, settings)
    spark, job = spark_session(args["JOB_NAME"])
    if job is not None:
        job.init(args["JOB_NAME"], args)
    manifest = build(spark, settings, request)
    if job is not None:
        job.commit()
    return manifest


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
