"""AWS DMS CDC records (Kinesis target, JSON) become exactly one event or one rejection, never an exception."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from core.contracts import DMS_ENVELOPE_SCHEMA
from streaming.dms import decode_dms, is_dms_envelope
from streaming.events import EventError, Rejection
from streaming.records import parse_record

# HYPOTHESIS_EXAMPLES=5000 for a deeper search than the fast default.
FAST = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "250")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
ENVELOPE = Draft202012Validator(DMS_ENVELOPE_SCHEMA)

SALE_ROW = {
    "id": 88231,
    "store_id": "S012",
    "item_id": "SKU-4711",
    "quantity": 3,
    "unit_price": 2.99,
    "currency": "EUR",
    "channel": "store",
    "event_time": "2024-03-01T10:15:42.120Z",
    "order_id": "O-5531",
    "updated_by": "pos-sync",  # a source column the contract does not know: dropped
}
PRODUCT_ROW = {"id": "SKU-4711", "item_id": "SKU-4711", "name": "Oat milk 1l", "category": "dairy", "status": "active"}
PROMOTION_ROW = {
    "id": 17,
    "promotion_id": "P17",
    "item_id": "SKU-4711",
    "action": "start",
    "discount_pct": 0.15,
    "starts_at": "2024-03-04T00:00:00Z",
    "ends_at": "2024-03-11T00:00:00Z",
}


def envelope(table: str, operation: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A record as DMS writes it to Kinesis (MessageFormat json, PartitionIncludeSchemaTable)."""
    return {
        "data": data,
        "metadata": {
            "timestamp": "2024-03-01T10:15:43.401825Z",
            "record-type": "control" if operation in ("create-table", "drop-table", "add-column") else "data",
            "operation": operation,
            "partition-key-type": "schema-table",
            "schema-name": "retail",
            "table-name": table,
            "transaction-id": 8796093500541,
        },
        **extra,
    }


def parse(record: dict[str, Any]) -> dict[str, Any] | Rejection:
    return parse_record(json.dumps(record).encode())


# --- examples ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("table", "row", "event_type"),
    [("sales", SALE_ROW, "sale"), ("products", PRODUCT_ROW, "product"), ("promotions", PROMOTION_ROW, "campaign")],
)
@pytest.mark.parametrize("operation", ["load", "insert"])
def test_load_and_insert_become_the_event(table: str, row: dict, event_type: str, operation: str) -> None:
    event = parse(envelope(table, operation, row))
    assert isinstance(event, dict), event
    assert event["event_type"] == event_type and event["event_id"] == str(row["id"])
    assert "updated_by" not in event
    if event_type == "sale":
        assert event["quantity"] == 3.0 and event["source_operation"] == operation
        assert event["event_time"] == "2024-03-01T10:15:42.120Z"  # the row's own time wins


def test_a_sale_row_without_a_time_takes_the_commit_time() -> None:
    row = {k: v for k, v in SALE_ROW.items() if k != "event_time"}
    event = parse(envelope("sales", "insert", row))
    assert isinstance(event, dict) and event["event_time"] == "2024-03-01T10:15:43.401Z"


def test_database_datetimes_without_a_zone_are_read_as_utc() -> None:
    row = {**SALE_ROW, "event_time": "2024-03-01 10:15:42.123456"}  # how DMS writes a DATETIME column
    event = parse(envelope("sales", "insert", row))
    assert isinstance(event, dict) and event["event_time"] == "2024-03-01T10:15:42.123Z"
    promo = parse(envelope("promotions", "insert", {**PROMOTION_ROW, "starts_at": "2024-03-04 00:00:00"}))
    assert isinstance(promo, dict) and promo["starts_at"] == "2024-03-04T00:00:00.000Z"


def test_an_update_of_a_sale_is_a_correction_by_the_quantity_delta() -> None:
    record = envelope("sales", "update", {**SALE_ROW, "quantity": 5}, **{"before-image": {**SALE_ROW, "quantity": 3}})
    event = parse(record)
    assert isinstance(event, dict), event
    assert event["quantity"] == 2.0 and event["source_operation"] == "update"
    assert event["event_id"].startswith("88231:update:2024-03-01T10:15:43.401Z:")  # not the insert's key
    assert event["event_time"] == "2024-03-01T10:15:43.401Z"


