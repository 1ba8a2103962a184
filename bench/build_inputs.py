"""Bench `build_inputs`: the build_forecast_inputs Glue job on local Spark over ~10 million staged sales rows
(rows/s, after a warm-up build on a small data set), and the same three datasets built and written as CSV by DuckDB
as the single-node reference."""

from __future__ import annotations

import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.report import emit
from core.contracts import SALE
from core.settings import Settings
from core.tables import SALES
from glue_jobs.build_forecast_inputs import BuildRequest, build
from glue_jobs.forecast_inputs import RunWindow
from glue_jobs.runtime import spark_session

START = date(2023, 1, 2)


def write_staged(settings: Settings, rows: int, days: int = 728, items: int = 2000, stores: int = 5) -> None:
    """Synthetic staged sales in the landing layout (month partitions, one parquet object per day), SALE schema."""
    rng = np.random.default_rng(7)
    landing = SALES
    base = settings.data_root / settings.names.bucket(landing.bucket_role)
    per_day = rows // days
    schema = SALE.arrow_schema()
    for day in range(days):
        n = per_day
        ids = pc.binary_join_element_wise(
            "d", pa.array(np.arange(day * per_day, day * per_day + n)).cast(pa.string()), ""
        )
        day_start = np.datetime64(START + timedelta(days=day), "ms").astype(np.int64)
        qty = rng.integers(1, 5, n).astype(float)
        qty[rng.random(n) < 0.02] *= -1  # returns
        table = pa.table(
            {
                "event_type": pa.array(["sale"] * n),
                "schema_version": pa.array(np.ones(n, dtype=np.int64)),
                "event_id": ids,
                "event_time": pa.array(day_start + rng.integers(0, 86_400_000, n), pa.timestamp("ms", tz="UTC")),
                "store_id": pc.binary_join_element_wise(
                    "s", pa.array(rng.integers(0, stores, n)).cast(pa.string()), ""
                ),
                "item_id": pc.binary_join_element_wise("i", pa.array(rng.integers(0, items, n)).cast(pa.string()), ""),
                "quantity": qty,
                "unit_price": np.round(rng.uniform(1, 20, n), 2),
                "currency": pa.array(["EUR"] * n),
                "channel": pa.array(["store"] * n),
                "customer_id": pa.nulls(n, pa.string()),
                "order_id": pa.nulls(n, pa.string()),
                "promotion_id": pa.nulls(n, pa.string()),
                "source_operation": pa.nulls(n, pa.string()),
            },
            schema=schema,
        )
        d = START + timedelta(days=day)
        folder = base / landing.partition(d)
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / f"day-{d.day:02d}.parquet")


# The same work as the Spark job, single-node: the three datasets from the staged parquet, written as CSV.
DUCKDB_BUILD = """
CREATE TEMP TABLE sales AS SELECT DISTINCT ON (event_id) * FROM read_parquet('{glob}')
  WHERE event_time >= TIMESTAMPTZ '{start}' AND event_time < TIMESTAMPTZ '{end}';
CREATE TEMP TABLE weekly AS
  SELECT item_id, date_trunc('week', event_time AT TIME ZONE 'UTC')::DATE AS ts, greatest(sum(quantity), 0) AS demand,
         sum(quantity * unit_price) FILTER (WHERE quantity > 0) / sum(quantity) FILTER (WHERE quantity > 0) AS price
  FROM sales GROUP BY ALL;
CREATE TEMP TABLE firsts AS SELECT item_id, min(ts) AS first_ts FROM weekly GROUP BY item_id;
COPY (SELECT g.item_id, g.ts AS timestamp, coalesce(w.demand, 0) AS demand
      FROM (SELECT item_id, unnest(generate_series(first_ts, DATE '{last}', INTERVAL 7 DAY))::DATE AS ts FROM firsts) g
      LEFT JOIN weekly w USING (item_id, ts) ORDER BY ALL) TO '{out}/target.csv' (HEADER);
COPY (SELECT item_id, ts AS timestamp,
             round(last_value(w.price IGNORE NULLS) OVER (PARTITION BY item_id ORDER BY ts), 4) AS price,
             0 AS promotion_flag, 0.0 AS discount, 0 AS holiday_flag
      FROM (SELECT item_id, unnest(generate_series(first_ts, DATE '{horizon_end}', INTERVAL 7 DAY))::DATE AS ts
            FROM firsts) g LEFT JOIN weekly w USING (item_id, ts) ORDER BY ALL) TO '{out}/related.csv' (HEADER);
COPY (SELECT item_id, 'unknown' AS category, 'unknown' AS brand FROM firsts ORDER BY item_id)
  TO '{out}/metadata.csv' (HEADER);
"""


def run(quick: bool, only: str | None) -> None:
    rows = 500_000 if quick else 10_000_000
    days = 364 if quick else 728
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        spark, _ = spark_session("bench_build_inputs")
        warm = Settings(data_root=Path(tmp) / "warm")  # the JVM's first queries compile and load classes
        write_staged(warm, 20_000, days=days)
        window = RunWindow(START, START + timedelta(days=days), "W", horizon=8)
        build(spark, warm, BuildRequest(window))
        settings = Settings(data_root=Path(tmp) / "data")
        write_staged(settings, rows, days=days)
        rows = (rows // days) * days
        t0 = time.perf_counter()
        manifest = build(spark, settings, BuildRequest(window))
        spark_s = time.perf_counter() - t0

        glob = settings.data_root / settings.names.bucket("staged") / "sales/**/*.parquet"
        out = Path(tmp) / "duckdb"
        out.mkdir()
        t0 = time.perf_counter()
        duckdb.connect().execute(
            DUCKDB_BUILD.format(
                glob=glob,
                start=window.start,
                end=window.end,
                last=window.last_period,
                horizon_end=window.horizon_end,
                out=out,
            )  # fmt: skip
        )
        duck_s = time.perf_counter() - t0
        duck_rows = sum(1 for _ in (out / "target.csv").open()) - 1
        emit(
            "build_inputs",
            "rows_per_s",
            rows / spark_s,
            "rows/s",
            baseline=rows / duck_s,
            input_rows=rows,
            spark_seconds=round(spark_s, 2),
            duckdb_seconds=round(duck_s, 2),
            target_rows=manifest["datasets"]["target"]["rows"],
            duckdb_target_rows=duck_rows,
            baseline_work="target, related and metadata datasets to CSV, DuckDB",
        )
