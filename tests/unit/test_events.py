"""parse_record never raises; validate_event accepts exactly what the contracts' JSON Schemas accept."""

from __future__ import annotations

import base64
import json
import math
import os
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from core.contracts import EVENTS, REJECTED, Field
from streaming.events import EventError, Rejection, format_time, parse_time, validate_event
from streaming.records import encode_event, parse_record

# HYPOTHESIS_EXAMPLES=5000 for a deeper search than the fast default.
FAST = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "250")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# One schema for any event: the event_type const makes exactly one branch applicable.
ANY_EVENT = Draft202012Validator(
    {"oneOf": [c.json_schema() for c in EVENTS.values()]},
    format_checker=FormatChecker(),
)
REJECTED_SCHEMA = Draft202012Validator(REJECTED.json_schema(), format_checker=FormatChecker())


def in_utc_range(value: Any) -> bool:
    """RFC 3339 allows 0001-01-01T00:00:00+00:01, which is before year 1 in UTC: no table can hold it."""
    try:
        datetime.fromisoformat(value.upper()).astimezone(UTC)
    except OverflowError:
        return False
    return True


def schema_accepts(obj: Any) -> bool:
    """JSON Schema's verdict plus the rules it cannot express (documented in validate_event)."""
    if not ANY_EVENT.is_valid(obj):
        return False
    contract = EVENTS[obj["event_type"]]
    stamps = [obj[f.name] for f in contract.fields if f.type == "timestamp" and obj.get(f.name) is not None]
    if not all(in_utc_range(ts) for ts in stamps):
        return False
    if contract.name == "campaign":
        return parse_time(obj["ends_at"], "ends_at") > parse_time(obj["starts_at"], "starts_at")
    return True


# --- strategies: values built from the field specs, then mutated ----------------------------------
OFFSETS = st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-(24 * 60 - 1), 24 * 60 - 1))
TIMESTAMPS = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),  # no zone: rejected
    st.from_regex(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})?", fullmatch=True),
    st.sampled_from(
        [
            "2024-02-29T23:59:59.999999+14:00",
            "2023-02-29T00:00:00Z",
            "2024-12-31T23:59:60Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01",
            "1700000000",
        ]
    ),
)
NUMBERS = st.one_of(
    st.integers(),
    st.floats(allow_nan=False),
    st.sampled_from([0, -0.0, 1e308, 1.7976931348623157e308, 2**63, 2**63 - 1, -(2**63), 10**400, 1.5, 2.0]),
)
JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def valid_value(spec: Field) -> st.SearchStrategy[Any]:
    """Values the contract accepts for this field (bar the campaign's ends_at > starts_at)."""
    low, high = spec.bounds
    if spec.enum:
        return st.sampled_from(spec.enum)
    if spec.type == "timestamp":
        return st.datetimes(timezones=OFFSETS).map(lambda d: d.isoformat())
    if spec.type == "long":
        return st.integers(min_value=low, max_value=high)
    if spec.type == "double":
        return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False) | st.integers(-99, 99)
    if spec.pattern:
        return st.sampled_from(["EUR", "USD", "GBP", "JPY"])
    return st.text(min_size=spec.min_length or 0, max_size=spec.max_length or 20)


def weird_value(spec: Field) -> st.SearchStrategy[Any]:
    """Near misses for this field, and any JSON value at all."""
    near: st.SearchStrategy[Any] = st.text(max_size=200)
    if spec.type == "timestamp":
        near = TIMESTAMPS
    elif spec.type in ("long", "double"):
        near = NUMBERS
    elif spec.pattern:
        near = st.sampled_from(["eur", "EURO", "E1R", "", "GBP\n", "ÄÖÜ"])
    elif spec.enum:
        near = st.sampled_from([e.upper() for e in spec.enum] + [""])
    return st.one_of(near, near, JUNK, st.booleans(), NUMBERS, TIMESTAMPS)


