"""The DynamoDB forecast cache: one item per product, its JSON payload and an `expires_at` TTL (epoch seconds).

DynamoDB deletes expired items lazily (up to days later, per the TTL docs), so a read checks `expires_at` too.
"""

from __future__ import annotations

import json
import time

from demand import aws


class ForecastCache:
    def __init__(self, settings, ttl_seconds: int = 3600):
        self.table = settings.names.api_cache_table
        self.ttl_seconds = ttl_seconds
        self._dynamodb = aws.client("dynamodb", settings)

    def get(self, item_id: str) -> dict | None:
        item = self._dynamodb.get_item(TableName=self.table, Key={"item_id": {"S": item_id}}).get("Item")
        if not item or int(item["expires_at"]["N"]) <= time.time():
            return None
        return json.loads(item["payload"]["S"])

    def put(self, item_id: str, payload: dict) -> int:
        expires_at = int(time.time()) + self.ttl_seconds
        self._dynamodb.put_item(
            TableName=self.table,
            Item={
                "item_id": {"S": item_id},
                "payload": {"S": json.dumps(payload, default=str)},
                "expires_at": {"N": str(expires_at)},
            },
        )
        return expires_at
