"""`demand stream read`: read a Kinesis stream back from the start and count what is in it."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from demand import output
from streaming.stream_reader import iter_stream, stream_counts

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
    sink = None
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        sink = out.open("wb")

    def written(records):  # one record at a time: a million records are not held in memory
        for n, record in enumerate(records, 1):
            if sink is not None:
                sink.write(record.data + b"\n")
            if n % 10_000 == 0:
                line.update(f"reading {stream}: {n:,} records")
            yield record

    try:
        with Console(stderr=True).status(f"reading {stream}...") as line:
            counts = {"stream": stream, **stream_counts(written(iter_stream(settings, stream)))}
    finally:
        if sink is not None:
            sink.close()
    if out:
        counts["out"] = str(out)
    if as_json:
        typer.echo(json.dumps(counts))
        return
    table = Table(title=f"stream {stream}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("records", "distinct_event_ids", "duplicates", "undecodable", "shards"):
        table.add_row(key, f"{counts[key]:,}")
    output.stdout().print(table)