@st.composite
def event_objects(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event of any type, then 0-3 mutations: a weird value, a dropped or null field, an extra field."""
    contract = draw(st.sampled_from(list(EVENTS.values())))
    obj: dict[str, Any] = {}
    for spec in contract.fields:
        if spec.name == "event_type":
            obj[spec.name] = contract.name
        elif spec.required or draw(st.booleans()):
            obj[spec.name] = draw(valid_value(spec))
        elif draw(st.booleans()):
            obj[spec.name] = None
    for _ in range(draw(st.integers(0, 3))):
        spec = draw(st.sampled_from(contract.fields))
        mutation = draw(st.sampled_from(["weird", "weird", "weird", "drop", "null", "extra", "retype"]))
        if mutation == "weird":
            obj[spec.name] = draw(weird_value(spec))
        elif mutation == "drop":
            obj.pop(spec.name, None)
        elif mutation == "null":
            obj[spec.name] = None
        elif mutation == "extra":
            obj[draw(st.text(min_size=1, max_size=10))] = draw(JUNK)
        else:
            obj["event_type"] = draw(st.sampled_from([*EVENTS, "Sale", ""]))
    return obj


def _is_json(obj: Any) -> bool:
    """Drop what JSON cannot carry (NaN), and Python jsonschema's '$'-before-newline quirk (see README)."""
    text = json.dumps(obj)
    return (
        "NaN" not in text
        and "Infinity" not in text
        and not any(isinstance(v, str) and v.endswith("\n") for v in obj.values())
    )


# --- properties -------------------------------------------------------------------------------------
@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    result = parse_record(raw)
    assert isinstance(result, dict | Rejection)
    if isinstance(result, dict):
        orjson.dumps(result)  # every event can be written out (the Flink job's outputs)
    if isinstance(result, Rejection):
        REJECTED_SCHEMA.validate(result.to_record("sales-stream", "shardId-000000000000", "4959"))


@FAST
@given(event_objects(), st.sampled_from([None, math.nan, math.inf, -math.inf, 10**400, True, [1], {"a": {}}]))
def test_arbitrary_event_objects_give_an_event_or_a_rejection_naming_the_field(obj: dict, poison: Any) -> None:
    results = [parse_record(json.dumps(obj).encode())]
    if obj:
        name = sorted(obj)[0]
        results.append(parse_record(json.dumps({**obj, name: poison}).encode()))
    for result in results:
        if isinstance(result, Rejection):
            assert result.error_code and result.error
            if result.error_code in (
                "bad_type",
                "bad_value",
                "bad_number",
                "too_long",
                "missing_field",
                "bad_timestamp",
            ):
                assert any(name in result.error for name in EVENTS[obj["event_type"]].names), result
        else:
            assert validate_event(json.loads(encode_event(result))) == result  # the wire form round-trips


@FAST
@given(event_objects())
def test_validator_agrees_with_json_schema(obj: dict) -> None:
    if not _is_json(obj):
        return
    try:
        validate_event(obj)
        accepted = True
    except EventError:
        accepted = False
    assert accepted == schema_accepts(obj), (obj, list(ANY_EVENT.iter_errors(obj))[:1])


@FAST
@given(TIMESTAMPS)
def test_timestamps_parse_to_the_wire_format_or_a_bad_timestamp(value: str) -> None:
    try:
        wire = parse_time(value, "sale.event_time")
    except EventError as exc:
        assert exc.code == "bad_timestamp" and "sale.event_time" in str(exc)
        return
    assert FormatChecker().conforms(value, "date-time")
    assert len(wire) == 24 and wire.endswith("Z") and parse_time(wire, "x") == wire


# --- examples ---------------------------------------------------------------------------------------
def sale(**changes: Any) -> dict[str, Any]:
    event = {
        "event_type": "sale",
        "schema_version": 1,
        "event_id": "s-1001-3",
        "event_time": "2024-03-01T11:15:42.123456+01:00",
        "store_id": "S012",
        "item_id": "SKU-4711",
        "quantity": 2,
        "unit_price": 3.49,
        "currency": "EUR",
        "channel": "store",
        "customer_id": "C-77",
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not ...}


def campaign(**changes: Any) -> dict[str, Any]:
    event = {
        "event_type": "campaign",
        "schema_version": 1,
        "event_id": "p-9-start",
        "event_time": "2024-03-01T00:00:00Z",
        "promotion_id": "P9",
        "item_id": "SKU-4711",
        "action": "start",
        "discount_pct": 0.2,
        "starts_at": "2024-03-01T00:00:00Z",
        "ends_at": "2024-03-08T00:00:00Z",
    }
    event.update(changes)
    return event


def test_a_good_sale_is_normalised() -> None:
    event = parse_record(json.dumps(sale()).encode())
    assert isinstance(event, dict)
    assert event["event_time"] == "2024-03-01T10:15:42.123Z"  # offset converted, milliseconds, Z
    assert event["quantity"] == 2.0 and isinstance(event["quantity"], float)
    assert event["order_id"] is None and event["customer_id"] == "C-77"
    assert ANY_EVENT.is_valid(json.loads(encode_event(event)))


def test_lowercase_z_and_early_years_are_written_in_the_wire_format() -> None:
    assert parse_time("2024-03-01t23:30:00.5z", "t") == "2024-03-01T23:30:00.500Z"
    assert parse_time("0999-01-01T00:30:00+01:00", "t") == "0998-12-31T23:30:00.000Z"


@pytest.mark.parametrize(
    ("record", "code", "mentions"),
    [
        (b"\xff\xfe{}", "not_utf8", "UTF-8"),
        (b'{"event_type": "sale",', "invalid_json", "JSON"),
        (b"[1, 2]", "not_an_object", "object"),
        (json.dumps(sale(event_type="refund")).encode(), "unknown_event_type", "event_type"),
        (json.dumps(sale(coupon="X")).encode(), "unexpected_field", "coupon"),
        (json.dumps(sale(store_id=...)).encode(), "missing_field", "sale.store_id"),
        (json.dumps(sale(store_id=None)).encode(), "missing_field", "sale.store_id"),
        (json.dumps(sale(quantity="2")).encode(), "bad_type", "sale.quantity"),
        (json.dumps(sale(quantity=True)).encode(), "bad_type", "sale.quantity"),
        (json.dumps(sale(schema_version=1.5)).encode(), "bad_type", "sale.schema_version"),
        (b'{"event_type": "sale", "quantity": NaN}', "missing_field", "sale.schema_version"),
        (json.dumps(sale(quantity=math.nan)).encode(), "bad_number", "sale.quantity"),
        (json.dumps(sale(quantity=1e999)).encode(), "bad_number", "sale.quantity"),
        (json.dumps(sale(quantity=10**400)).encode(), "bad_value", "sale.quantity"),
        (json.dumps(sale(unit_price=-0.01)).encode(), "bad_value", "sale.unit_price"),
        (json.dumps(sale(currency="eur")).encode(), "bad_value", "sale.currency"),
        (json.dumps(sale(channel="fax")).encode(), "bad_value", "sale.channel"),
        (json.dumps(sale(event_id="")).encode(), "bad_value", "sale.event_id"),
        (json.dumps(sale(event_id="x" * 129)).encode(), "too_long", "sale.event_id"),
        (json.dumps(sale(event_time="2024-03-01 10:15:42")).encode(), "bad_timestamp", "sale.event_time"),
        (json.dumps(sale(event_time="2024-02-30T10:15:42Z")).encode(), "bad_timestamp", "sale.event_time"),
        (json.dumps(sale(event_time="0001-01-01T00:00:00+01:00")).encode(), "bad_timestamp", "sale.event_time"),
        (json.dumps(sale(schema_version=2)).encode(), "unsupported_version", "sale.schema_version"),
        (json.dumps(campaign(discount_pct=1.2)).encode(), "bad_value", "campaign.discount_pct"),
        (json.dumps(campaign(ends_at="2024-02-29T00:00:00Z")).encode(), "bad_value", "campaign.ends_at"),
        (b"1" + b"0" * 5000, "invalid_json", "digits"),
        (b"[" * 100_000, "invalid_json", "JSON"),
        (json.dumps(sale(event_id="\ud800")).encode(), "invalid_unicode", "surrogate"),
    ],
)
def test_each_rejection_code(record: bytes, code: str, mentions: str) -> None:
    result = parse_record(record)
    assert isinstance(result, Rejection), result
    assert (result.error_code, mentions in result.error) == (code, True), result.error
    assert result.raw == record


def test_an_unparseable_record_keeps_its_bytes_as_base64() -> None:
    raw = b'{"event_type": "sale", "store_id": "K\xf6ln"}'  # latin-1, not UTF-8
    row = parse_record(raw)
    assert isinstance(row, Rejection)
    record = row.to_record(
        "sales-stream", "shardId-000000000001", "49590338271490256608559692538361571095921575989136588898"
    )
    assert record["raw_encoding"] == "base64" and base64.b64decode(record["raw"]) == raw
    assert record["error_code"] == "not_utf8" and record["shard_id"] == "shardId-000000000001"
    REJECTED_SCHEMA.validate(record)


def test_a_utf8_rejection_keeps_its_text() -> None:
    rejection = parse_record(json.dumps(sale(currency="€")).encode())
    assert isinstance(rejection, Rejection)
    record = rejection.to_record("file:sales.jsonl")
    assert record["raw_encoding"] == "utf-8" and json.loads(record["raw"])["currency"] == "€"
    REJECTED_SCHEMA.validate(record)


def test_error_messages_stay_short_for_huge_values() -> None:
    rejection = parse_record(json.dumps(sale(store_id="x" * 1_000_000, quantity=[[[[[[1]]]]]])).encode())
    assert isinstance(rejection, Rejection) and len(rejection.error) < 300


def test_format_time_is_utc_milliseconds() -> None:
    ts = datetime(2024, 3, 1, 1, 2, 3, 456789, tzinfo=timezone(timedelta(hours=-5)))
    assert format_time(ts) == "2024-03-01T06:02:03.456Z"


@pytest.mark.parametrize("poison", ["\x00", "é", b"\xff"])
def test_a_rejected_row_fits_in_one_kinesis_record_however_large_or_odd_the_input(poison) -> None:
    """On AWS rejected rows travel through Kinesis (1 MiB a record) to Firehose: a 1 MiB record of characters that
    each need a JSON escape must still give a row under 1 MiB, which says it was cut."""
    raw = (
        poison * (1024 * 1024 // len(poison))
        if isinstance(poison, bytes)
        else (poison * 1024 * 1024).encode()[: 1 << 20]
    )
    rejection = parse_record(raw)
    assert isinstance(rejection, Rejection)
    record = rejection.to_record("stream")
    assert len(json.dumps(record).encode()) < 1024 * 1024
    assert "raw: the first 131,072 characters of 1,048,576 bytes" in record["error"]
    REJECTED_SCHEMA.validate(record)
