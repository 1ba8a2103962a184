"""`demand stream read`: read a Kinesis stream back from the start and count what is in it."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from streaming.stream_reader import read_stream, stream_counts

app = typer.Typer(help="Inspect Kinesis streams.")


@app.command("read")
def read_command(
    ctx: typer.Context,
    stream: str = typer.Option(None, help="Kinesis stream (default: <prefix>-sales-events)."),
    out: Path = typer.Option(None, help="Also write the records' data, one a line, to this JSON-lines file."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
) -> None:
    """Read every shard from TRIM_HORIZON until caught up; print records, distinct event_ids, duplicates."""
    settings = ctx.obj
    stream = stream or settings.names.sales_events_stream
    with Console(stderr=True).status(f"reading {stream}..."):
        records = read_stream(settings, stream)
    counts = {"stream": stream, **stream_counts(records)}
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("wb") as fh:
            fh.writelines(r.data + b"\n" for r in records)
        counts["out"] = str(out)
    if as_json:
        typer.echo(json.dumps(counts))
        return
    table = Table(title=f"stream {stream}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("records", "distinct_event_ids", "duplicates", "undecodable", "shards"):
        table.add_row(key, f"{counts[key]:,}")
    Console().print(table)
