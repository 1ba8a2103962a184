"""Parse and validate raw records into events, or a rejection with a reason. Never raises on bad input.

The checks are driven by the field specs in `contracts.py` (the same ones the JSON Schema is derived
from), hand-rolled because jsonschema is ~50x slower and this runs once per event in the Flink job.
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streaming.contracts import EVENTS, SCHEMA_VERSION, Contract

# RFC 3339 date-time (what JSON Schema's "date-time" format means): a 'T', and a zone (Z or an offset).
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$",
)
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class EventError(ValueError):
    """A record that cannot become an event; `code` is machine-readable, the message says what and where."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Rejection:
    error_code: str
    error: str
    raw: bytes

    def to_record(self, source: str, shard_id: str | None = None, sequence_number: str | None = None) -> dict:
        """The REJECTED contract row: raw kept as text when it is UTF-8, else base64."""
        try:
            raw, encoding = self.raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            raw, encoding = base64.b64encode(self.raw).decode("ascii"), "base64"
        return {
            "raw": raw,
            "raw_encoding": encoding,
            "error_code": self.error_code,
            "error": self.error,
            "source": source,
            "shard_id": shard_id,
            "sequence_number": sequence_number,
            "rejected_at": format_time(datetime.now(UTC)),
        }


def format_time(ts: datetime) -> str:
    """The one wire format for timestamps: UTC, millisecond precision, 'Z'."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def parse_time(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise EventError("bad_timestamp", f"{field}={value!r} is not an ISO-8601 date-time with a UTC offset")
    try:
        ts = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError as exc:
        raise EventError("bad_timestamp", f"{field}={value!r}: {exc}") from None
    return format_time(ts)


def _check_field(contract: Contract, name: str, value: Any) -> Any:
    spec = contract.field(name)
    kind = spec.type
    if kind == "string":
        if not isinstance(value, str):
            raise EventError("bad_type", f"{contract.name}.{name}={value!r} must be a string")
        if spec.max_length is not None and len(value) > spec.max_length:
            raise EventError("too_long", f"{contract.name}.{name} is {len(value)} chars, at most {spec.max_length}")
    elif kind == "timestamp":
        value = parse_time(value, f"{contract.name}.{name}")
    elif kind == "double":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise EventError("bad_type", f"{contract.name}.{name}={value!r} must be a number")
        value = float(value)
        if not math.isfinite(value):
            raise EventError("bad_number", f"{contract.name}.{name}={value!r} must be finite")
    elif kind == "long":
        if isinstance(value, bool) or not isinstance(value, int):
            raise EventError("bad_type", f"{contract.name}.{name}={value!r} must be an integer")
    elif kind == "boolean" and not isinstance(value, bool):
        raise EventError("bad_type", f"{contract.name}.{name}={value!r} must be true or false")
    if spec.enum is not None and value not in spec.enum:
        raise EventError("bad_value", f"{contract.name}.{name}={value!r} must be one of {', '.join(spec.enum)}")
    if spec.minimum is not None and value < spec.minimum:
        raise EventError("bad_value", f"{contract.name}.{name}={value!r} must be >= {spec.minimum:g}")
    return value


def validate_event(obj: Any) -> dict[str, Any]:
    """Return the normalised event (timestamps in UTC wire format, numbers as float), or raise EventError."""
    if not isinstance(obj, dict):
        raise EventError("not_an_object", f"an event must be a JSON object, got {type(obj).__name__}")
    event_type = obj.get("event_type")
    contract = EVENTS.get(event_type) if isinstance(event_type, str) else None
    if contract is None:
        raise EventError("unknown_event_type", f"event_type={event_type!r} must be one of {', '.join(EVENTS)}")
    unknown = [k for k in obj if k not in contract.names]
    if unknown:
        raise EventError("unexpected_field", f"{contract.name} has no field(s) {', '.join(map(repr, unknown))}")
    event: dict[str, Any] = {}
    for spec in contract.fields:
        value = obj.get(spec.name)
        if value is None:
            if spec.required:
                raise EventError("missing_field", f"{contract.name}.{spec.name} is required")
            event[spec.name] = None
            continue
        event[spec.name] = _check_field(contract, spec.name, value)
    if event["schema_version"] > SCHEMA_VERSION:
        raise EventError(
            "unsupported_version", f"schema_version={event['schema_version']} is newer than {SCHEMA_VERSION}"
        )
    if not event["event_id"]:
        raise EventError("bad_value", f"{contract.name}.event_id must not be empty")
    if contract.name == "sale" and not _CURRENCY.match(event["currency"]):
        raise EventError("bad_value", f"sale.currency={event['currency']!r} must be an ISO-4217 code like EUR")
    if contract.name == "campaign" and event["ends_at"] <= event["starts_at"]:
        raise EventError("bad_value", f"campaign {event['promotion_id']}: ends_at must be after starts_at")
    return event


def parse_record(raw: bytes) -> dict[str, Any] | Rejection:
    """One raw record (a direct event or a DMS CDC envelope) -> one event, or a Rejection. Never raises."""
    from streaming.dms import decode_dms, is_dms_envelope

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection("not_utf8", f"record is not UTF-8 text: {exc}", raw)
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        return Rejection("invalid_json", f"record is not JSON: {exc}", raw)
    try:
        if is_dms_envelope(obj):
            obj = decode_dms(obj)
        return validate_event(obj)
    except EventError as exc:
        return Rejection(exc.code, str(exc), raw)


def encode_event(event: dict[str, Any]) -> bytes:
    """Compact JSON without null fields: the wire form pushed to Kinesis."""
    return json.dumps({k: v for k, v in event.items() if v is not None}, separators=(",", ":")).encode()
