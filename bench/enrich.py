"""Bench `enrich` and `query`.

enrich: rows/s of the enrich_forecast job (local Spark) on a synthetic export (items x horizon forecast rows,
a year of target history, outliers), baseline the same joins in DuckDB over the same files.
query: ms per shipped named query (transpiled Athena SQL in DuckDB over the enriched/sales/outlier parquet),
baseline the same query already transpiled on an open connection (so the ratio is the cost of the
transpile + catalog views).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.report import emit
from core.contracts import OUTLIER
from core.object_store import LocalObjectStore
from core.settings import Settings
from core.tables import OUTLIERS
from glue_jobs.enrich_forecast import enrich_run
from glue_jobs.runtime import spark_session
from query.engine import local_connection, run_local, to_duckdb
from query.named_queries import NAMED, QUERIES

START = date(2023, 1, 2)
HORIZON = 8


def write_inputs(settings: Settings, items: int | list[str], weeks: int = 52) -> str:
    """Forecast export, its manifest, the input target dataset and outliers of `items` (a count: SKU00000.., or the
    ids); returns the export manifest key."""
    rng = np.random.default_rng(3)
    store = LocalObjectStore(settings.data_root)
    ids = [f"SKU{i:05d}" for i in range(items)] if isinstance(items, int) else list(items)
    items = len(ids)
    end = START + timedelta(weeks=weeks)
    target = ["item_id,timestamp,demand"] + [
        f"{i},{START + timedelta(weeks=w)},{rng.poisson(5)}" for i in ids for w in range(weeks)
    ]
    input_bucket = settings.names.bucket("forecast-input")
    base = f"datasets/W/{end}/"
    store.put(input_bucket, base + "target/part-0.csv", "\n".join(target).encode())
    inputs = {"frequency": "W", "window_start": str(START), "window_end": str(end), "horizon": HORIZON,
              "with_location": False, "datasets": {"target": {"path": base + "target/"}}}  # fmt: skip
    store.put(input_bucket, base + "manifest.json", json.dumps(inputs).encode())
    rows = ["item_id,date,p10,p50,p90"]
    for i in ids:
        for h in range(HORIZON):
            p50 = rng.uniform(1, 9)
            rows.append(f"{i},{end + timedelta(weeks=h)}T00:00:00Z,{p50 * 0.5:.3f},{p50:.3f},{p50 * 1.6:.3f}")
    export_bucket = settings.names.bucket("forecast-export")
    store.put(export_bucket, "exports/bench/forecast/part-00000.csv", "\n".join(rows).encode())
    n = items * 3
    outliers: dict[str, Any] = {f.name: [None] * n for f in OUTLIER.fields}
    outliers.update(
        event_type=["sale"] * n, schema_version=[1] * n, event_id=[f"o{k}" for k in range(n)],
        event_time=pa.array(np.datetime64(str(START), "ms") + rng.integers(0, 7 * weeks, n).astype("timedelta64[D]"),
                            pa.timestamp("ms", tz="UTC")),
        store_id=["S1"] * n, item_id=[ids[k % items] for k in range(n)], quantity=[500.0] * n, unit_price=[2.0] * n,
        currency=["EUR"] * n, channel=["store"] * n, outlier_score=[9.0] * n,
        outlier_code=[["quantity_spike", "price_deviation"][k % 2] for k in range(n)], outlier_reason=["bench"] * n,
        detector=["bench"] * n, detector_version=["1"] * n,
    )  # fmt: skip
    folder = settings.data_root / settings.names.bucket("analysis") / OUTLIERS.partition(START)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pydict(outliers, schema=OUTLIER.arrow_schema()), folder / "bench.parquet")
    manifest = {"run_id": "bench", "run_started_at": f"{end}T06:00:00Z", "backend": "statsforecast",
                "predictor_id": "bench", "accuracy": {"avg_wQL": 0.2, "WAPE": 0.3}, "frequency": "W",
                "input_bucket": input_bucket, "input_manifest_key": base + "manifest.json",
                "forecast_keys": ["exports/bench/forecast/part-00000.csv"]}  # fmt: skip
    store.put(export_bucket, "exports/bench/manifest.json", json.dumps(manifest).encode())
    return "exports/bench/manifest.json"


DUCKDB_ENRICH = """
WITH f AS (SELECT * FROM read_csv_auto('{forecast}')),
t AS (SELECT *, row_number() OVER (PARTITION BY item_id ORDER BY timestamp DESC) AS age FROM read_csv_auto('{target}')),
a AS (SELECT item_id, max(CASE WHEN age = 1 THEN demand END) AS last_demand, avg(demand) AS recent_demand
      FROM t WHERE age <= 8 GROUP BY item_id),
o AS (SELECT item_id, count(*) AS outliers, mode(outlier_code) AS top_code
      FROM read_parquet('{outliers}') GROUP BY item_id)
SELECT f.*, a.last_demand, a.recent_demand, coalesce(o.outliers, 0), o.top_code
FROM f LEFT JOIN a USING (item_id) LEFT JOIN o USING (item_id)
"""


def run(quick: bool, only: str | None) -> None:
    items = 500 if quick else 5000
    with tempfile.TemporaryDirectory(prefix="bench-enrich-") as tmp:
        settings = Settings(data_root=Path(tmp))
        key = write_inputs(settings, items)
        spark, _ = spark_session("bench_enrich")
        t0 = time.perf_counter()
        result = enrich_run(spark, settings, key)
        spark_s = time.perf_counter() - t0
        root = settings.data_root
        t0 = time.perf_counter()
        duck_rows = duckdb.execute(
            DUCKDB_ENRICH.format(
                forecast=root / settings.names.bucket("forecast-export") / "exports/bench/forecast/part-00000.csv",
                target=next((root / settings.names.bucket("forecast-input")).rglob("part-0.csv")),
                outliers=root / settings.names.bucket("analysis") / "outliers/**/*.parquet",
            )
        ).fetchall()
        duck_s = time.perf_counter() - t0
        if only in (None, "enrich"):
            emit("enrich", "rows_per_s", result["rows"] / spark_s, "rows/s", baseline=len(duck_rows) / duck_s,
                 rows=result["rows"], spark_seconds=round(spark_s, 2), duckdb_seconds=round(duck_s, 3))  # fmt: skip
        if only not in (None, "query"):
            return
        db = settings.names.glue_database
        con = local_connection(settings)
        for query in QUERIES:
            sql = NAMED[query.name].text(db)
            statement = to_duckdb(sql)[-1]
            cold, warm = [], []
            for _ in range(3 if quick else 10):
                t0 = time.perf_counter()
                run_local(sql, settings)
                cold.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                con.execute(statement).fetchall()
                warm.append((time.perf_counter() - t0) * 1000)
            emit("query", "ms_per_query", statistics.median(cold), "ms", baseline=statistics.median(warm),
                 query=query.name)  # fmt: skip
