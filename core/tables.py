"""Every table the pipeline writes and people query, defined once: name, contract, bucket, key prefix, partitions.

Landing (Firehose on AWS, streaming/landing.py locally), the Glue build's reads, the local Glue catalog file, the
DuckDB views, the Athena DDL and the infrastructure templates all derive from `TABLES`.

Landed tables are partitioned by month of the record's time field, `<prefix>/year=YYYY/month=MM/<file>` (Firehose
dynamic partitioning on that field, Athena partition projection over the same keys), so a re-delivered record
lands in the same partition and a year of a table is a dozen partitions (files of a size engines like, not one per
event hour). The local
stand-in for the Glue Data Catalog is a JSON file, `<data_root>/glue-catalog.json`, holding the same table
definitions (name, columns, partition keys, location) that the jobs register on AWS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

from core.contracts import CAMPAIGN, COHERENT, DEMAND_ANOMALY, ENRICHED, OUTLIER, PRODUCT, REJECTED, SALE, Contract
from core.object_store import object_store
from core.settings import Settings

CATALOG_FILE = "glue-catalog.json"
TIME_PARTITIONS = ("year", "month")
# Athena partition projection per time key: type, range, digits. Years from 2000: real history (the UCI data set is
# 2009-2011) must be visible too.
PROJECTION = {"year": ("integer", "2000,2099", 4), "month": ("integer", "1,12", 2)}


@dataclass(frozen=True)
class Table:
    name: str  # Glue / Athena table name
    contract: Contract
    bucket_role: str
    prefix: str  # key prefix inside the bucket
    partitions: tuple[str, ...]
    time_field: str | None = None  # landed tables: the field whose time partitions them

    def partition(self, ts: date) -> str:
        """Key prefix of the time partition holding `ts`, a date or datetime (landed tables)."""
        return f"{self.prefix}/year={ts.year:04d}/month={ts.month:02d}/"

    @property
    def firehose_prefix(self) -> str:
        """The same layout in Firehose dynamic-partitioning syntax (keys extracted from the time field by JQ)."""
        keys = "/".join(f"{k}=!{{partitionKeyFromQuery:{k}}}" for k in self.partitions)
        return f"{self.prefix}/{keys}/"

    @property
    def firehose_jq(self) -> str:
        """Firehose's MetadataExtractionQuery: the partition keys from the wire-format time field."""
        cuts = {"year": "0:4", "month": "5:7"}
        return "{" + ", ".join(f"{k}: .{self.time_field}[{cuts[k]}]" for k in self.partitions) + "}"

    def projection(self) -> dict[str, str]:
        """Athena partition projection parameters of the table's time keys (without the location template)."""
        out = {"projection.enabled": "true"}
        for key in self.partitions:
            kind, span, digits = PROJECTION[key]
            out |= {
                f"projection.{key}.type": kind,
                f"projection.{key}.range": span,
                f"projection.{key}.digits": str(digits),
            }
        return out

    def location_template(self, bucket: str) -> str:
        """Athena's storage.location.template: `bucket` as the template language writes it (a Ref or a name)."""
        keys = "/".join(f"{k}=${{{k}}}" for k in self.partitions)
        return f"s3://{bucket}/{self.prefix}/{keys}/"

    def location(self, settings: Settings) -> str:
        return object_store(settings).uri(settings.names.bucket(self.bucket_role), self.prefix + "/")

    def glue_definition(self, settings: Settings) -> dict:
        """A Glue CreateTable TableInput (what the jobs register; the local catalog file holds the same)."""
        return {
            "Name": self.name,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet"},
            "PartitionKeys": [{"Name": p, "Type": "string"} for p in self.partitions],
            "StorageDescriptor": {
                "Columns": self.contract.glue_columns(),
                "Location": self.location(settings),
                "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
            },
        }

    def athena_ddl(self, settings: Settings) -> str:
        return self.contract.athena_ddl(
            settings.names.glue_database, self.name, self.location(settings), self.partitions
        )


SALES = Table("sales", SALE, "staged", "sales", TIME_PARTITIONS, "event_time")
OUTLIERS = Table("outliers", OUTLIER, "analysis", "outliers", TIME_PARTITIONS, "event_time")
REJECTED_RECORDS = Table("rejected", REJECTED, "rejected", "rejected", TIME_PARTITIONS, "rejected_at")
PRODUCTS = Table("products", PRODUCT, "staged", "products", TIME_PARTITIONS, "event_time")
CAMPAIGNS = Table("campaigns", CAMPAIGN, "staged", "campaigns", TIME_PARTITIONS, "event_time")
# Written by glue_jobs/enrich_forecast.py: one folder per run, `forecasts/run_date=YYYY-MM-DD/run=<run_id>/`.
ENRICHED_FORECASTS = Table("enriched_forecasts", ENRICHED, "enriched", "forecasts", ("run_date", "run"))
# The same job, the same layout: `coherent/run_date=YYYY-MM-DD/run=<run_id>/` (runs with coherent totals).
COHERENT_FORECASTS = Table("coherent_forecasts", COHERENT, "enriched", "coherent", ("run_date", "run"))
# Written by glue_jobs/detect_demand_anomalies.py: one folder per forecast-input build it ran on.
DEMAND_ANOMALIES = Table("demand_anomalies", DEMAND_ANOMALY, "analysis", "demand-anomalies", ("run_date", "run"))

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        SALES,
        OUTLIERS,
        REJECTED_RECORDS,
        PRODUCTS,
        CAMPAIGNS,
        ENRICHED_FORECASTS,
        COHERENT_FORECASTS,
        DEMAND_ANOMALIES,
    )  # fmt: skip
}
LANDED: dict[str, Table] = {name: t for name, t in TABLES.items() if t.time_field}


def write_local_catalog(settings: Settings) -> dict:
    """Write the local Glue catalog file from the table definitions; returns its content."""
    catalog = {
        "database": settings.names.glue_database,
        "tables": {name: t.glue_definition(settings) for name, t in sorted(TABLES.items())},
    }
    path = settings.data_root / CATALOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(catalog, indent=2))
    return catalog
