"""`demand schemas export`: the contracts as JSON Schema, Glue columns and Athena DDL (core/schema_files.py)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from core.schema_files import DEFAULT_PREFIX, schema_files
from core.settings import ResourceNames
from demand import output

app = typer.Typer(help="The data contracts as JSON Schema, Glue columns and Athena DDL.", no_args_is_help=True)


@app.command("export")
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
        output.stdout().print(table)
    if check and stale:
        raise typer.Exit(1)