def test_a_return_correction_can_go_negative() -> None:
    record = envelope("sales", "update", {**SALE_ROW, "quantity": 1}, **{"before-image": {"id": 88231, "quantity": 3}})
    event = parse(record)
    assert isinstance(event, dict) and event["quantity"] == -2.0


@pytest.mark.parametrize("before", [None, {"id": 88231}])  # no before image; ColumnFilter pk-only
def test_an_update_of_a_sale_without_the_before_quantity_is_rejected(before: dict | None) -> None:
    extra = {} if before is None else {"before-image": before}
    rejection = parse(envelope("sales", "update", {**SALE_ROW, "quantity": 5}, **extra))
    assert isinstance(rejection, Rejection)
    assert rejection.error_code == "dms_update_without_before_image" and "BeforeImageSettings" in rejection.error


def test_an_update_of_a_product_is_its_new_state() -> None:
    event = parse(envelope("products", "update", {**PRODUCT_ROW, "category": "plant-based"}))
    assert isinstance(event, dict) and event["category"] == "plant-based" and event["status"] == "active"


def test_a_deleted_sale_is_reversed() -> None:
    event = parse(envelope("sales", "delete", SALE_ROW))
    assert isinstance(event, dict), event
    assert event["quantity"] == -3.0 and event["event_id"] == "88231:delete" and event["source_operation"] == "delete"


def test_a_deleted_product_is_discontinued() -> None:
    event = parse(envelope("products", "delete", PRODUCT_ROW))
    assert isinstance(event, dict) and event["status"] == "discontinued"


def test_a_deleted_promotion_ends() -> None:
    event = parse(envelope("promotions", "delete", PROMOTION_ROW))
    assert isinstance(event, dict) and event["action"] == "end"


@pytest.mark.parametrize(
    ("record", "code", "mentions"),
    [
        (envelope("sales", "create-table", {}), "dms_control_record", "create-table"),
        (envelope("sales", "drop-table", {}), "dms_control_record", "sales"),
        (envelope("customers", "insert", {"id": 1}), "unknown_dms_table", "customers"),
        (envelope("sales", "insert", {**SALE_ROW, "id": None}), "missing_field", "id"),
        (envelope("sales", "insert", {**SALE_ROW, "id": [1, 2]}), "bad_type", "id"),
        (envelope("sales", "insert", {**SALE_ROW, "quantity": "3"}), "bad_type", "sale.quantity"),
        (envelope("sales", "delete", {**SALE_ROW, "quantity": 10**400}), "bad_number", "quantity"),
        (envelope("sales", "truncate", SALE_ROW), "bad_dms_envelope", "operation"),
        ({"data": [], "metadata": {"record-type": "data", "table-name": "sales"}}, "bad_dms_envelope", "data"),
        ({"data": {}, "metadata": {"record-type": "row"}}, "bad_dms_envelope", "record-type"),
        (
            {**envelope("sales", "insert", SALE_ROW), "metadata": {"record-type": "data", "table-name": "sales"}},
            "bad_timestamp",
            "metadata.timestamp",
        ),
    ],
)
def test_each_dms_rejection(record: dict, code: str, mentions: str) -> None:
    rejection = parse(record)
    assert isinstance(rejection, Rejection), rejection
    assert (rejection.error_code, mentions in rejection.error) == (code, True), rejection.error


@pytest.mark.parametrize(
    "record",
    [
        envelope("sales", "insert", SALE_ROW),
        envelope("sales", "update", SALE_ROW, **{"before-image": SALE_ROW}),
        envelope("products", "delete", PRODUCT_ROW),
        envelope("promotions", "load", PROMOTION_ROW),
        envelope("sales", "create-table", {}),
    ],
)
def test_the_envelope_schema_accepts_realistic_records(record: dict) -> None:
    ENVELOPE.validate(record)
    assert is_dms_envelope(record)


