"""The DynamoDB forecast cache: one item per product, its JSON payload and an `expires_at` TTL (epoch seconds).

DynamoDB deletes expired items lazily (up to days later, per the TTL docs), so a read checks `expires_at` too.

A new enriched run must be served at once, not after the TTL: enrich_forecast calls
`core.cache_generation.record_enriched_run` once the run's forecasts are written, which bumps a `generation`
counter on one reserved item of the same table.
Every entry stores the generation it was built under, and a read fetches entry and counter in one
BatchGetItem: an entry from an older generation is a miss. Because the counter moves only after the data is
written, an entry can at worst be labelled older than its data (one extra miss), never newer.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from core import aws
from core.cache_generation import LATEST_RUN_KEY
from core.settings import Settings

log = logging.getLogger("demand.api")
MAX_ITEM_PAYLOAD = 380_000  # bytes of payload; the item's other attributes and names fit in DynamoDB's 400 KB
# A cache that does not answer quickly is skipped, not waited for: the query layer answers instead.
_CACHE_CLIENT = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=1, read_timeout=2)


@dataclass(frozen=True)
class Lookup:
    """A cache read: the payload on a hit (else None) and the enrichment generation current at the read."""

    payload: dict | None
    generation: int | None  # None: unknown (DynamoDB left a key unprocessed); such a miss is not cached


class ForecastCache:
    def __init__(self, settings: Settings, ttl_seconds: int = 3600):
        self.table = settings.names.api_cache_table
        self.ttl_seconds = ttl_seconds
        self._dynamodb = aws.client("dynamodb", settings, config=_CACHE_CLIENT)

    def get(self, item_id: str) -> Lookup:
        """The cached payload, or a miss. DynamoDB down or refusing is a miss that is not cached (generation None):
        the API answers from the query layer, slower but right."""
        keys = [{"item_id": {"S": item_id}}, {"item_id": {"S": LATEST_RUN_KEY}}]
        try:
            reply = self._dynamodb.batch_get_item(RequestItems={self.table: {"Keys": keys, "ConsistentRead": True}})
        except (BotoCoreError, ClientError) as exc:
            log.warning("forecast cache %s unavailable, answering from the query layer: %s", self.table, exc)
            return Lookup(None, None)
        if reply.get("UnprocessedKeys"):  # throttled: without both items there is nothing to trust
            return Lookup(None, None)
        found = {i["item_id"]["S"]: i for i in reply["Responses"].get(self.table, [])}
        generation = int(found[LATEST_RUN_KEY]["generation"]["N"]) if LATEST_RUN_KEY in found else 0
        entry = found.get(item_id)
        if (
            not entry
            or int(entry["expires_at"]["N"]) <= time.time()
            or int(entry.get("generation", {"N": "-1"})["N"]) != generation
        ):
            return Lookup(None, generation)
        return Lookup(json.loads(entry["payload"]["S"]), generation)

    def put(self, item_id: str, payload: dict, generation: int | None) -> int | None:
        """Store the payload built under `generation` (from the get before it); returns its expiry, or None
        when the generation is unknown and nothing was stored."""
        if generation is None:
            return None
        expires_at = int(time.time()) + self.ttl_seconds
        body = json.dumps(payload, default=str)
        if len(body.encode()) > MAX_ITEM_PAYLOAD:  # DynamoDB's items are at most 400 KB: such an answer is not cached
            log.info("forecast of %s is %d bytes, more than the cache holds: not cached", item_id, len(body))
            return None
        try:
            self._dynamodb.put_item(
                TableName=self.table,
                Item={
                    "item_id": {"S": item_id},
                    "payload": {"S": body},
                    "expires_at": {"N": str(expires_at)},
                    "generation": {"N": str(generation)},
                },
            )
        except (BotoCoreError, ClientError) as exc:
            log.warning("forecast cache %s refused %s: %s", self.table, item_id, exc)
            return None
        return expires_at
