"""The data contracts between stages, defined once.

Each contract is a list of typed fields. JSON Schema (validation), the Spark schema (Glue jobs), the
PyFlink row type (outlier split), the pyarrow schema (landing parquet), the Glue/Firehose column list and
the Athena DDL are all derived from it; tests/unit/test_contracts.py proves they agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

SCHEMA_VERSION = 1

# The range of the table types, so JSON Schema rejects what Parquet/Spark cannot hold (1e999, 2**64).
DOUBLE_MAX = 1.7976931348623157e308
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1

# Logical type -> (JSON Schema type, Glue/Hive/Athena type).
_LOGICAL_TYPES: dict[str, tuple[str, str]] = {
    "string": ("string", "string"),
    "timestamp": ("string", "timestamp"),  # ISO-8601 UTC on the wire, a timestamp in tables
    "double": ("number", "double"),
    "long": ("integer", "bigint"),
    "boolean": ("boolean", "boolean"),
}


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool = True
    doc: str = ""
    enum: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None  # searched like JSON Schema's "pattern" (anchor it with ^...$)

    def __post_init__(self) -> None:
        if self.type not in _LOGICAL_TYPES:
            raise ValueError(f"field {self.name}: unknown logical type {self.type!r}")

    @property
    def bounds(self) -> tuple[float | int | None, float | int | None]:
        """(minimum, maximum) including the range of the column type, for numbers; (None, None) otherwise."""
        if self.type == "double":
            low, high = -DOUBLE_MAX, DOUBLE_MAX
        elif self.type == "long":
            low, high = LONG_MIN, LONG_MAX
        else:
            return None, None
        return (
            low if self.minimum is None else max(low, self.minimum),
            high if self.maximum is None else min(high, self.maximum),
        )


@dataclass(frozen=True)
class Contract:
    """A named, versioned record layout."""

    name: str
    fields: tuple[Field, ...]
    doc: str = ""
    version: int = SCHEMA_VERSION
    const: dict[str, Any] = field(default_factory=dict)  # fields with one fixed value (event_type)

    @cached_property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    @cached_property
    def _by_name(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}

    @property
    def required(self) -> list[str]:
        return [f.name for f in self.fields if f.required]

    def field(self, name: str) -> Field:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.name} has no field {name!r}") from None

    def extend(self, name: str, extra: tuple[Field, ...], doc: str = "") -> Contract:
        """This contract plus more fields (an outlier is a sale plus why); constants are kept."""
        return Contract(name=name, fields=self.fields + extra, doc=doc, version=self.version, const=dict(self.const))

    # --- derived representations -------------------------------------------------------------
    def json_schema(self) -> dict[str, Any]:
        props: dict[str, Any] = {}
        for f in self.fields:
            json_type = _LOGICAL_TYPES[f.type][0]
            prop: dict[str, Any] = {"type": json_type if f.required else [json_type, "null"]}
            if f.doc:
                prop["description"] = f.doc
            if f.type == "timestamp":
                prop["format"] = "date-time"
            if f.enum:
                prop["enum"] = list(f.enum) + ([] if f.required else [None])
            low, high = f.bounds
            if low is not None:
                prop["minimum"] = low
            if high is not None:
                prop["maximum"] = high
            if f.min_length is not None:
                prop["minLength"] = f.min_length
            if f.max_length is not None:
                prop["maxLength"] = f.max_length
            if f.pattern is not None:
                prop["pattern"] = f.pattern
            if f.name in self.const:
                prop["const"] = self.const[f.name]
            props[f.name] = prop
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"urn:demand:{self.name}:v{self.version}",
            "title": self.name,
            "description": self.doc,
            "type": "object",
            "properties": props,
            "required": self.required,
            "additionalProperties": False,
        }

    def glue_columns(self) -> list[dict[str, str]]:
        """Column list for a Glue table (and so Firehose's parquet conversion and Athena)."""
        return [{"Name": f.name, "Type": _LOGICAL_TYPES[f.type][1], "Comment": f.doc[:255]} for f in self.fields]

    def athena_ddl(self, database: str, table: str, location: str, partitions: tuple[str, ...] = ()) -> str:
        cols = ",\n".join(f"  `{c['Name']}` {c['Type']}" for c in self.glue_columns())
        part = ""
        if partitions:
            part = "\nPARTITIONED BY (" + ", ".join(f"`{p}` string" for p in partitions) + ")"
        return (
            f"CREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{table}` (\n{cols}\n){part}\n"
            f"STORED AS PARQUET\nLOCATION '{location}'"
        )

    def spark_schema(self) -> Any:
        from pyspark.sql import types as T

        spark_types = {
            "string": T.StringType(),
            "timestamp": T.TimestampType(),
            "double": T.DoubleType(),
            "long": T.LongType(),
            "boolean": T.BooleanType(),
        }
        return T.StructType([T.StructField(f.name, spark_types[f.type], not f.required) for f in self.fields])

    def arrow_schema(self) -> Any:
        import pyarrow as pa

        arrow_types = {
            "string": pa.string(),
            "timestamp": pa.timestamp("ms", tz="UTC"),
            "double": pa.float64(),
            "long": pa.int64(),
            "boolean": pa.bool_(),
        }
        return pa.schema([pa.field(f.name, arrow_types[f.type], nullable=not f.required) for f in self.fields])

    def flink_row_type(self) -> Any:
        """PyFlink RowTypeInfo. Timestamps travel as ISO strings inside the Python operators."""
        from pyflink.common import Types

        flink_types = {
            "string": Types.STRING(),
            "timestamp": Types.STRING(),
            "double": Types.DOUBLE(),
            "long": Types.LONG(),
            "boolean": Types.BOOLEAN(),
        }
        return Types.ROW_NAMED(self.names, [flink_types[f.type] for f in self.fields])


# --- the events ---------------------------------------------------------------------------------
CHANNELS = ("web", "store", "app", "marketplace")
EVENT_TYPES = ("sale", "product", "campaign")

_ENVELOPE = (
    Field("event_type", "string", doc="sale | product | campaign", enum=EVENT_TYPES),
    Field("schema_version", "long", doc="contract version", minimum=1, maximum=SCHEMA_VERSION),
    Field("event_id", "string", doc="unique id, the idempotency key", min_length=1, max_length=128),
    Field("event_time", "timestamp", doc="when it happened, ISO-8601 UTC"),
)

SALE = Contract(
    "sale",
    _ENVELOPE
    + (
        Field("store_id", "string", max_length=64),
        Field("item_id", "string", max_length=64),
        Field("quantity", "double", doc="units sold; negative = return"),
        Field("unit_price", "double", doc="price per unit in currency", minimum=0),
        Field("currency", "string", doc="ISO-4217 code", max_length=3, pattern="^[A-Z]{3}$"),
        Field("channel", "string", enum=CHANNELS),
        Field("customer_id", "string", required=False, max_length=64),
        Field("order_id", "string", required=False, max_length=64),
        Field("promotion_id", "string", required=False, max_length=64),
        Field(
            "source_operation",
            "string",
            required=False,
            doc="direct, or the DMS operation it was decoded from",
            enum=("direct", "load", "insert", "update", "delete"),
        ),
    ),
    doc="One sale (or return) line.",
    const={"event_type": "sale"},
)

PRODUCT = Contract(
    "product",
    _ENVELOPE
    + (
        Field("item_id", "string", max_length=64),
        Field("name", "string", required=False),
        Field("category", "string"),
        Field("brand", "string", required=False),
        Field("list_price", "double", required=False, minimum=0),
        Field("status", "string", doc="active | discontinued", enum=("active", "discontinued")),
    ),
    doc="Item metadata update.",
    const={"event_type": "product"},
)

CAMPAIGN = Contract(
    "campaign",
    _ENVELOPE
    + (
        Field("promotion_id", "string", max_length=64),
        Field("item_id", "string", max_length=64),
        Field("store_id", "string", required=False, doc="null = every store", max_length=64),
        Field("action", "string", doc="start | end", enum=("start", "end")),
        Field("discount_pct", "double", doc="fraction off the list price, 0..1", minimum=0, maximum=1),
        Field("starts_at", "timestamp"),
        Field("ends_at", "timestamp"),
    ),
    doc="Promotion start or end for one item (and optionally one store). ends_at must be after starts_at "
    "(checked by streaming.events.validate_event; JSON Schema cannot compare two fields).",
    const={"event_type": "campaign"},
)

EVENTS: dict[str, Contract] = {"sale": SALE, "product": PRODUCT, "campaign": CAMPAIGN}

# Why a sale is an outlier: the closed list of reason codes, with the sentence an analyst reads first.
OUTLIER_CODES: dict[str, str] = {
    "quantity_spike": "far beyond the item's recent lines and daily demand, and not this customer's habit",
    "customer_spike": "far beyond what this customer usually buys of the item (a typo?)",
    "price_deviation": "unit price far from the item's price for that quantity",
    "zero_price": "price 0: a sample, a gift or a write-off, not demand",
    "stock_writeoff": "stock out at price 0 without an order: a write-off, not a return",
    "price_limit": "unit price above the configured ceiling",
    "return_quantity": "a return far beyond the item's recent lines",
    "cancellation_exceeds_order": "cancels more than the order has left",
}

OUTLIER = SALE.extend(
    "outlier",
    (
        Field("outlier_score", "double", doc="severity 0-100: how far beyond its references", minimum=0, maximum=100),
        Field("outlier_code", "string", doc="reason code (OUTLIER_CODES)", enum=tuple(OUTLIER_CODES)),
        Field("outlier_reason", "string", doc="readable reason"),
        Field("detector", "string", doc="detector name"),
        Field("detector_version", "string"),
        Field("baseline_quantity", "double", required=False, doc="expected quantity it was compared with"),
        Field("baseline_price", "double", required=False, doc="usual unit price it was compared with"),
        Field("baseline_count", "long", required=False, doc="observations behind the baseline"),
        Field(
            "demand_units",
            "double",
            required=False,
            minimum=0,
            doc="units of the line that still count as demand (the dataset build adds them to the target): a "
            "spike's usual line (baseline_quantity), a price deviation's every unit, 0 for the rest",
        ),
    ),
    doc="A sale judged anomalous, with why.",
)

REJECTED = Contract(
    "rejected",
    (
        Field("raw", "string", doc="the record as received (base64 when raw_encoding is base64)"),
        Field("raw_encoding", "string", enum=("utf-8", "base64")),
        Field("error_code", "string", doc="machine-readable error code"),
        Field("error", "string", doc="what was wrong: field, value, expectation"),
        Field("source", "string", doc="stream or file it came from"),
        Field("shard_id", "string", required=False),
        Field("sequence_number", "string", required=False),
        Field("rejected_at", "timestamp"),
    ),
    doc="A record that could not become an event, with the reason.",
    version=1,
)

ENRICHED = Contract(
    "enriched_forecast",
    (
        Field("run_id", "string", doc="forecast run that produced the row"),
        Field("run_started_at", "timestamp"),
        Field("frequency", "string", enum=("D", "W")),
        Field("item_id", "string"),
        Field("location", "string", required=False, doc="store, when series are per item and store"),
        Field("forecast_date", "timestamp", doc="start of the forecast period"),
        Field("p10", "double", doc="10% quantile of demand"),
        Field("p50", "double", doc="median demand"),
        Field("p90", "double", doc="90% quantile of demand"),
        Field("mean", "double", required=False),
        Field("category", "string"),
        Field("brand", "string"),
        Field("last_demand", "double", required=False, doc="demand of the last period before the forecast"),
        Field("recent_demand", "double", required=False, doc="mean demand over the recent periods"),
        Field("recent_periods", "long", doc="periods behind recent_demand"),
        Field("outlier_count", "long", doc="outliers of the item in the run window"),
        Field("outlier_top_code", "string", required=False, doc="its most frequent outlier reason code"),
        Field("predictor_id", "string", doc="the predictor that forecast (the champion after the gate)"),
        Field("backend", "string", doc="statsforecast | amazon-forecast"),
        Field("avg_wql", "double", required=False, doc="predictor's backtest average weighted quantile loss"),
        Field("wape", "double", required=False, doc="predictor's backtest WAPE"),
        *(
            Field(f"driver_{name}", "double", required=False, doc=f"{text}: factor on 1 + demand (1 = no effect)")
            for name, text in (
                ("recent_demand", "what recent demand (lags, rolling means) does to the global model's median"),
                ("seasonality", "what the calendar (week, month, weekday) does"),
                ("price", "what the price (and its ratio to the usual price) does"),
                ("promotion", "what a promotion and its discount do"),
                ("holiday", "what a holiday does"),
                ("item_and_store", "what the item's category, brand and store do"),
            )
        ),
        Field("ensemble", "string", required=False, doc="the ensemble's models and weights, model:weight;..."),
    ),
    doc="Forecast quantiles joined with item metadata, recent actuals, outliers, drivers and the producing run.",
)

# Coherent totals (forecast_orchestrator/reconcile.py): the levels, top to bottom, and the reconciliation methods.
HIERARCHY_LEVELS = ("total", "category", "store", "item", "item_store")
RECONCILIATION_METHODS = ("bottom_up", "ols", "wls_struct", "wls_var", "mint_shrink")

COHERENT = Contract(
    "coherent_forecast",
    (
        Field("run_id", "string", doc="forecast run that produced the row"),
        Field("run_started_at", "timestamp"),
        Field("frequency", "string", enum=("D", "W")),
        Field("level", "string", enum=HIERARCHY_LEVELS, doc="the level of the hierarchy the row forecasts"),
        Field("item_id", "string", required=False, doc="the item (levels item and item_store)"),
        Field("location", "string", required=False, doc="the store (levels store and item_store)"),
        Field("category", "string", required=False, doc="the category (levels category, item and item_store)"),
        Field("forecast_date", "timestamp", doc="start of the forecast period"),
        Field("p10", "double", doc="10% quantile of the level's demand"),
        Field("p50", "double", doc="median demand"),
        Field("p90", "double", doc="90% quantile of demand"),
        Field("mean", "double", doc="expected demand: the level's is the sum of the levels below it"),
        Field("base_p50", "double", doc="the level's own median before reconciliation"),
        Field("method", "string", enum=RECONCILIATION_METHODS, doc="reconciliation chosen by backtest"),
        Field("backtest_wape", "double", required=False, doc="the level's backtest WAPE after reconciliation"),
        Field("base_backtest_wape", "double", required=False, doc="its backtest WAPE before reconciliation"),
        Field("predictor_id", "string", doc="the predictor of the bottom level's forecasts"),
    ),
    doc="Forecasts of the company, categories, stores, items and items at stores whose expected demand adds up.",
)

# Demand anomalies (glue_jobs/demand_anomalies.py): a period's demand of a series of any level out of its band. The
# levels are the hierarchy's and the sales channels (web, store, ...), judged beside it.
ANOMALY_DIRECTIONS = ("spike", "drop")
ANOMALY_LEVELS = (*HIERARCHY_LEVELS, "channel")

DEMAND_ANOMALY = Contract(
    "demand_anomaly",
    (
        Field("anomaly_id", "string", doc="stable across runs: the series, the direction and the first period flagged"),
        Field("run_id", "string", doc="the forecast-input build the detection ran on (its prefix)"),
        Field("detected_at", "timestamp"),
        Field("frequency", "string", enum=("D", "W")),
        Field("level", "string", enum=ANOMALY_LEVELS, doc="the level of the series: total, category, store, item, ..."),
        Field("series", "string", doc="the series: level=key (category=Beverages, item_store=I1|s1, total)"),
        Field("item_id", "string", required=False, doc="the item (levels item and item_store)"),
        Field("location", "string", required=False, doc="the store (levels store and item_store)"),
        Field("category", "string", required=False, doc="the category (levels category, item and item_store)"),
        Field("channel", "string", required=False, doc="the sales channel (level channel)"),
        Field("direction", "string", enum=ANOMALY_DIRECTIONS, doc="spike (above the band) or drop (below it)"),
        Field("start_date", "timestamp", doc="first period of the anomaly"),
        Field("end_date", "timestamp", doc="last period of the anomaly that is itself off its expected demand"),
        Field("peak_date", "timestamp", doc="the period the anomaly scored highest"),
        Field("periods", "long", doc="how many periods the strongest score summed (1 = one period alone)"),
        Field("actual", "double", doc="demand at the peak"),
        Field("expected", "double", doc="expected demand at the peak (seasonal baseline of the series' own past)"),
        Field("lower", "double", doc="the band's lower edge at the peak"),
        Field("upper", "double", doc="the band's upper edge at the peak"),
        Field("excess_units", "double", doc="demand minus expected over the anomaly's periods (negative for a drop)"),
        Field("score", "double", doc="signed normal quantile of the tail probability (threshold 4)"),
        Field("severity", "long", minimum=0, maximum=100, doc="0-100, 50 at the threshold"),
        Field("contributors", "string", required=False, doc="the series below that moved it most, with shares"),
        Field("suppressed_by", "string", required=False, doc="the feedback that marked this pattern as expected"),
    ),
    doc="Periods whose demand left its expected band, per series of every level, with severity and contributors.",
)

# AWS DMS writes this envelope to a Kinesis target (MessageFormat json):
# https://docs.aws.amazon.com/dms/latest/userguide/CHAP_Target.Kinesis.html
DMS_ENVELOPE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:demand:dms-envelope",
    "type": "object",
    "required": ["data", "metadata"],
    "properties": {
        "data": {"type": "object"},
        "before-image": {"type": "object"},
        "metadata": {
            "type": "object",
            "required": ["timestamp", "record-type", "operation", "table-name"],
            "properties": {
                "timestamp": {"type": "string"},
                "record-type": {"enum": ["data", "control"]},
                "operation": {
                    "enum": [
                        "load",
                        "insert",
                        "update",
                        "delete",
                        "create-table",
                        "drop-table",
                        "rename-table",
                        "add-column",
                        "drop-column",
                        "rename-column",
                        "column-type-change",
                    ]
                },
                "partition-key-type": {"type": "string"},
                "schema-name": {"type": "string"},
                "table-name": {"type": "string"},
                "transaction-id": {"type": ["integer", "string"]},
            },
        },
    },
}
