"""The Athena layer's views and named queries, as Athena SQL text (the same text runs locally in DuckDB).

`{db}` stands for the Glue database (Settings.names.glue_database). Views are created in Athena by running
their CREATE statements (`demand query --named create-views`); locally they are created on every connection.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.tables import OUTLIERS, SALES, Table


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    sql: str

    def text(self, database: str) -> str:
        return self.sql.format(db=database).strip()


def _once(table: Table) -> NamedQuery:
    """The table with each event_id once: the Kinesis sinks and Firehose deliver at least once, and a restarted split
    may send a record again. Every view and query over sales lines reads these, never the raw tables."""
    columns = ", ".join([*table.contract.names, *table.partitions])
    return NamedQuery(
        f"{table.name}_once",
        f"The {table.name} table with each event_id once (deliveries are at least once).",
        f"""
CREATE OR REPLACE VIEW {{db}}.{table.name}_once AS
SELECT {columns}
FROM (
  SELECT t.*, row_number() OVER (PARTITION BY event_id ORDER BY {table.time_field}) AS copy_no
  FROM {{db}}.{table.name} t
) numbered
WHERE copy_no = 1
""",
    )


VIEWS: tuple[NamedQuery, ...] = (
    _once(SALES),
    _once(OUTLIERS),
    NamedQuery(
        "latest_forecast",
        "The newest run's forecast of every item (and location).",
        """
CREATE OR REPLACE VIEW {db}.latest_forecast AS
SELECT run_id, run_started_at, frequency, item_id, location, forecast_date, p10, p50, p90, mean, category, brand,
       last_demand, recent_demand, outlier_count, outlier_top_code, predictor_id, backend, avg_wql, wape
FROM (
  SELECT f.*, dense_rank() OVER (PARTITION BY item_id, location ORDER BY run_started_at DESC, run_id DESC) AS recency
  FROM {db}.enriched_forecasts f
) ranked
WHERE recency = 1
""",
    ),
    NamedQuery(
        "latest_totals",
        "The newest run's coherent forecasts of every level: total, categories, stores, items (expected demand adds"
        " up).",
        """
CREATE OR REPLACE VIEW {db}.latest_totals AS
SELECT run_id, run_started_at, frequency, level, item_id, location, category, forecast_date, p10, p50, p90, mean,
       base_p50, method, backtest_wape, base_backtest_wape, predictor_id
FROM {db}.coherent_forecasts
WHERE run_id = (SELECT max_by(run_id, run_started_at) FROM {db}.coherent_forecasts)
""",
    ),
    NamedQuery(
        "totals_accuracy",
        "Backtest WAPE of each level of each run's coherent totals, before and after reconciliation.",
        """
CREATE OR REPLACE VIEW {db}.totals_accuracy AS
SELECT run_id, min(run_started_at) AS run_started_at, level, max(method) AS method,
       max(backtest_wape) AS backtest_wape, max(base_backtest_wape) AS base_backtest_wape,
       count(DISTINCT coalesce(item_id, '') || '|' || coalesce(location, '') || '|' || coalesce(category, '')) AS nodes
FROM {db}.coherent_forecasts
GROUP BY run_id, level
""",
    ),
    NamedQuery(
        "latest_anomalies",
        "The demand anomalies of every level of the newest build's detection (by its window end; of two detections of"
        " a build, the later): direction, span, expected band, contributors, whether feedback marked the pattern as"
        " expected.",
        """
CREATE OR REPLACE VIEW {db}.latest_anomalies AS
SELECT anomaly_id, run_id, detected_at, frequency, level, series, item_id, location, category, channel, direction,
       start_date, end_date, peak_date, periods, actual, expected, lower, upper, excess_units, score, severity,
       contributors, suppressed_by
FROM {db}.demand_anomalies
WHERE run_id = (SELECT run_id FROM {db}.demand_anomalies ORDER BY run_date DESC, detected_at DESC LIMIT 1)
""",
    ),
    NamedQuery(
        "forecast_vs_actual",
        "Forecast quantiles beside the actual demand of the same item and period, once sales arrive.",
        """
CREATE OR REPLACE VIEW {db}.forecast_vs_actual AS
WITH actual AS (
  SELECT 'W' AS frequency, item_id, date_trunc('week', event_time) AS period, sum(quantity) AS demand
  FROM {db}.sales_once GROUP BY 1, 2, 3
  UNION ALL
  SELECT 'D' AS frequency, item_id, date_trunc('day', event_time) AS period, sum(quantity) AS demand
  FROM {db}.sales_once GROUP BY 1, 2, 3
)
SELECT f.run_id, f.item_id, f.forecast_date, f.p10, f.p50, f.p90, a.demand AS actual,
       a.demand BETWEEN f.p10 AND f.p90 AS within_p10_p90, abs(a.demand - f.p50) AS abs_error
FROM {db}.enriched_forecasts f
JOIN actual a ON a.frequency = f.frequency AND a.item_id = f.item_id AND a.period = f.forecast_date
WHERE f.location IS NULL
""",
    ),
    NamedQuery(
        "outlier_summary",
        "Outliers by item, store, day and reason code.",
        """
CREATE OR REPLACE VIEW {db}.outlier_summary AS
SELECT item_id, store_id, date_trunc('day', event_time) AS day, outlier_code, count(*) AS outliers,
       sum(quantity) AS quantity, max(outlier_score) AS max_score
FROM {db}.outliers_once
GROUP BY 1, 2, 3, 4
""",
    ),
    NamedQuery(
        "accuracy_by_run",
        "Backtest accuracy of the predictor behind each run.",
        """
CREATE OR REPLACE VIEW {db}.accuracy_by_run AS
SELECT run_id, min(run_started_at) AS run_started_at, max(predictor_id) AS predictor_id, max(backend) AS backend,
       max(avg_wql) AS avg_wql, max(wape) AS wape, count(DISTINCT item_id) AS items, count(*) AS forecast_rows
FROM {db}.enriched_forecasts
GROUP BY run_id
""",
    ),
)

QUERIES: tuple[NamedQuery, ...] = (
    NamedQuery(
        "next_period_forecast",
        "Every item's forecast for the first period of the latest run, largest median first.",
        """
SELECT item_id, location, forecast_date, p10, p50, p90, category, last_demand, outlier_count
FROM {db}.latest_forecast
WHERE forecast_date = (SELECT min(forecast_date) FROM {db}.latest_forecast)
ORDER BY p50 DESC, item_id
""",
    ),
    NamedQuery(
        "interval_coverage",
        "Share of actuals inside the p10-p90 band, per run (nominal 0.8).",
        """
SELECT run_id, count(*) AS periods, avg(CASE WHEN within_p10_p90 THEN 1.0 ELSE 0.0 END) AS coverage,
       sum(abs_error) / nullif(sum(abs(actual)), 0) AS wape
FROM {db}.forecast_vs_actual
GROUP BY run_id
ORDER BY run_id
""",
    ),
    NamedQuery(
        "outliers_by_code",
        "Outlier counts by reason code.",
        """
SELECT outlier_code, sum(outliers) AS outliers, count(DISTINCT item_id) AS items
FROM {db}.outlier_summary
GROUP BY outlier_code
ORDER BY outliers DESC
""",
    ),
    NamedQuery(
        "accuracy_history",
        "Accuracy of every run, newest first.",
        "SELECT * FROM {db}.accuracy_by_run ORDER BY run_started_at DESC",
    ),
)

NAMED: dict[str, NamedQuery] = {q.name: q for q in VIEWS + QUERIES}
