"""`demand flink run`: the outlier split job on the local Flink mini-cluster (the same job as on AWS)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from demand import output
from flink_jobs.outlier_split import JobConfig

app = typer.Typer(help="The PyFlink outlier split job.", no_args_is_help=True)


@app.command("run")
def run_command(
    ctx: typer.Context,
    input_path: Path = typer.Option(
        ..., "--input", help="A JSON-lines file of events, or a directory of them.", exists=True
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output directory: clean/, outliers/, rejected/, reference/, counts.json."
    ),
    parallelism: int = typer.Option(1, "--parallelism", min=1, max=64, help="Flink parallelism."),
    checkpoint_dir: Path = typer.Option(
        None, "--checkpoint-dir", help="Where checkpoints are kept (retained on cancel)."
    ),
    restore_from: str = typer.Option(None, "--restore-from", help="Start from this retained checkpoint (chk-N dir)."),
    follow: bool = typer.Option(
        False, "--follow", help="Keep watching the input directory for new files (Ctrl+C stops)."
    ),
    batch_records: int = typer.Option(
        JobConfig.batch_records,
        "--batch-records",
        min=1,
        help="Lines per batch handed to Python (per item bucket), at most.",
    ),
    batch_ms: int = typer.Option(
        JobConfig.batch_ms,
        "--batch-ms",
        min=1,
        help="A batch goes to Python this many ms after its first line, at the latest.",
    ),
    batch_bytes: int = typer.Option(
        JobConfig.batch_bytes,
        "--batch-bytes",
        min=1,
        help="Bytes of lines per batch handed to Python (per item bucket), at most (one larger line goes alone).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON instead of a table."),
) -> None:
    """Split events into clean sales, outliers, rejected records and reference events; print the counts."""
    from flink_jobs.outlier_split import run_local

    # PyFlink's Python workers start `python` from PATH: make it this interpreter.
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    config = JobConfig(
        outlier=ctx.obj.outlier,  # the detector's thresholds: DEMAND_OUTLIER__<NAME> or .env
        parallelism=parallelism,
        checkpoint_dir=str(checkpoint_dir or out / "_checkpoints"),
        restore_from=restore_from,
        batch_records=batch_records,
        batch_ms=batch_ms,
        batch_bytes=batch_bytes,
    )
    console = Console(stderr=True)
    with console.status(f"running the outlier split on {input_path}", spinner="dots"):
        try:
            counts = run_local(input_path, out, config, follow=follow)
        except FileNotFoundError as exc:
            raise typer.BadParameter(str(exc), param_hint="--input") from None
    ok = counts["accounted"] == counts["input"]
    if as_json:
        typer.echo(json.dumps({**counts, "out": str(out), "balanced": ok}))
    else:
        table = Table(title=f"outlier split: {input_path} -> {out}")
        table.add_column("output")
        table.add_column("records", justify="right")
        for name, value in counts.items():
            table.add_row(name, f"{value:,}")
        output.stdout().print(table)
    if not ok and not follow:  # a stopped --follow run counts only what its last checkpoint committed
        console.print(f"[red]counts do not add up: {counts['accounted']} accounted for, {counts['input']} input lines")
        raise typer.Exit(1)
