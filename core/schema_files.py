"""The contracts as files people and tools read: JSON Schema, Glue column lists and Athena DDL per landed table.

Everything is derived from core/contracts.py and core/tables.py; the copy checked in under schemas/ is compared
with `schema_files()` by tests/unit/test_contracts.py (and `make generate-check`), so it cannot drift.
"""

from __future__ import annotations

import json

from core.contracts import DMS_ENVELOPE_SCHEMA
from core.settings import ResourceNames
from core.tables import LANDED

DEFAULT_PREFIX = "demand"  # the names the checked-in copy is written for


def _json(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def schema_files(names: ResourceNames) -> dict[str, str]:
    """Relative path -> file text for every exported artefact, for the resource names of one deployment."""
    files: dict[str, str] = {}
    files["json/dms-envelope.schema.json"] = _json(DMS_ENVELOPE_SCHEMA)
    for table in LANDED.values():
        contract = table.contract
        files[f"json/{contract.name}.schema.json"] = _json(contract.json_schema())
        files[f"glue/{table.name}.columns.json"] = _json(contract.glue_columns())
        location = f"s3://{names.bucket(table.bucket_role)}/{table.prefix}/"
        ddl = contract.athena_ddl(names.glue_database, table.name, location, table.partitions)
        files[f"athena/{table.name}.sql"] = ddl + ";\n"
    return dict(sorted(files.items()))
