"""The API's reads from the query layer: Athena SQL text, run in Athena (runtime aws) or DuckDB (local).

User values reach SQL only after strict validation (patterns in app.py) and then as quoted literals built by
sqlglot, never by pasting raw text.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlglot import exp

from core.aws import client
from core.contracts import ANOMALY_DIRECTIONS, ANOMALY_LEVELS, DEMAND_ANOMALY
from core.settings import Settings
from query.engine import run_athena, run_local

NUMERIC = {"p10", "p50", "p90", "demand", "quantity", "unit_price", "outlier_score", "avg_wql", "wape", "outliers",
           "items", "forecast_rows", "band_width", "actual", "expected", "lower", "upper", "excess_units",
           "score"}  # fmt: skip
WHOLE = {"severity", "periods"}  # counts and grades: ints, as DuckDB returns them


def literal(value: str) -> str:
    return exp.Literal.string(value).sql(dialect="athena")


def _plain(column: str, value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str):  # Athena returns every value as text
        if column in NUMERIC:
            return float(value)
        if column in WHOLE:
            return int(value)
    return value


def no_totals(level: str, key: str | None) -> str:
    """Why a coherent-totals request has no rows."""
    return (f"no coherent totals at level {level}" + (f" for {key}" if key else "")
            + ": run a forecast with coherent totals (the default) and the enrichment")  # fmt: skip


class QueryLayer:
    """Runs SQL where the settings say: Athena when runtime is aws, DuckDB over the local parquet otherwise."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.db = settings.names.glue_database

    def rows(self, sql: str) -> list[dict[str, Any]]:
        if self.settings.runtime == "aws":
            athena = client("athena", self.settings)
            result = run_athena(sql, self.settings, athena, self.settings.names.athena_workgroup)
        else:
            result = run_local(sql, self.settings)
        return [{k: _plain(k, v) for k, v in r.items()} for r in result.records()]

    def forecast(self, item_id: str) -> list[dict[str, Any]]:
        return self.rows(
            f"SELECT forecast_date, location, p10, p50, p90, category, run_id, predictor_id AS predictor, backend "
            f"FROM {self.db}.latest_forecast WHERE item_id = {literal(item_id)} ORDER BY location, forecast_date"
        )

    def latest_run(self) -> str | None:
        """The run whose forecast the API serves (the latest enriched run), or None before the first."""
        rows = self.rows(f"SELECT run_id FROM {self.db}.latest_forecast LIMIT 1")
        return rows[0]["run_id"] if rows else None

    def history(self, item_id: str, until: str, periods: int = 52) -> list[dict[str, Any]]:
        """Weekly demand of the `periods` weeks before `until` (the forecast's first date): bounded in time and by the
        month partitions, so a lookup reads a year of the sales table, not all of it."""
        end = datetime.fromisoformat(until[:10])
        start = end - timedelta(weeks=periods)
        rows = self.rows(
            f"SELECT date_trunc('week', event_time) AS period, sum(quantity) AS demand FROM {self.db}.sales_once "
            f"WHERE item_id = {literal(item_id)} AND year BETWEEN '{start.year:04d}' AND '{end.year:04d}' "
            f"AND event_time >= from_iso8601_timestamp({literal(start.isoformat())}) "
            f"AND event_time < from_iso8601_timestamp({literal(end.isoformat())}) "
            f"GROUP BY 1 ORDER BY 1 DESC LIMIT {int(periods)}"
        )
        return rows[::-1]

    def items(self) -> list[dict[str, Any]]:
        """The latest run's items, the most forecast units first."""
        return self.rows(
            f"SELECT item_id, max(category) AS category, max(outlier_count) AS outlier_count, "
            f"round(sum(p50), 3) AS forecast_units FROM {self.db}.latest_forecast "
            f"GROUP BY item_id ORDER BY forecast_units DESC, item_id"
        )

    def outliers(self, filters: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        where = ["true"]
        for column in ("item_id", "store_id", "outlier_code"):
            if filters.get(column) is not None:
                where.append(f"{column} = {literal(filters[column])}")
        if filters.get("since") is not None:
            where.append(f"event_time >= from_iso8601_timestamp({literal(filters['since'].isoformat())})")
        return self.rows(
            f"SELECT event_id, event_time, store_id, item_id, quantity, unit_price, outlier_score, outlier_code, "
            f"outlier_reason FROM {self.db}.outliers_once WHERE {' AND '.join(where)} "
            f"ORDER BY event_time DESC, event_id LIMIT {int(limit)}"
        )

    def totals(self, level: str, key: str | None) -> list[dict[str, Any]]:
        """The latest run's coherent forecasts of one level (one category, store or item when `key` names it)."""
        where = [f"level = {literal(level)}"]
        if key is not None:
            where.append(f"{literal(key)} IN (coalesce(category, ''), coalesce(location, ''), coalesce(item_id, ''))")
        return self.rows(
            f"SELECT level, category, location, item_id, forecast_date, p10, p50, p90, mean, base_p50, method, "
            f"backtest_wape, base_backtest_wape, run_id FROM {self.db}.latest_totals WHERE {' AND '.join(where)} "
            f"ORDER BY category, location, item_id, forecast_date"
        )

    def totals_accuracy(self) -> list[dict[str, Any]]:
        return self.rows(
            f"SELECT level, method, backtest_wape, base_backtest_wape, nodes FROM {self.db}.totals_accuracy "
            f"WHERE run_id = (SELECT max_by(run_id, run_started_at) FROM {self.db}.totals_accuracy)"
        )

    def accuracy(self) -> list[dict[str, Any]]:
        return self.rows(f"SELECT * FROM {self.db}.accuracy_by_run ORDER BY run_started_at DESC")

    def outliers_by_code(self) -> list[dict[str, Any]]:
        return self.rows(
            f"SELECT outlier_code, sum(outliers) AS outliers, count(DISTINCT item_id) AS items "
            f"FROM {self.db}.outlier_summary GROUP BY outlier_code ORDER BY outliers DESC"
        )

    def outliers_by_week(self) -> list[dict[str, Any]]:
        return self.rows(
            f"SELECT date_trunc('week', day) AS week, outlier_code, sum(outliers) AS outliers "
            f"FROM {self.db}.outlier_summary GROUP BY 1, 2 ORDER BY 1, 2"
        )

    def widest_items(self, limit: int = 10) -> list[dict[str, Any]]:
        return self.rows(
            f"SELECT item_id, max(category) AS category, avg(p90 - p10) AS band_width, avg(p50) AS p50, "
            f"max(outlier_count) AS outlier_count FROM {self.db}.latest_forecast "
            f"GROUP BY item_id ORDER BY 3 DESC, item_id LIMIT {int(limit)}"
        )

    def anomalies(
        self, level: str | None = None, min_severity: int = 0, direction: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The latest detection's demand anomalies (of one level and direction when given), most severe first."""
        if level is not None and level not in ANOMALY_LEVELS:
            raise ValueError(f"level {level!r}: expected one of {', '.join(ANOMALY_LEVELS)}")
        if direction is not None and direction not in ANOMALY_DIRECTIONS:
            raise ValueError(f"direction {direction!r}: expected one of {', '.join(ANOMALY_DIRECTIONS)}")
        where = [f"severity >= {int(min_severity)}"]
        if level is not None:
            where.append(f"level = {literal(level)}")
        if direction is not None:
            where.append(f"direction = {literal(direction)}")
        return self.rows(
            f"SELECT {', '.join(DEMAND_ANOMALY.names)} FROM {self.db}.latest_anomalies WHERE {' AND '.join(where)} "
            f"ORDER BY severity DESC, start_date DESC, anomaly_id LIMIT {int(limit)}"
        )

    def anomaly(self, anomaly_id: str) -> dict[str, Any] | None:
        """One anomaly of the latest detection by its id, or None when that detection has no such anomaly."""
        rows = self.rows(
            f"SELECT {', '.join(DEMAND_ANOMALY.names)} FROM {self.db}.latest_anomalies "
            f"WHERE anomaly_id = {literal(anomaly_id)}"
        )
        return rows[0] if rows else None