def test_a_direct_event_is_not_an_envelope() -> None:
    assert not is_dms_envelope({"event_type": "sale", "data": {}})
    assert not is_dms_envelope([{"metadata": {}, "data": {}}])


# --- properties -------------------------------------------------------------------------------------
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
METADATA = st.fixed_dictionaries(
    {},
    optional={
        "timestamp": st.sampled_from(["2024-03-01T10:15:43.401825Z", "2024-03-01 10:15:43", ""]) | JSON_VALUES,
        "record-type": st.sampled_from(["data", "control", "DATA"]) | JSON_VALUES,
        "operation": st.sampled_from(["load", "insert", "update", "delete", "create-table", "rename"]) | JSON_VALUES,
        "table-name": st.sampled_from(["sales", "products", "promotions", "items", "Sales"]) | JSON_VALUES,
        "partition-key-type": st.just("schema-table"),
        "schema-name": st.text(max_size=5),
        "transaction-id": st.integers() | st.text(max_size=5),
    },
)
ROW_VALUES = {
    "id": st.integers() | st.text(max_size=5) | JSON_VALUES,
    "quantity": st.integers() | st.floats() | st.sampled_from([10**400, True, "2"]) | JSON_VALUES,
    **{
        name: st.just(value) | JSON_VALUES
        for name, value in {**SALE_ROW, **PRODUCT_ROW, **PROMOTION_ROW}.items()
        if name not in ("id", "quantity")
    },
}
ROWS = st.fixed_dictionaries({}, optional=ROW_VALUES) | st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4)


@FAST
@given(data=ROWS | JSON_VALUES, metadata=METADATA, before=st.none() | ROWS | JSON_VALUES)
def test_any_envelope_gives_an_event_or_a_rejection(data: Any, metadata: dict, before: Any) -> None:
    record: dict[str, Any] = {"data": data, "metadata": metadata}
    if before is not None:
        record["before-image"] = before
    try:
        decode_dms(record)
    except EventError as exc:
        assert exc.code and str(exc)
    result = parse_record(json.dumps(record).encode())
    assert isinstance(result, dict | Rejection)
    if isinstance(result, Rejection):
        assert result.error_code and result.error


@FAST
@given(
    table=st.sampled_from(["sales", "products", "promotions"]),
    operation=st.sampled_from(["load", "insert", "update", "delete"]),
    quantity=st.integers(-1000, 1000),
    before=st.integers(-1000, 1000),
)
def test_realistic_records_follow_the_envelope_schema_and_decode(
    table: str, operation: str, quantity: int, before: int
) -> None:
    row = {"sales": {**SALE_ROW, "quantity": quantity}, "products": PRODUCT_ROW, "promotions": PROMOTION_ROW}[table]
    record = envelope(table, operation, row, **{"before-image": {**row, "quantity": before}})
    ENVELOPE.validate(record)
    event = parse(record)
    assert isinstance(event, dict), event
    if table == "sales":
        expected = {"load": quantity, "insert": quantity, "update": quantity - before, "delete": -quantity}[operation]
        assert event["quantity"] == expected


def test_two_updates_of_a_row_in_one_millisecond_are_two_changes_and_a_redelivery_is_one() -> None:
    first = envelope("sales", "update", {**SALE_ROW, "quantity": 5}, **{"before-image": {**SALE_ROW, "quantity": 3}})
    second = envelope("sales", "update", {**SALE_ROW, "quantity": 6}, **{"before-image": {**SALE_ROW, "quantity": 5}})
    ids = [parse(r)["event_id"] for r in (first, second, first)]
    assert ids[0] != ids[1] and ids[2] == ids[0]
    # With transaction details the log position decides, even for changes of identical content.
    positioned = [
        {**first, "metadata": {**first["metadata"], "transaction-id": 77, "transaction-record-id": n}} for n in (1, 2)
    ]
    assert parse(positioned[0])["event_id"] != parse(positioned[1])["event_id"]
