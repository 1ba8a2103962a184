"""Raw records -> events: one record (a direct event or a DMS CDC envelope, as bytes) becomes one validated
event or one Rejection with the reason. The producer, the stream reader and the Flink job all parse here.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from streaming.dms import decode_dms, is_dms_envelope
from streaming.events import EventError, Rejection, validate_event


def parse_record(raw: bytes) -> dict[str, Any] | Rejection:
    """One raw record (a direct event or a DMS CDC envelope) -> one event, or a Rejection. Never raises."""
    try:
        obj = orjson.loads(raw)  # fast; what it refuses, the standard library decides (and explains)
    except orjson.JSONDecodeError:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejection("not_utf8", f"record is not UTF-8 text: {exc}", raw)
        try:
            obj = json.loads(text)  # NaN and 1e400 parse here; validation rejects them
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, or an integer over 4300 digits
            return Rejection("invalid_json", f"record is not JSON: {exc}", raw)
        try:  # "\ud800" parses too, but no UTF-8 output (the job's JSON lines, parquet) can carry it
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            return Rejection("invalid_unicode", f"record holds a lone surrogate escape: {exc}", raw)
        except RecursionError as exc:
            return Rejection("invalid_json", f"record is nested too deeply: {exc}", raw)
    try:
        if isinstance(obj, dict) and "metadata" in obj and is_dms_envelope(obj):
            obj = decode_dms(obj)
        return validate_event(obj)
    except EventError as exc:
        return Rejection(exc.code, str(exc), raw)


def encode_event(event: dict[str, Any]) -> bytes:
    """Compact JSON without null fields: the wire form pushed to Kinesis."""
    return json.dumps({k: v for k, v in event.items() if v is not None}, separators=(",", ":")).encode()
