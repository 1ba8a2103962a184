"""Stock on hand in DynamoDB (Settings.names.stock_table): one item per product, or product at a store, keyed
`series_id` = item_id or item_id|location, with on_hand, lead_time and when it was recorded.

`demand stock --on-hand STOCK.csv --save` writes it (an inventory system can put the same items: on_hand a number,
lead_time an optional number of periods), `demand stock` without a CSV and GET /items/{id}/stock without `on_hand`
read it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from core import aws
from core.settings import Settings
from forecast_orchestrator.series import SEPARATOR


@dataclass(frozen=True)
class OnHand:
    item_id: str
    location: str | None
    on_hand: float
    lead_time: int | None  # None: the request's (or the default) lead time
    recorded_at: str | None = None


def series_id(item_id: str, location: str | None) -> str:
    return item_id if not location else f"{item_id}{SEPARATOR}{location}"


def _item(row: OnHand, recorded_at: str) -> dict:
    item = {"series_id": {"S": series_id(row.item_id, row.location)}, "item_id": {"S": row.item_id},
            "on_hand": {"N": repr(float(row.on_hand))}, "recorded_at": {"S": recorded_at}}  # fmt: skip
    if row.location:
        item["location"] = {"S": row.location}
    if row.lead_time is not None:
        item["lead_time"] = {"N": str(int(row.lead_time))}
    return item


def save(settings: Settings, rows: list[OnHand], attempts: int = 8) -> int:
    """Write (replace) the rows, 25 a BatchWriteItem; items DynamoDB leaves unprocessed are sent again with a
    growing pause. Returns how many were written; raises when some are still unprocessed after `attempts`."""
    dynamodb = aws.client("dynamodb", settings)
    table, now = settings.names.stock_table, datetime.now(UTC).isoformat(timespec="seconds")
    latest = {series_id(r.item_id, r.location): r for r in rows}  # a CSV naming a series twice: its last row
    requests = [{"PutRequest": {"Item": _item(r, now)}} for r in latest.values()]
    for start in range(0, len(requests), 25):
        pending = requests[start : start + 25]
        for attempt in range(attempts):
            pending = (
                dynamodb.batch_write_item(RequestItems={table: pending}).get("UnprocessedItems", {}).get(table, [])
            )
            if not pending:
                break
            time.sleep(min(0.05 * 2**attempt, 2.0))
        if pending:
            raise RuntimeError(f"{len(pending)} stock rows were not written to {table} after {attempts} attempts")
    return len(requests)


def _row(item: dict) -> OnHand:
    lead = item.get("lead_time")
    return OnHand(item["item_id"]["S"], item.get("location", {}).get("S"), float(item["on_hand"]["N"]),
                  None if lead is None else int(lead["N"]), item.get("recorded_at", {}).get("S"))  # fmt: skip


def lookup(settings: Settings, item_id: str, location: str | None = None) -> OnHand | None:
    answer = aws.client("dynamodb", settings).get_item(
        TableName=settings.names.stock_table,
        Key={"series_id": {"S": series_id(item_id, location)}},
        ConsistentRead=True,
    )
    return None if "Item" not in answer else _row(answer["Item"])


def missing(settings: Settings, item_id: str, location: str | None) -> str:
    where = f" at {location}" if location else ""
    return (f"no stock on hand for item {item_id}{where} in {settings.names.stock_table}: pass on_hand, or record it "
            "with demand stock --on-hand FILE --save")  # fmt: skip


def every_row(settings: Settings) -> list[OnHand]:
    """The whole table (a Scan, page by page), by item and location."""
    pages = aws.client("dynamodb", settings).get_paginator("scan").paginate(TableName=settings.names.stock_table)
    rows = [_row(item) for page in pages for item in page.get("Items", [])]
    return sorted(rows, key=lambda r: (r.item_id, r.location or ""))
