"""The enriched-run generation counter, shared by its writer (glue_jobs/enrich_forecast.py) and its reader (the
API's DynamoDB cache, api/cache.py): one reserved item of the forecast-cache table whose `generation` grows by one
each time a run's enriched forecasts are written, so every cache entry built before is a miss from then on.
"""

from __future__ import annotations

from datetime import UTC, datetime

from core import aws
from core.settings import Settings

# Not a valid item id (ids start with a letter or digit, see api.app.ID_PATTERN): never a product's entry.
LATEST_RUN_KEY = "#latest-enriched-run"


def record_enriched_run(settings: Settings, run_id: str) -> int:
    """Make every cached forecast built before this run a miss; returns the new generation."""
    reply = aws.client("dynamodb", settings).update_item(
        TableName=settings.names.api_cache_table,
        Key={"item_id": {"S": LATEST_RUN_KEY}},
        UpdateExpression="ADD generation :one SET run_id = :run, recorded_at = :now",
        ExpressionAttributeValues={
            ":one": {"N": "1"},
            ":run": {"S": run_id},
            ":now": {"S": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
        },
        ReturnValues="UPDATED_NEW",
    )
    return int(reply["Attributes"]["generation"]["N"])
