"""Glue job: a forecast export + staged data -> enriched forecasts (parquet, Glue catalog) for Athena.

Runs unchanged on Glue 5.0 and local PySpark:
    enrich_forecast.py --JOB_NAME enrich --export_key s3://<forecast-export>/exports/<run_id>/manifest.json \
        [--recent_periods 8 --prefix demand --runtime local]

The export manifest (written last by the forecast workflow) names the run, its predictor and accuracy, the
forecast files and the input manifest. Output: `forecasts/run_date=<d>/run=<run_id>/` in the enriched
bucket (and `coherent/run_date=<d>/run=<run_id>/` when the run has coherent totals), replaced as a whole on a
re-run (idempotent per run); the tables and partitions are registered in
the Glue Data Catalog on AWS, in `<data_root>/glue-catalog.json` locally. Then the job tells the API's
DynamoDB cache that a run was enriched (core.cache_generation), so the API serves it at once.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from typing import Any

from pyspark.sql import functions as F

from core import aws
from core.cache_generation import record_enriched_run
from core.forecast_datasets import series_keys
from core.object_store import ObjectStore, object_store
from core.settings import Settings
from core.tables import COHERENT_FORECASTS, ENRICHED_FORECASTS, OUTLIERS, PRODUCTS, Table
from glue_jobs import enrichment
from glue_jobs.forecast_inputs import item_metadata
from glue_jobs.runtime import (
    read_landed,
    register_partition,
    resolve_args,
    settings_from_args,
    skipping_undecodable,
    spark_session,
)

OPTIONAL = {"recent_periods": "8", "prefix": "", "runtime": "", "data_root": ""}


class EnrichError(ValueError):
    """Missing or inconsistent export: which file, what was expected."""


def _split_key(export_key: str, settings: Settings) -> tuple[str, str]:
    if export_key.startswith("s3://"):
        bucket, _, key = export_key[5:].partition("/")
        return bucket, key
    return settings.names.bucket("forecast-export"), export_key


def latest_export_manifest(settings: Settings) -> str | None:
    """Key of the newest run's export manifest (by the run start it records), or None."""
    store = object_store(settings)
    bucket = settings.names.bucket("forecast-export")
    keys = [k for k in store.list(bucket, "exports/") if k.endswith("/manifest.json")]
    if not keys:
        return None
    return max(keys, key=lambda k: json.loads(store.get(bucket, k))["run_started_at"])


def _read_parquet(spark, store: ObjectStore, settings: Settings, t: Table, excluded: set[str]):
    rows, _ = read_landed(spark, store, settings, t, excluded)
    return (
        None if rows is None else rows.dropDuplicates(["event_id"])
    )  # landed at least once: a record may arrive twice


def _csv(spark, store: ObjectStore, bucket: str, keys: list[str]):
    if not keys:
        raise EnrichError(f"no CSV files in {store.uri(bucket)} under the keys the manifest names")
    missing = [k for k in keys if not store.exists(bucket, k)]
    if missing:
        raise EnrichError(
            f"the manifest names {len(missing)} CSV files that do not exist, the first {store.uri(bucket, missing[0])}"
        )
    return spark.read.option("header", True).csv([store.uri(bucket, k) for k in keys])


def enrich_run(spark, settings: Settings, export_key: str, recent_periods: int = 8) -> dict[str, Any]:
    """Write and register one run's enriched forecasts (the join alone: tests and benchmarks of it need no
    DynamoDB; `publish_run` also tells the API cache). A landed file that does not decode is left out."""
    return skipping_undecodable(
        spark, lambda excluded: _enrich_run(spark, settings, export_key, recent_periods, excluded)
    )


