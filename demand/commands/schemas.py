"""`demand schemas export`: the contracts as files people and tools read (JSON Schema, Glue columns, Athena DDL).

Everything is derived from streaming/contracts.py; the copy checked in under schemas/ is compared with
`schema_files()` by tests/unit/test_contracts.py, so it cannot drift.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from demand.settings import ResourceNames
from streaming.contracts import DMS_ENVELOPE_SCHEMA
from streaming.layout import LANDINGS

# The landing layout partitions every table by event time (streaming/layout.py).
PARTITIONS = ("year", "month", "day", "hour")
DEFAULT_PREFIX = "demand"


def _json(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def schema_files(names: ResourceNames) -> dict[str, str]:
    """Relative path -> file text for every exported artefact, for the resource names of one deployment."""
    files: dict[str, str] = {}
    files["json/dms-envelope.schema.json"] = _json(DMS_ENVELOPE_SCHEMA)
    for landing in LANDINGS.values():
        contract = landing.contract
        files[f"json/{contract.name}.schema.json"] = _json(contract.json_schema())
        files[f"glue/{landing.prefix}.columns.json"] = _json(contract.glue_columns())
        location = f"s3://{names.bucket(landing.bucket_role)}/{landing.prefix}/"
        ddl = contract.athena_ddl(names.glue_database, landing.prefix, location, PARTITIONS)
        files[f"athena/{landing.prefix}.sql"] = ddl + ";\n"
    return dict(sorted(files.items()))


def export_command(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Directory to write json/, glue/ and athena/ into (created)."),
    check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 if a file in OUT differs."),
    as_json: bool = typer.Option(False, "--json", help="Print the written (or stale) paths as JSON."),
) -> None:
    """Write the JSON Schema of each contract, the Glue column lists and the Athena DDL into OUT."""
    settings = ctx.obj
    names = settings.names if settings is not None else ResourceNames(DEFAULT_PREFIX)
    files = schema_files(names)
    stale = [rel for rel, text in files.items() if not (out / rel).is_file() or (out / rel).read_text() != text]
    if not check:
        for rel in stale:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_text(files[rel])
    if as_json:
        typer.echo(json.dumps({"out": str(out), "files": len(files), "changed": stale, "check": check}))
    else:
        table = Table(title=f"schemas in {out}")
        table.add_column("file")
        table.add_column("status")
        for rel in files:
            table.add_row(rel, ("stale" if check else "written") if rel in stale else "up to date")
        Console().print(table)
    if check and stale:
        raise typer.Exit(1)


schemas_app = typer.Typer(help="The data contracts as JSON Schema, Glue columns and Athena DDL.", no_args_is_help=True)
schemas_app.command("export")(export_command)


def register(app: typer.Typer) -> None:
    app.add_typer(schemas_app, name="schemas")
