"""`demand push FILE`: send a JSON-lines file of events (or DMS envelopes) to the sales-events stream."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from demand import output
from streaming.producer import PushError, push_file


def _count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


app = typer.Typer()


@app.command("push")
def push_command(
    ctx: typer.Context,
    file: Path = typer.Argument(
        ..., help="JSON-lines file: one event or DMS CDC envelope a line.", exists=True, dir_okay=False
    ),
    stream: str = typer.Option(None, help="Kinesis stream (default: <prefix>-sales-events)."),
    rate: float = typer.Option(None, "--rate", help="Rate limit in events/s (default: as fast as allowed).", min=0.1),
    rejected: Path = typer.Option(None, help="Rejected-records file (default: <FILE stem>.rejected.jsonl)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Validate and send events to Kinesis in PutRecords batches; invalid lines go to the rejected file.

    Exit code 0 when every record was sent or rejected with a reason, 1 on a fatal error.
    Endpoint: --endpoint-url / AWS_ENDPOINT_URL, else the local stack (runtime local), else AWS.
    """
    settings = ctx.obj
    err = Console(stderr=True)
    show = not quiet and not as_json and sys.stderr.isatty()
    try:
        if show:
            with Progress(
                TextColumn("pushing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
            ) as bar:
                task = bar.add_task("push", total=_count_lines(file))
                summary = push_file(
                    file,
                    settings,
                    stream=stream,
                    rate_limit=rate,
                    rejected_path=rejected,
                    progress=lambda n: bar.update(task, completed=n),
                )
        else:
            summary = push_file(file, settings, stream=stream, rate_limit=rate, rejected_path=rejected)
    except PushError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    result = summary.as_dict()
    if as_json:
        typer.echo(json.dumps(result))
    else:
        table = Table(title=f"{file} -> {summary.stream}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key in ("read", "sent", "retried", "rejected", "batches", "seconds", "events_per_s"):
            table.add_row(key, f"{result[key]:,}")
        for code, n in result["rejected_by_code"].items():
            table.add_row(f"rejected: {code}", f"{n:,}")
        output.stdout().print(table)
        if summary.rejected:
            output.stdout().print(f"rejected records: {summary.rejected_path}")
    if not summary.complete:
        raise typer.Exit(1)
