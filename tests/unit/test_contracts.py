"""Every derived form of a contract (JSON Schema, Spark, Arrow, Flink, Glue, Athena DDL) says the same thing."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
import sqlglot
from jsonschema import Draft202012Validator
from pyflink.common import Types
from pyspark.sql import types as T
from sqlglot import exp
from typer.testing import CliRunner

from core.contracts import CAMPAIGN, DMS_ENVELOPE_SCHEMA, EVENTS, OUTLIER, PRODUCT, REJECTED, SALE, Contract
from core.schema_files import DEFAULT_PREFIX, schema_files
from core.settings import ResourceNames
from demand.cli import app

CONTRACTS = [SALE, PRODUCT, CAMPAIGN, OUTLIER, REJECTED]
ids = [c.name for c in CONTRACTS]

# What each Glue column type must be in every other runtime.
GLUE_TO_SPARK = {
    "string": T.StringType(),
    "timestamp": T.TimestampType(),
    "double": T.DoubleType(),
    "bigint": T.LongType(),
    "boolean": T.BooleanType(),
}
GLUE_TO_ARROW = {
    "string": pa.string(),
    "timestamp": pa.timestamp("ms", tz="UTC"),
    "double": pa.float64(),
    "bigint": pa.int64(),
    "boolean": pa.bool_(),
}
GLUE_TO_JSON = {
    "string": "string",
    "timestamp": "string",
    "double": "number",
    "bigint": "integer",
    "boolean": "boolean",
}
# Inside the Python Flink operators timestamps travel as ISO strings (see Contract.flink_row_type).
GLUE_TO_FLINK = {
    "string": Types.STRING(),
    "timestamp": Types.STRING(),
    "double": Types.DOUBLE(),
    "bigint": Types.LONG(),
    "boolean": Types.BOOLEAN(),
}


def _glue(contract: Contract) -> list[tuple[str, str]]:
    return [(c["Name"], c["Type"]) for c in contract.glue_columns()]


@pytest.mark.parametrize("contract", CONTRACTS, ids=ids)
def test_json_schema_lists_the_fields_with_their_types(contract: Contract) -> None:
    schema = contract.json_schema()
    Draft202012Validator.check_schema(schema)
    assert list(schema["properties"]) == contract.names
    assert schema["required"] == contract.required
    assert schema["additionalProperties"] is False
    for (name, glue_type), f in zip(_glue(contract), contract.fields, strict=True):
        declared = schema["properties"][name]["type"]
        expected = GLUE_TO_JSON[glue_type]
        assert declared == (expected if f.required else [expected, "null"]), name
        assert ("format" in schema["properties"][name]) == (glue_type == "timestamp"), name


@pytest.mark.parametrize("contract", CONTRACTS, ids=ids)
def test_spark_schema_matches_the_glue_columns(contract: Contract) -> None:
    spark = contract.spark_schema()
    assert [(f.name, f.dataType) for f in spark.fields] == [(n, GLUE_TO_SPARK[t]) for n, t in _glue(contract)]
    assert [f.nullable for f in spark.fields] == [not f.required for f in contract.fields]


@pytest.mark.parametrize("contract", CONTRACTS, ids=ids)
def test_arrow_schema_matches_the_glue_columns(contract: Contract) -> None:
    arrow = contract.arrow_schema()
    assert [(f.name, f.type) for f in arrow] == [(n, GLUE_TO_ARROW[t]) for n, t in _glue(contract)]
    assert [f.nullable for f in arrow] == [not f.required for f in contract.fields]


@pytest.mark.parametrize("contract", CONTRACTS, ids=ids)
def test_flink_row_type_has_the_fields_in_order(contract: Contract) -> None:
    row = contract.flink_row_type()
    assert row.get_field_names() == contract.names
    assert row.get_field_types() == [GLUE_TO_FLINK[t] for _, t in _glue(contract)]


@pytest.mark.parametrize("dialect", ["athena", "hive"])
@pytest.mark.parametrize("contract", CONTRACTS, ids=ids)
def test_athena_ddl_parses_and_lists_the_glue_columns(contract: Contract, dialect: str) -> None:
    ddl = contract.athena_ddl("demand", contract.name, f"s3://bucket/{contract.name}/", partitions=("dt",))
    create = sqlglot.parse_one(ddl, read=dialect)
    assert isinstance(create, exp.Create)
    assert create.this.this.name == contract.name
    columns = [(c.name, c.args["kind"]) for c in create.this.expressions if isinstance(c, exp.ColumnDef)]
    assert columns == [(n, exp.DataType.build(t, dialect=dialect)) for n, t in _glue(contract)]
    partitioned = create.find(exp.PartitionedByProperty)
    assert partitioned is not None and [c.name for c in partitioned.find_all(exp.ColumnDef)] == ["dt"]


def test_outlier_is_a_sale_plus_why() -> None:
    assert OUTLIER.fields[: len(SALE.fields)] == SALE.fields
    extra = OUTLIER.names[len(SALE.names) :]
    assert {"outlier_score", "outlier_code", "outlier_reason", "detector", "detector_version"} <= set(extra)
    assert not set(extra) & set(SALE.names)
    assert OUTLIER.json_schema()["properties"]["event_type"]["const"] == "sale"


def test_every_event_schema_pins_its_event_type() -> None:
    for name, contract in EVENTS.items():
        assert contract.json_schema()["properties"]["event_type"]["const"] == name
        assert len(set(contract.names)) == len(contract.names)


def test_dms_envelope_schema_is_valid() -> None:
    Draft202012Validator.check_schema(DMS_ENVELOPE_SCHEMA)


def test_glue_comments_fit_the_glue_limit() -> None:
    for contract in CONTRACTS:
        assert all(len(c["Comment"]) <= 255 for c in contract.glue_columns())


# --- the exported copy under schemas/ ----------------------------------------------------------------
REPO = Path(__file__).resolve().parents[2]


def test_checked_in_schemas_are_what_the_contracts_derive() -> None:
    files = schema_files(ResourceNames(DEFAULT_PREFIX))
    on_disk = {
        p.relative_to(REPO / "schemas").as_posix(): p.read_text() for p in (REPO / "schemas").rglob("*") if p.is_file()
    }
    on_disk.pop("README.md", None)
    stale = sorted(rel for rel in files.keys() | on_disk.keys() if files.get(rel) != on_disk.get(rel))
    assert not stale, f"run `demand schemas export --out schemas`; stale: {stale}"


def test_exported_ddl_parses_and_exported_json_schemas_are_valid() -> None:
    for rel, text in schema_files(ResourceNames(DEFAULT_PREFIX)).items():
        if rel.endswith(".sql"):
            assert isinstance(sqlglot.parse_one(text, read="athena"), exp.Create), rel
        elif rel.startswith("json/"):
            Draft202012Validator.check_schema(json.loads(text))


def test_export_command_writes_then_checks(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "schemas"
    written = runner.invoke(app, ["schemas", "export", "--out", str(out), "--json"])
    assert written.exit_code == 0, written.output
    assert len(json.loads(written.output)["changed"]) == len(list(out.rglob("*.*")))
    assert runner.invoke(app, ["schemas", "export", "--out", str(out), "--check"]).exit_code == 0
    (out / "athena" / "sales.sql").write_text("-- edited by hand\n")
    stale = runner.invoke(app, ["schemas", "export", "--out", str(out), "--check", "--json"])
    assert stale.exit_code == 1 and json.loads(stale.output)["changed"] == ["athena/sales.sql"]
    assert runner.invoke(app, ["schemas", "export", "--help"]).exit_code == 0
