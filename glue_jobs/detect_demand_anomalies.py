"""Glue job: one forecast-input build -> the demand anomalies of every level (parquet, Glue catalog) and their alerts.

Runs unchanged on Glue 5.0 and local PySpark:
    detect_demand_anomalies.py --JOB_NAME detect [--input_manifest_key datasets/D/<end>-<digest>/manifest.json]
        [--lookback 28 --threshold 4 --rules s3://bucket/rules.json --webhook_url https://... \
         --alerts_topic_arn arn:aws:sns:... --prefix demand --runtime local]

It runs after each build (on AWS a Glue trigger on build_forecast_inputs' success), on the build's target, related and
metadata datasets: the demand that trains the forecasts, so an anomaly here is one a planner's forecast feels (and on
the landed product events: a discontinued item's drop is explained). Output:
`demand-anomalies/run_date=<window end>/run=<build>/` in the analysis bucket, replaced as a whole on a re-run, with the
anomalies that end in the last `lookback` periods (earlier ones were reported by earlier builds). Feedback marking an
anomaly as expected fills `suppressed_by`. Then the alert rules run over them and over the outlier split's share of
outlier lines per day, and each new alert goes to SNS, the log, the local JSON-lines file and the webhook, once.
"""

from __future__ import annotations

import io
import json
import sys
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import Window
from pyspark.sql import functions as F

from alerts.delivery import deliver, feedback
from alerts.rules import (
    DEFAULT_RULES,
    AlertRule,
    RuleError,
    demand_alerts,
    outlier_rate_alerts,
    parse_rules,
    suppressions,
)
from core.object_store import object_store
from core.settings import Settings
from core.tables import DEMAND_ANOMALIES, OUTLIERS, PRODUCTS, SALES
from forecast_orchestrator.series import load_inputs
from forecast_orchestrator.workflow import input_manifests
from glue_jobs import forecast_inputs as fi
from glue_jobs.anomaly_levels import detect
from glue_jobs.demand_anomalies import AnomalyConfig, period
from glue_jobs.runtime import read_landed, register_partition, resolve_args, settings_from_args, spark_session

OPTIONAL = {"input_manifest_key": "", "lookback": "", "threshold": "", "rules": "", "webhook_url": "",
            "alerts_topic_arn": "", "prefix": "", "runtime": "", "data_root": ""}  # fmt: skip
DEFAULT_LOOKBACK = {"D": 28, "W": 8}


class DetectError(ValueError):
    """No build to judge, or rules that do not parse: which file, what was expected."""


def load_rules(settings: Settings) -> tuple[AlertRule, ...]:
    """The rules file the settings name (a path or s3://bucket/key), else the default rules."""
    where = settings.anomaly.rules
    if not where:
        return DEFAULT_RULES
    if where.startswith("s3://"):
        bucket, _, key = where[5:].partition("/")
        text = object_store(settings).get(bucket, key).decode()
    else:
        try:
            text = open(where, encoding="utf-8").read()  # noqa: SIM115 (read whole)
        except OSError as exc:
            raise DetectError(f"alert rules {where}: {exc.strerror}") from None
    try:
        return parse_rules(text, where)
    except RuleError as exc:
        raise DetectError(str(exc)) from None


def outlier_rates(sales, outliers, since: pd.Timestamp, until: pd.Timestamp) -> pd.DataFrame:
    """Per day from `since` to `until` (exclusive): the sale lines landed clean and as outliers (day, lines,
    outliers); `sales`, `outliers`: the landed tables (Spark DataFrames, None when nothing landed)."""
    counts = []
    for rows, name in ((sales, "clean"), (outliers, "outliers")):
        if rows is None:
            continue
        day = F.to_date("event_time").alias("day")
        # UTC-aware bounds: PySpark reads a naive datetime in the process's local zone (fi.in_window).
        low, high = (F.lit(t.tz_localize("UTC").to_pydatetime()) for t in (since, until))
        inside = (F.col("event_time") >= low) & (F.col("event_time") < high)
        counted = rows.where(inside).groupBy(day).count().toPandas()
        counts.append(counted.rename(columns={"count": name}).set_index("day"))
    if not counts:
        return pd.DataFrame(columns=["day", "lines", "outliers"])
    frame = pd.concat(counts, axis=1).fillna(0).reindex(columns=["clean", "outliers"], fill_value=0)
    frame = frame.assign(lines=frame["clean"] + frame["outliers"]).reset_index().sort_values("day")
    frame["day"] = pd.to_datetime(frame["day"])
    return frame[["day", "lines", "outliers"]].astype({"lines": int, "outliers": int})


def channel_demand(sales, manifest: dict[str, Any]) -> pd.DataFrame:
    """Net demand per sales channel, item and period over the build's window, from the landed sales (channel,
    item_id, ds, y): each event once, returns and cancellations netted in the period they arrived."""
    if sales is None:
        return pd.DataFrame(columns=["channel", "item_id", "ds", "y"])
    start, end = (date.fromisoformat(manifest[k][:10]) for k in ("window_start", "window_end"))
    window = fi.RunWindow(start, end, manifest["frequency"], int(manifest["horizon"]))
    period = F.expr(fi.period_sql("event_time", window.frequency))
    rows = (fi.in_window(sales, window).dropDuplicates(["event_id"]).groupBy("channel", "item_id", period.alias("ds"))
            .agg(F.sum("quantity").alias("y")).toPandas())  # fmt: skip
    rows["ds"] = pd.to_datetime(rows["ds"])
    rows["y"] = rows["y"].astype(float).clip(lower=0.0)
    return rows.dropna(subset=["channel"])


