"""Enriched forecasts: forecast quantiles joined with item metadata, recent actuals, outliers and the run.

Plain functions over Spark DataFrames; glue_jobs/enrich_forecast.py reads, calls these and writes.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from core.contracts import COHERENT, ENRICHED
from core.forecast_datasets import series_keys


def recent_actuals(target: DataFrame, periods: int, with_location: bool) -> DataFrame:
    """Per series: demand of the last period and mean demand over the last `periods` periods."""
    keys = series_keys(with_location)
    newest_first = Window.partitionBy(*keys).orderBy(F.col("timestamp").desc())
    ranked = target.withColumn("age", F.row_number().over(newest_first)).where(F.col("age") <= periods)
    return ranked.groupBy(*keys).agg(
        F.max(F.when(F.col("age") == 1, F.col("demand"))).alias("last_demand"),
        F.avg("demand").alias("recent_demand"),
        F.count("*").cast("long").alias("recent_periods"),
    )


def outlier_summary(outliers: DataFrame | None, start: Any, end: Any) -> DataFrame | None:
    """Per item: outliers in the run window and the most frequent reason code."""
    if outliers is None:
        return None
    window = outliers.where((F.col("event_time") >= F.lit(start)) & (F.col("event_time") < F.lit(end)))
    by_code = window.groupBy("item_id", "outlier_code").agg(F.count("*").alias("n"))
    top = Window.partitionBy("item_id").orderBy(F.col("n").desc(), F.col("outlier_code"))
    return (
        by_code.withColumn("rank", F.row_number().over(top))
        .groupBy("item_id")
        .agg(
            F.sum("n").cast("long").alias("outlier_count"),
            F.max(F.when(F.col("rank") == 1, F.col("outlier_code"))).alias("outlier_top_code"),
        )
    )


def enrich(
    forecast: DataFrame,
    metadata: DataFrame,
    actuals: DataFrame,
    outliers: DataFrame | None,
    run: dict[str, Any],
) -> DataFrame:
    """One row per series and forecast period, in the ENRICHED contract's column order."""
    with_location = "location" in forecast.columns
    keys = series_keys(with_location)
    out = (
        forecast.withColumn("forecast_date", F.to_timestamp("date"))
        .join(metadata, on="item_id", how="left")
        .join(actuals, on=keys, how="left")
    )
    if outliers is not None:
        out = out.join(outliers, on="item_id", how="left")
    accuracy = run.get("accuracy") or {}
    constants = {
        "run_id": F.lit(run["run_id"]),
        "run_started_at": F.to_timestamp(F.lit(run["run_started_at"])),
        "frequency": F.lit(run["frequency"]),
        "predictor_id": F.lit(run["predictor_id"]),
        "backend": F.lit(run["backend"]),
        "avg_wql": F.lit(accuracy.get("avg_wQL")).cast("double"),
        "wape": F.lit(accuracy.get("WAPE")).cast("double"),
    }
    defaults = {
        "location": F.lit(None).cast("string"),
        "mean": F.lit(None).cast("double"),
        "category": F.lit("unknown"),
        "brand": F.lit("unknown"),
        "recent_periods": F.lit(0).cast("long"),
        "outlier_count": F.lit(0).cast("long"),
        "outlier_top_code": F.lit(None).cast("string"),
        "ensemble": F.lit(None).cast("string"),
        **{f.name: F.lit(None).cast("double") for f in ENRICHED.fields if f.name.startswith("driver_")},
    }
    schema = {f.name: f for f in ENRICHED.spark_schema().fields}
    columns = []
    for name in ENRICHED.names:
        if name in constants:
            col = constants[name]
        elif name in out.columns:
            col = F.col(name)
            if name in defaults:
                col = F.coalesce(col, defaults[name])
        else:
            col = defaults[name]
        columns.append(col.cast(schema[name].dataType).alias(name))
    return out.select(*columns).orderBy(*keys, "forecast_date")


def coherent(table: DataFrame, run: dict[str, Any]) -> DataFrame:
    """The export's coherent totals (CSV strings) in the COHERENT contract's column order."""
    constants = {
        "run_id": F.lit(run["run_id"]),
        "run_started_at": F.to_timestamp(F.lit(run["run_started_at"])),
        "frequency": F.lit(run["frequency"]),
        "predictor_id": F.lit(run["predictor_id"]),
        "forecast_date": F.to_timestamp("date"),
    }
    schema = {f.name: f for f in COHERENT.spark_schema().fields}
    columns = [
        (constants[name] if name in constants else F.col(name)).cast(schema[name].dataType).alias(name)
        for name in COHERENT.names
    ]
    return table.select(*columns).orderBy("level", "category", "location", "item_id", "forecast_date")
