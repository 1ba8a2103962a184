"""The forecasting datasets' contract, in the Amazon Forecast RETAIL domain's layout ("Dataset guidelines").

Written by glue_jobs/build_forecast_inputs.py, read by the forecasting backends (forecast_orchestrator/series.py)
and the enrichment: target `item_id, [location,] timestamp, demand`; related `item_id, [location,] timestamp,
price, promotion_flag, discount, holiday_flag` (over the history and the forecast horizon); metadata
`item_id, category, brand`. Timestamps are `yyyy-MM-dd` (Forecast accepts it for D and coarser frequencies).
"""

from __future__ import annotations

from datetime import UTC, datetime

# Dataset -> (Forecast DatasetType, CreateDataset "Schema.Attributes"); column order = CSV column order.
DATASETS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "target": (
        "TARGET_TIME_SERIES",
        [("item_id", "string"), ("timestamp", "timestamp"), ("demand", "float")],
    ),
    "related": (
        "RELATED_TIME_SERIES",
        [
            ("item_id", "string"),
            ("timestamp", "timestamp"),
            ("price", "float"),
            ("promotion_flag", "integer"),
            ("discount", "float"),
            ("holiday_flag", "integer"),
        ],
    ),
    "metadata": ("ITEM_METADATA", [("item_id", "string"), ("category", "string"), ("brand", "string")]),
}
LOCATION = ("location", "string")  # after item_id in target and related when series are per item and store
TIMESTAMP_FORMAT = "yyyy-MM-dd"  # Spark's pattern; the same dates as pandas' %Y-%m-%d
# The related series' value columns (everything after the keys and the timestamp).
RELATED_COLUMNS: tuple[str, ...] = tuple(name for name, _ in DATASETS["related"][1][2:])


def series_keys(with_location: bool) -> list[str]:
    """The columns that name one series in the datasets and the export."""
    return ["item_id", "location"] if with_location else ["item_id"]


def columns(dataset: str, with_location: bool) -> list[tuple[str, str]]:
    """A dataset's (name, Forecast type) columns, with the location after item_id when series are per store."""
    schema = DATASETS[dataset][1]
    if with_location and dataset != "metadata":
        return [schema[0], LOCATION, *schema[1:]]
    return list(schema)


def built_at() -> str:
    """A manifest's build time (UTC, microseconds): the newest build is the one with the greatest."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
