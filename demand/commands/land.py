"""`demand land`: the local Firehose stand-in, from the outlier split's output folder to parquet."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from core.object_store import object_store
from demand import output
from streaming.landing import deliver

app = typer.Typer()


@app.command("land")
def land(
    ctx: typer.Context,
    split_output: Path = typer.Argument(..., help="Output folder of `demand flink run` (clean/, outliers/, ...)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Land the split's clean sales, outliers, rejected and reference events as parquet in the staged,
    analysis and rejected buckets (the tables' month partitions, an object per table and month per batch of part
    files). Only part files not landed before are read: safe to re-run, nothing is landed twice."""
    if not split_output.is_dir():
        raise typer.BadParameter(f"{split_output} is not a folder", param_hint="SPLIT_OUTPUT")
    settings = ctx.obj
    with Console(stderr=True).status("landing parquet...") as line:
        summary = deliver(split_output, object_store(settings), settings.names.buckets,
                          progress=lambda done, total: line.update(f"landing: {done}/{total} part files"))  # fmt: skip
    if as_json:
        typer.echo(json.dumps(summary.as_dict()))
        return
    title = f"landed {summary.files_read} part files as {summary.objects_written} parquet objects"
    table = Table(title=title + f" ({summary.files_already_landed} landed before)")
    table.add_column("landing")
    table.add_column("rows", justify="right")
    for name, rows in sorted(summary.rows.items()):
        table.add_row(name, str(rows))
    output.stdout().print(table)
