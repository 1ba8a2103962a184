"""`demand anomalies ...`: detect the demand anomalies of a forecast-input build on local Spark (the Glue job's
code), list the latest detection's, mark one as expected, and list the alerts sent."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from alerts.delivery import record_feedback, sent_alerts
from alerts.rules import SEVERITY_MARGIN
from api.queries import QueryLayer
from core.contracts import ANOMALY_DIRECTIONS, ANOMALY_LEVELS, DEMAND_ANOMALY
from demand import output
from glue_jobs.detect_demand_anomalies import DetectError, run
from glue_jobs.runtime import spark_session
from query.engine import QueryError

app = typer.Typer(help="Demand anomalies of every level: detect, list, mark as expected, alerts.", no_args_is_help=True)


def _fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg="red")
    raise typer.Exit(1)


def _query(ask: Callable[..., Any], *args: Any) -> Any:
    """A query layer call; a query that cannot run is an error message and exit 1, not a traceback."""
    try:
        return ask(*args)
    except QueryError as exc:
        _fail(str(exc))


@app.command("detect")
def detect(
    ctx: typer.Context,
    manifest: str = typer.Option(
        None,
        "--manifest",
        help="Forecast-input manifest key (datasets/D/<end>-<digest>/manifest.json); default: the newest build's.",
    ),
    lookback: int = typer.Option(
        None,
        "--lookback",
        min=1,
        help="Periods back whose anomalies are reported (default from settings, else 28 days or 8 weeks).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Detect a build's demand anomalies of every level and send their alerts (the Glue job, on local Spark).

    The anomalies go to the demand_anomalies table (replacing the build's earlier detection); each new alert goes
    once to every sink. Exit 1 when there is no build or the alert rules do not parse."""
    settings = ctx.obj
    with Console(stderr=True).status("detecting demand anomalies on local Spark..."):
        spark, _ = spark_session("detect_demand_anomalies")
        try:
            summary = run(spark, settings, manifest, lookback)
        except DetectError as exc:
            _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(summary))
        return
    table = Table()
    for column in ("level", "anomalies"):
        table.add_column(column)
    for level in ANOMALY_LEVELS:
        table.add_row(level, str(summary["by_level"].get(level, 0)))
    table.add_row("all", str(summary["anomalies"]), style="bold")
    console = output.stdout()
    console.print(f"demand anomalies of build {summary['run_id']} ending on or after {summary['since']}")
    console.print(table)
    console.print(
        f"{summary['suppressed']} suppressed by feedback; {summary['alerts']} alerts: {summary['alerts_sent']} sent, "
        f"{summary['alerts_already_sent']} already sent"
    )
    console.print(f"written to {summary['location']}", soft_wrap=True)
    for failure in summary["failures"]:
        typer.secho(f"alert not delivered (sent again next run): {failure}", err=True, fg="yellow")


@app.command("list")
def list_anomalies(
    ctx: typer.Context,
    level: str = typer.Option(None, "--level", help=f"Only this level: one of {', '.join(ANOMALY_LEVELS)}."),
    min_severity: int = typer.Option(
        0, "--min-severity", min=0, max=100, help="The least severity (50: the threshold)."
    ),
    direction: str = typer.Option(None, "--direction", help="Only spike or drop."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many anomalies."),
    fmt: str = typer.Option("table", "--format", help="table, csv or json."),
) -> None:
    """The latest detection's anomalies, most severe first, with the anomaly_id that `feedback` takes."""
    if level is not None and level not in ANOMALY_LEVELS:
        raise typer.BadParameter(f"must be one of {', '.join(ANOMALY_LEVELS)}", param_hint="--level")
    if direction is not None and direction not in ANOMALY_DIRECTIONS:
        raise typer.BadParameter(f"must be one of {', '.join(ANOMALY_DIRECTIONS)}", param_hint="--direction")
    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter("must be table, csv or json", param_hint="--format")
    rows = _query(QueryLayer(ctx.obj).anomalies, level, min_severity, direction, limit)
    if fmt == "json":
        typer.echo(json.dumps({"rows": rows}, indent=2, default=str))
        return
    if fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=DEMAND_ANOMALY.names)
        writer.writeheader()
        writer.writerows(rows)
        return
    if not rows:
        typer.echo("no anomaly of the latest detection matches (none before `demand anomalies detect` runs)", err=True)
        return
    table = Table(title=f"demand anomalies of build {rows[0]['run_id']}, most severe first")
    for column in ("severity", "direction", "level", "series", "start..end", "actual", "expected", "excess_units",
                   "contributors", "suppressed"):  # fmt: skip
        table.add_column(column)
    table.add_column("anomaly_id", no_wrap=True)  # whole, to copy into `feedback`
    for row in rows:
        span = f"{row['start_date'][:10]}..{row['end_date'][:10]}"
        table.add_row(str(row["severity"]), row["direction"], row["level"], row["series"], span, f"{row['actual']:.0f}",
                      f"{row['expected']:.1f}", f"{row['excess_units']:+.0f}", row["contributors"] or "",
                      "yes" if row["suppressed_by"] else "", row["anomaly_id"])  # fmt: skip
    output.stdout().print(table)


@app.command("feedback")
def feedback(
    ctx: typer.Context,
    anomaly_id: str = typer.Argument(..., help="An anomaly_id of `demand anomalies list`."),
    note: str = typer.Option("", "--note", help="Why it was expected (a school's yearly order, a closure)."),
    as_json: bool = typer.Option(False, "--json", help="Print the stored feedback as JSON."),
) -> None:
    """Mark an anomaly of the latest detection as expected, so that its pattern alerts no more.

    From the next detection on, the anomalies of the same series and direction, up to a little more severe, carry
    `suppressed_by` and alert no more. Exit 1 when the latest detection has no anomaly of that id."""
    settings = ctx.obj
    found = _query(QueryLayer(settings).anomaly, anomaly_id)
    if found is None:
        _fail(f"no anomaly {anomaly_id!r} in the latest detection: `demand anomalies list` shows their ids")
    entry = record_feedback(settings, found, note)
    if as_json:
        typer.echo(json.dumps(entry))
        return
    ceiling = min(100, entry["severity"] + SEVERITY_MARGIN)
    console = output.stdout()
    console.print(f"marked {entry['direction']} {entry['anomaly_id']} in {entry['series']} (severity "
                  f"{entry['severity']}) as expected" + (f": {note}" if note else ""), soft_wrap=True)  # fmt: skip
    console.print(f"from the next `demand anomalies detect` on, {entry['direction']}s in {entry['series']} up to "
                  f"severity {ceiling} are suppressed by it and no longer alert", soft_wrap=True)  # fmt: skip


@app.command("alerts")
def alerts(
    ctx: typer.Context,
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many alerts, the newest first."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """The alerts sent so far (demand anomalies and outlier rates), newest first, with the sinks that took them."""
    if fmt not in ("table", "json"):
        raise typer.BadParameter("must be table or json", param_hint="--format")
    sent = sent_alerts(ctx.obj)[:limit]
    if fmt == "json":
        typer.echo(json.dumps({"alerts": sent}, indent=2))
        return
    if not sent:
        typer.echo("no alert sent yet", err=True)
        return
    table = Table(title="alerts sent, newest first")
    for column in ("rule", "severity", "subject", "message", "sinks", "updated_at"):
        table.add_column(column)
    for state in sent:
        alert = state["alert"]
        table.add_row(alert["rule"], str(alert["severity"]), alert["subject"], alert["message"],
                      ", ".join(state["sinks"]), state["updated_at"])  # fmt: skip
    output.stdout().print(table)
