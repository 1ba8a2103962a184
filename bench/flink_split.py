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


def timed_split(events: Path, out: Path) -> float:
    job = file_job(str(events), str(out), JobConfig(checkpoint_dir=str(out / "_checkpoints")))
    started = time.perf_counter()
    job.execute("outlier-split")
    return time.perf_counter() - started


def compare(events: Path, root: Path, rounds: int) -> tuple[float, float, list[str], dict[str, int]]:
    """Both jobs on the same file, alternating, best of `rounds` each: (split seconds, SQL seconds,
    SQL-flagged event ids, split output counts). A small warm-up of both comes first, so neither pays
    for the JVM's class loading and JIT alone (the first job in a process ran ~2x slower)."""
    warm = root / "warm.jsonl"
    with events.open(encoding="utf-8") as src:
        warm.write_text("".join(line for _, line in zip(range(2_000), src, strict=False)), encoding="utf-8")
    timed_split(warm, root / "warm-split")
    sql_baseline(warm, root / "warm-sql")
    split_s: list[float] = []
    sql_s: list[float] = []
    naive: list[str] = []
    for i in range(rounds):
        seconds, naive = sql_baseline(events, root / f"sql-{i}")
        sql_s.append(seconds)
        split_s.append(timed_split(events, root / f"split-{i}"))
    return min(split_s), min(sql_s), naive, {"input": count_lines([events]), **count_outputs(root / "split-0")}


def run(quick: bool, only: str | None = None) -> None:
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    # ~40k events (full) as the headline; the full run also measures ~250k events, where the cluster's fixed
    # costs weigh less and the per-record cost of Python shows.
    sizes = [(3, 40, 120)] if quick else [(6, 60, 364), (30, 60, 364)]
    for n_size, (stores, items, days) in enumerate(sizes):
        data = generate(GeneratorConfig(seed=7, stores=stores, items=items, days=days, anomaly_rate=0.01))
        with tempfile.TemporaryDirectory(prefix="bench-flink-") as tmp:
            root = Path(tmp)
            events, _ = write_dataset(data, root / "data")
            n = len(data.events)
            job_seconds, sql_seconds, naive, counts = compare(events, root, rounds=1 if quick else 2)
            outliers = [json.loads(line)["event_id"] for line in read_outputs(root / "split-0", "outliers")]
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
        if n_size == 0 and only in (None, "flink_accuracy"):
            promos = promo_sale_ids(data.events)
            job, baseline = score(data.labels, outliers, promos), score(data.labels, naive, promos)
            for metric in ("precision", "recall", "promo_false_positive_rate"):
                emit("flink_accuracy", metric, getattr(job, metric), "ratio", baseline=getattr(baseline, metric),
                     dataset="generator")  # fmt: skip
    if only == "flink_accuracy":  # the real data set's lines (`all` reaches them through split_forecast_value's module)
        from bench import real_split

        real_split.accuracy_lines(real_split.real_events(), quick)