def discontinued_items(products) -> dict[str, pd.Timestamp]:
    """item -> the day of its discontinuation, for the items whose latest product event says discontinued."""
    if products is None:
        return {}
    latest = Window.partitionBy("item_id").orderBy(F.col("event_time").desc(), F.col("event_id").desc())
    rows = (products.withColumn("rank", F.row_number().over(latest)).where("rank = 1 AND status = 'discontinued'")
            .select("item_id", F.to_date("event_time").alias("day")).collect())  # fmt: skip
    return {row["item_id"]: pd.Timestamp(row["day"]) for row in rows}


def anomalies_parquet(frame: pd.DataFrame) -> bytes:
    """The rows of the demand_anomalies table as one parquet file of its contract's schema."""
    columns = DEMAND_ANOMALIES.contract.names
    frame = frame.copy()
    for field in DEMAND_ANOMALIES.contract.fields:
        if field.type == "timestamp":
            frame[field.name] = pd.to_datetime(frame[field.name], utc=True).dt.floor("ms")
    table = pa.Table.from_pandas(frame[list(columns)], schema=DEMAND_ANOMALIES.contract.arrow_schema(),
                                 preserve_index=False)  # fmt: skip
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def run(spark, settings: Settings, manifest_key: str | None = None, lookback: int | None = None) -> dict[str, Any]:
    """Detect, land and register one build's anomalies, then deliver its alerts. Returns a summary."""
    store = object_store(settings)
    bucket = settings.names.bucket("forecast-input")
    if not manifest_key:
        found = input_manifests(store, settings)
        if not found:
            raise DetectError(f"no forecast-input build in {store.uri(bucket, 'datasets/')}: build the datasets first")
        manifest_key = found[-1]
    if not store.exists(bucket, manifest_key):
        raise DetectError(f"no forecast-input manifest at {store.uri(bucket, manifest_key)}")
    rules = load_rules(settings)
    inputs = load_inputs(store, bucket, manifest_key)
    config = AnomalyConfig(frequency=inputs.frequency, threshold=settings.anomaly.threshold)
    periods = lookback or settings.anomaly.lookback or DEFAULT_LOOKBACK[inputs.frequency]
    last = inputs.target["ds"].max()
    since = last - (periods - 1) * period(inputs.frequency)
    landed = {t.name: read_landed(spark, store, settings, t)[0] for t in (SALES, OUTLIERS, PRODUCTS)}
    channels = channel_demand(landed[SALES.name], inputs.manifest)
    found = detect(inputs, config, since, discontinued_items(landed[PRODUCTS.name]), channels)
    found["suppressed_by"] = suppressions(found, feedback(settings))

    run_id = manifest_key.rstrip("/").split("/")[-2]
    found = found.assign(
        run_id=run_id, detected_at=datetime.now(UTC).replace(microsecond=0), frequency=inputs.frequency
    )
    location = _land(settings, found, inputs.manifest["window_end"][:10], run_id)
    rates = outlier_rates(landed[SALES.name], landed[OUTLIERS.name], since, pd.Timestamp(inputs.manifest["window_end"]))
    alerts = demand_alerts(found, rules) + outlier_rate_alerts(rates, rules)
    delivery = deliver(settings, alerts)
    return {
        "run_id": run_id,
        "input_manifest_key": manifest_key,
        "since": since.date().isoformat(),
        "anomalies": len(found),
        "by_level": {str(k): int(v) for k, v in found["level"].value_counts().items()},
        "suppressed": int(found["suppressed_by"].notna().sum()),
        "alerts": len(alerts),
        **delivery.summary(),
        "location": location,
    }


def _land(settings: Settings, found: pd.DataFrame, run_date: str, run_id: str) -> str:
    """The build's anomalies in place of its earlier detection's, registered; returns the folder's URI."""
    store = object_store(settings)
    bucket = settings.names.bucket(DEMAND_ANOMALIES.bucket_role)
    partition = f"{DEMAND_ANOMALIES.prefix}/run_date={run_date}/run={run_id}/"
    for key in list(store.list(bucket, partition)):
        store.delete(bucket, key)
    store.put(bucket, partition + "part-00000.parquet", anomalies_parquet(found))
    register_partition(settings, DEMAND_ANOMALIES, [run_date, run_id], partition)
    return store.uri(bucket, partition)


def settings_of(args: dict[str, str]) -> Settings:
    """The job's arguments onto Settings, the anomaly ones onto its `anomaly` group."""
    settings = settings_from_args(args)
    named = {"threshold": "threshold", "rules": "rules", "webhook_url": "webhook_url", "alerts_topic_arn": "topic_arn"}
    changes = {field: float(args[arg]) if field == "threshold" else args[arg]
               for arg, field in named.items() if args.get(arg)}  # fmt: skip
    return settings.model_copy(update={"anomaly": settings.anomaly.model_copy(update=changes)}) if changes else settings


def main(argv: list[str]) -> dict[str, Any]:
    args = resolve_args(argv, ["JOB_NAME"], OPTIONAL)
    settings = settings_of(args)
    spark, job = spark_session(args["JOB_NAME"])
    if job is not None:
        job.init(args["JOB_NAME"], args)
    result = run(
        spark, settings, args["input_manifest_key"] or None, int(args["lookback"]) if args["lookback"] else None
    )
    if job is not None:
        job.commit()
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
