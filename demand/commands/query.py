"""`demand query`: Athena SQL, on AWS through Athena, locally the same text in DuckDB."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from core.aws import client
from demand import output
from query.engine import QueryError, run_athena, run_local
from query.named_queries import NAMED

app = typer.Typer()


@app.command("query")
def query(
    ctx: typer.Context,
    sql: str = typer.Argument(None, help="Athena SQL (Trino dialect). Tables: <prefix>.sales, .outliers, ..."),
    file: Path = typer.Option(None, "--file", "-f", help="Read the SQL from this file instead."),
    named: str = typer.Option(
        None, "--named", help="Run a shipped named query or view by name; `--named list` lists them."
    ),
    fmt: str = typer.Option("table", "--format", help="table, csv or json."),
    athena: bool = typer.Option(
        None, "--athena/--local", help="Run in Athena or DuckDB (default: Athena when runtime is aws)."
    ),
    limit_rows: int = typer.Option(200, "--max-rows", help="Rows shown in table format (csv/json: all)."),
) -> None:
    """Run a query. Locally it is transpiled from Athena's dialect to DuckDB with sqlglot and runs over the
    same parquet; a construct DuckDB cannot run fails with a message naming it (exit code 1)."""
    settings = ctx.obj
    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter("must be table, csv or json", param_hint="--format")
    if named == "list":
        for q in NAMED.values():
            typer.echo(f"{q.name:24} {q.description}")
        return
    if sum(x is not None for x in (sql, file, named)) != 1:
        raise typer.BadParameter("give the SQL as an argument, with --file or with --named (one of them)")
    if named is not None and named not in NAMED:
        raise typer.BadParameter(f"no named query {named!r}; `--named list` shows them", param_hint="--named")
    text = NAMED[named].text(settings.names.glue_database) if named else (file.read_text() if file else sql)
    use_athena = athena if athena is not None else settings.runtime == "aws"
    try:
        if use_athena:
            result = run_athena(text, settings, client("athena", settings), settings.names.athena_workgroup)
        else:
            result = run_local(text, settings)
    except QueryError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        raise typer.Exit(1) from None
    footer = f"{len(result.rows)} rows, {result.elapsed_ms:.0f} ms, {result.engine}"
    if result.scanned_bytes is not None:
        footer += f", {result.scanned_bytes:,} bytes scanned"
    if fmt == "json":
        typer.echo(json.dumps(result.records(), default=str))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(result.rows)
    else:
        table = Table(caption=footer)
        for col in result.columns:
            table.add_column(col)
        for row in result.rows[:limit_rows]:
            table.add_row(*["" if v is None else str(v) for v in row])
        output.stdout().print(table)
        return
    Console(stderr=True).print(footer)
