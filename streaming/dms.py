"""Decode the AWS DMS change-data-capture envelope (Kinesis target, JSON message format) into events.

Every CDC record becomes exactly one event or an EventError, so input counts always add up:
- `load` / `insert`: the row as an event.
- `update`: a sale becomes a correction (quantity = new - old), which needs the before image
  (DMS task setting BeforeImageSettings); without it the record is rejected, never guessed.
  Product and campaign updates are the new state.
- `delete`: a sale becomes a reversal (quantity negated); a product is marked discontinued;
  a campaign ends.
- control records (create-table, ...) carry no sale and are rejected with code `dms_control_record`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from core.contracts import EVENTS, SCHEMA_VERSION
from streaming.events import EventError, parse_time, show

# Source table -> event type. Override by naming the tables after the event types.
DMS_TABLES: dict[str, str] = {
    "sales": "sale",
    "sale": "sale",
    "order_lines": "sale",
    "products": "product",
    "product": "product",
    "items": "product",
    "promotions": "campaign",
    "campaigns": "campaign",
    "campaign": "campaign",
}
_ROW_ID_COLUMNS = ("event_id", "id", "order_line_id")


def is_dms_envelope(obj: Any) -> bool:
    """A DMS record has a metadata object and a data member; direct events may have neither."""
    return isinstance(obj, dict) and isinstance(obj.get("metadata"), dict) and "data" in obj


def _is_key(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63


def _quantity(event: dict[str, Any], name: str, value: Any) -> float:
    """A quantity from a row as a finite float, or EventError (not OverflowError: JSON allows 10**400)."""
    if not isinstance(value, bool) and isinstance(value, int | float):
        try:
            qty = float(value)
        except OverflowError:
            qty = math.inf
        if math.isfinite(qty):
            return qty
        raise EventError("bad_number", f"sale {event['event_id']}: {name}={show(value)} must be a finite number")
    raise EventError("bad_type", f"sale {event['event_id']}: {name}={show(value)} must be a number")


_NAIVE_DB_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,9})?$")


def _utc(value: Any) -> Any:
    """DMS writes datetime columns as the database holds them, without a zone ("2024-03-01 10:15:42.123"):
    the pipeline's convention is that source databases store UTC, so such values are read as UTC."""
    if isinstance(value, str) and _NAIVE_DB_TIME.match(value):
        head, _, frac = value.replace(" ", "T").partition(".")
        return f"{head}.{(frac + '000')[:3]}Z" if frac else f"{head}Z"
    return value


def _dms_time(value: Any) -> str:
    # DMS writes "2024-03-01T10:00:00.123456Z" (ISO) for CDC timestamps.
    return parse_time(value, "metadata.timestamp")


def decode_dms(envelope: dict[str, Any]) -> dict[str, Any]:
    """Return the event dict (not yet validated against its contract) for one DMS record."""
    meta = envelope["metadata"]
    record_type = meta.get("record-type")
    operation = meta.get("operation")
    table = meta.get("table-name")
    if record_type == "control":
        raise EventError(
            "dms_control_record", f"DMS control record ({show(operation)} on {show(table)}) carries no event"
        )
    if record_type != "data":
        raise EventError("bad_dms_envelope", f"metadata.record-type={show(record_type)} must be data or control")
    event_type = DMS_TABLES.get(table) if isinstance(table, str) else None
    if event_type is None:
        raise EventError("unknown_dms_table", f"DMS metadata.table-name={show(table)} maps to no event type")
    row = envelope["data"]
    if not isinstance(row, dict):
        raise EventError("bad_dms_envelope", f"DMS data={show(row)} must be an object")
    row_id = next((row[c] for c in _ROW_ID_COLUMNS if row.get(c) not in (None, "")), None)
    if row_id is None:
        raise EventError("missing_field", f"DMS {table} row has none of the id columns {', '.join(_ROW_ID_COLUMNS)}")
    # A key column is text or an integer; anything else would make a meaningless event_id like "[1, 2]".
    if not _is_key(row_id):
        raise EventError("bad_type", f"DMS {table} row id={show(row_id)} must be a string or a 64-bit integer")
    timestamp = _dms_time(meta.get("timestamp"))
    fields = EVENTS[event_type].names
    event = {k: v for k, v in row.items() if k in fields}
    for name in ("event_time", "starts_at", "ends_at"):
        event[name] = _utc(event[name]) if name in event else None
    event = {k: v for k, v in event.items() if v is not None}
    event.update(event_type=event_type, schema_version=SCHEMA_VERSION, event_id=str(row_id))
    event.setdefault("event_time", timestamp)
    if event_type == "sale":
        event["source_operation"] = operation
    if operation in ("load", "insert"):
        return event
    if operation == "update":
        return _update(event, envelope, timestamp)
    if operation == "delete":
        return _delete(event, timestamp)
    raise EventError("bad_dms_envelope", f"DMS data record has metadata.operation={show(operation)}")


def _change_mark(envelope: dict[str, Any]) -> str:
    """What tells two updates of one row in the same millisecond apart: the source's log position when the DMS task
    sends transaction details (IncludeTransactionDetails), else the change's own content, so that a record delivered
    twice is still one change."""
    meta = envelope["metadata"]
    mark = meta.get("stream-position")
    if mark is None and meta.get("transaction-record-id") is not None:  # the record's offset in its transaction
        mark = f"{meta.get('transaction-id')}/{meta['transaction-record-id']}"
    if mark is None:
        mark = json.dumps([envelope.get("data"), envelope.get("before-image")], sort_keys=True, default=str)
    return hashlib.sha256(str(mark).encode()).hexdigest()[:12]


def _update(event: dict[str, Any], envelope: dict[str, Any], timestamp: str) -> dict[str, Any]:
    event["event_id"] = f"{event['event_id']}:update:{timestamp}:{_change_mark(envelope)}"
    if event["event_type"] != "sale":
        event["event_time"] = timestamp
        return event
    before = envelope.get("before-image")
    if not isinstance(before, dict) or "quantity" not in before:
        raise EventError(
            "dms_update_without_before_image",
            f"sale {event['event_id']}: an update cannot be netted without the before image "
            "(DMS task setting BeforeImageSettings: EnableBeforeImage, FieldName before-image, ColumnFilter all)",
        )
    new_qty = _quantity(event, "quantity", event.get("quantity"))
    old_qty = _quantity(event, "before-image.quantity", before["quantity"])
    event["quantity"] = new_qty - old_qty
    event["event_time"] = timestamp
    return event


def _delete(event: dict[str, Any], timestamp: str) -> dict[str, Any]:
    event["event_id"] = f"{event['event_id']}:delete"
    event["event_time"] = timestamp
    if event["event_type"] == "sale":
        event["quantity"] = -_quantity(event, "quantity", event.get("quantity"))
    elif event["event_type"] == "product":
        event["status"] = "discontinued"
    else:
        event["action"] = "end"
    return event
