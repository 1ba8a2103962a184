"""flink_split: end-to-end events/s of the outlier split job vs a JVM-only Flink SQL z-score job on the same file.
flink_accuracy: the job's precision / recall / promotion false-positive rate on generator labels, with the
SQL job's naive z-score detector as the baseline.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.report import emit
from flink_jobs.accuracy import promo_sale_ids, score
from flink_jobs.outlier_split import JobConfig, count_lines, count_outputs, environment, file_job, read_outputs
from streaming.generator import GeneratorConfig, generate, write_dataset

# The naive baseline: a rolling z-score of line quantity per item over the previous 32 lines, |z| > 3.
SQL_SOURCE = """
CREATE TABLE events (
  event_type STRING, event_id STRING, event_time STRING, item_id STRING, store_id STRING,
  quantity DOUBLE, unit_price DOUBLE,
  ts AS TO_TIMESTAMP(REPLACE(REPLACE(event_time, 'T', ' '), 'Z', '')),
  WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE
) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json', 'json.ignore-parse-errors' = 'true')
"""
SQL_SINK = """
CREATE TABLE flagged (event_id STRING, item_id STRING, quantity DOUBLE, z DOUBLE)
WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json')
"""
SQL_JOB = """
INSERT INTO flagged
SELECT event_id, item_id, quantity, (quantity - mean_q) / std_q AS z FROM (
  SELECT event_id, item_id, quantity,
    AVG(quantity) OVER w AS mean_q, STDDEV_POP(quantity) OVER w AS std_q, COUNT(*) OVER w AS n
  FROM events WHERE event_type = 'sale'
  WINDOW w AS (PARTITION BY item_id ORDER BY ts ROWS BETWEEN 32 PRECEDING AND CURRENT ROW)
) WHERE n > 5 AND std_q > 0 AND ABS((quantity - mean_q) / std_q) > 3
"""


def sql_baseline(input_path: Path, out: Path) -> tuple[float, list[str]]:
    """Run the SQL job; (seconds, flagged event ids)."""
    from pyflink.table import StreamTableEnvironment

    env = environment(JobConfig(checkpoint_dir=str(out / "_checkpoints")))
    tenv = StreamTableEnvironment.create(env)
    tenv.execute_sql(SQL_SOURCE.format(input=input_path))
    tenv.execute_sql(SQL_SINK.format(out=out / "flagged"))
    started = time.perf_counter()
    tenv.execute_sql(SQL_JOB).wait()
    seconds = time.perf_counter() - started
    flagged = [
        json.loads(line)["event_id"]
        for path in (out / "flagged").rglob("*")
        if path.is_file() and not path.name.startswith(".")
        for line in path.read_text().splitlines()
        if line
    ]
    return seconds, flagged


def run(quick: bool, only: str | None = None) -> None:
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    # Full: ~50k events, so the ~10 s of cluster start and final checkpoint weigh less than in --quick.
    config = GeneratorConfig(
        seed=7, stores=3 if quick else 6, items=40 if quick else 60, days=120 if quick else 364, anomaly_rate=0.01
    )
    data = generate(config)
    with tempfile.TemporaryDirectory(prefix="bench-flink-") as tmp:
        root = Path(tmp)
        events, _ = write_dataset(data, root / "data")
        n = len(data.events)
        # Both runs are timed from execute() to the end: mini-cluster start, the job, the final commit.
        job = file_job(str(events), str(root / "split"), JobConfig(checkpoint_dir=str(root / "ckpt")))
        started = time.perf_counter()
        job.execute("outlier-split")
        job_seconds = time.perf_counter() - started
        counts = {"input": count_lines([events]), **count_outputs(root / "split")}
        outliers = [json.loads(line)["event_id"] for line in read_outputs(root / "split", "outliers")]
        sql_seconds, naive = sql_baseline(events, root / "sql")

    promos = promo_sale_ids(data.events)
    job, baseline = score(data.labels, outliers, promos), score(data.labels, naive, promos)
    if only in (None, "flink_split"):
        emit(
            "flink_split",
            "events_per_s",
            n / job_seconds,
            "events/s",
            baseline=n / sql_seconds,
            events=n,
            seconds=round(job_seconds, 2),
            baseline_seconds=round(sql_seconds, 2),
            balanced=sum(v for k, v in counts.items() if k != "input") == counts["input"],
        )
    if only in (None, "flink_accuracy"):
        for metric in ("precision", "recall", "promo_false_positive_rate"):
            emit("flink_accuracy", metric, getattr(job, metric), "ratio", baseline=getattr(baseline, metric))
