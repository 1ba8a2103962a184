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
    png: Path | None = typer.Option(None, "--png", help="Also write each chart as a PNG into this directory."),
    chromium: str | None = typer.Option(None, "--chromium", help="Chromium to draw the PNGs (default: on the PATH)."),
) -> None:
    """Write the latest run's charts and tables (history with the p10-p90 band and outliers, accuracy by model and
    backtest window, outliers and demand anomalies over time) to one HTML file that opens offline, and optionally
    each chart as a PNG."""
    from api.report import PngError, build_report, write_pngs
    from query.engine import QueryError

    try:
        html, figures = build_report(ctx.obj)
    except QueryError as exc:
        typer.echo(f"cannot build the report: {exc}", err=True)
        raise typer.Exit(1) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html)
    if png is not None:
        try:
            written = write_pngs(html, png, chromium)
        except PngError as exc:
            typer.echo(f"report written to {out}, but no PNG: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"{len(written)} charts written to {png}", err=as_json)
    if as_json:
        typer.echo(json.dumps(figures, default=str))
    else:
        latest = figures["latest_run"]
        typer.echo(f"report of run {latest['run_id'] if latest else '(none)'} written to {out}")
