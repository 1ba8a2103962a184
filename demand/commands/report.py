"""`demand report`: the latest run summarised in one static HTML file."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer()


@app.command("report")
def report(
    ctx: typer.Context,
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="HTML file to write."),
    as_json: bool = typer.Option(False, "--json", help="Also print the figures as JSON on stdout."),
) -> None:
    """Write accuracy by run, the widest forecasts and outliers by reason code of the latest run to HTML."""
    from api.report import build_report
    from query.engine import QueryError

    try:
        html, figures = build_report(ctx.obj)
    except QueryError as exc:
        typer.echo(f"cannot build the report: {exc}", err=True)
        raise typer.Exit(1) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html)
    if as_json:
        typer.echo(json.dumps(figures, default=str))
    else:
        latest = figures["latest_run"]
        typer.echo(f"report of run {latest['run_id'] if latest else '(none)'} written to {out}")
