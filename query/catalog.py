"""The tables people query: one definition each, from the contracts and the landing layout.

The same list gives the Glue/Athena DDL (AWS) and the DuckDB views over the same parquet (local). The
local stand-in for the Glue Data Catalog is a JSON file, `<data_root>/glue-catalog.json`, holding the
same table definitions (name, columns, partition keys, location) that the jobs register on AWS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from demand.object_store import object_store
from demand.settings import Settings
from streaming.contracts import ENRICHED, Contract
from streaming.layout import LANDINGS

CATALOG_FILE = "glue-catalog.json"
HOURLY = ("year", "month", "day", "hour")


@dataclass(frozen=True)
class Table:
    name: str
    contract: Contract
    bucket_role: str
    prefix: str
    partitions: tuple[str, ...]

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


TABLES: dict[str, Table] = {
    landing.prefix: Table(landing.prefix, landing.contract, landing.bucket_role, landing.prefix, HOURLY)
    for landing in LANDINGS.values()
}
# Written by glue_jobs/enrich_forecast.py: one folder per run, `forecasts/run_date=YYYY-MM-DD/run=<run_id>/`.
ENRICHED_TABLE = Table("enriched_forecasts", ENRICHED, "enriched", "forecasts", ("run_date", "run"))
TABLES[ENRICHED_TABLE.name] = ENRICHED_TABLE


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