def _enrich_run(spark, settings: Settings, export_key: str, recent_periods: int, excluded: set[str]) -> dict[str, Any]:
    store = object_store(settings)
    bucket, key = _split_key(export_key, settings)
    try:
        run = json.loads(store.get(bucket, key))
    except FileNotFoundError:
        raise EnrichError(f"no export manifest at {store.uri(bucket, key)}") from None
    forecast_keys = [k for k in run["forecast_keys"] if k.endswith(".csv")]
    forecast = _csv(spark, store, bucket, forecast_keys)
    quantiles = [c for c in forecast.columns if c not in ("item_id", "location", "date")]
    forecast = forecast.select(*[F.col(c).cast("double") if c in quantiles else F.col(c) for c in forecast.columns])
    for required in ("p10", "p50", "p90"):
        if required not in forecast.columns:
            raise EnrichError(f"forecast export {forecast_keys[0]} has no {required} column: {forecast.columns}")

    inputs = json.loads(store.get(run["input_bucket"], run["input_manifest_key"]))
    with_location = bool(inputs["with_location"])
    drivers_keys = run.get("drivers_keys") or []  # the open ensemble's runs with the global model
    if drivers_keys:
        drivers = _csv(spark, store, bucket, drivers_keys)
        drivers = drivers.select(*[F.col(c).cast("double") if c.startswith("driver_") else F.col(c)
                                   for c in drivers.columns])  # fmt: skip
        forecast = forecast.join(drivers, on=[*series_keys(with_location), "date"], how="left")
    target_prefix = inputs["datasets"]["target"]["path"]
    target_keys = [k for k in store.list(run["input_bucket"], target_prefix) if k.endswith(".csv")]
    target = _csv(spark, store, run["input_bucket"], target_keys).withColumn("demand", F.col("demand").cast("double"))
    actuals = enrichment.recent_actuals(target, recent_periods, with_location)

    products = _read_parquet(spark, store, settings, PRODUCTS, excluded)
    metadata = item_metadata(products, forecast.select("item_id").distinct())
    outliers = enrichment.outlier_summary(
        _read_parquet(spark, store, settings, OUTLIERS, excluded), inputs["window_start"], inputs["window_end"]
    )
    enriched = enrichment.enrich(forecast, metadata, actuals, outliers, run)
    result = {"run_id": run["run_id"], **_write_run(spark, settings, store, ENRICHED_FORECASTS, enriched, run)}
    if run.get("coherent_keys"):  # the open ensemble's coherent totals
        coherent = enrichment.coherent(_csv(spark, store, bucket, run["coherent_keys"]), run)
        result["coherent"] = _write_run(spark, settings, store, COHERENT_FORECASTS, coherent, run)
    return result


def _write_run(spark, settings: Settings, store: ObjectStore, table: Table, frame, run: dict[str, Any]) -> dict:
    """One run's rows of a per-run table, replacing the run's folder, and the table registered."""
    run_date = date.fromisoformat(run["run_started_at"][:10]).isoformat()
    out_bucket = settings.names.bucket(table.bucket_role)
    partition = f"{table.prefix}/run_date={run_date}/run={run['run_id']}/"
    frame.coalesce(1).write.mode("overwrite").parquet(store.uri(out_bucket, partition))
    rows = spark.read.parquet(store.uri(out_bucket, partition)).count()
    register_partition(settings, table, [run_date, run["run_id"]], partition)
    return {"rows": rows, "location": store.uri(out_bucket, partition)}


def publish_run(spark, settings: Settings, export_key: str, recent_periods: int = 8) -> dict[str, Any]:
    """enrich_run, then tell the API's cache that the run's forecasts are there (when the AWS APIs answer: on
    AWS always; locally only while the local stack runs, since moto keeps the cache table in memory)."""
    result = enrich_run(spark, settings, export_key, recent_periods)
    if aws.answers(settings):
        result["api_cache_generation"] = record_enriched_run(settings, result["run_id"])
    return result


def main(argv: list[str]) -> dict[str, Any]:
    args = resolve_args(argv, ["JOB_NAME", "export_key"], OPTIONAL)
    settings = settings_from_args(args)
    spark, job = spark_session(args["JOB_NAME"])
    if job is not None:
        job.init(args["JOB_NAME"], args)
    result = publish_run(spark, settings, args["export_key"], int(args["recent_periods"]))
    if job is not None:
        job.commit()
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
