"""`demand glue run ...`: the Glue jobs on local PySpark, the same code Glue 5.0 runs."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from demand import output
from glue_jobs.build_forecast_inputs import DatasetError, build, request_from_args
from glue_jobs.enrich_forecast import EnrichError, latest_export_manifest, publish_run
from glue_jobs.runtime import spark_session

app = typer.Typer(help="Run the Glue PySpark jobs locally.", no_args_is_help=True)
run_app = typer.Typer(help="Run one Glue job.", no_args_is_help=True)
app.add_typer(run_app, name="run")


@run_app.command("build-forecast-inputs")
def build_forecast_inputs(
    ctx: typer.Context,
    window_end: str = typer.Option(
        None, help="End of the run window, exclusive; a Monday for W (default: start of the current period)."
    ),
    window_start: str = typer.Option(None, help="Start of the run window (default: two years before the end)."),
    frequency: str = typer.Option(None, help="D or W (default from settings: W)."),
    horizon: int = typer.Option(None, help="Forecast horizon in periods (default from settings: 8)."),
    country: str = typer.Option(
        None,
        help="Holiday calendar for holiday_flag: a country (GB) or country-subdivision (GB-SCT) "
        "(default from settings: DE).",
    ),
    with_location: bool = typer.Option(False, help="Series per item and store (location) instead of per item."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Build the target, related and item-metadata datasets (Amazon Forecast RETAIL layout) from staged data."""
    settings = ctx.obj
    args = {
        "window_end": window_end or "",
        "window_start": window_start or "",
        "frequency": frequency or "",
        "horizon": str(horizon or ""),
        "country": country or "",
        "with_location": str(with_location).lower(),
    }
    try:
        request = request_from_args(args, settings)
    except DatasetError as exc:
        raise typer.BadParameter(str(exc)) from None
    with Console(stderr=True).status("building forecast datasets on local Spark..."):
        spark, _ = spark_session("build_forecast_inputs")
        try:
            manifest = build(spark, settings, request)
        except DatasetError as exc:
            typer.secho(f"error: {exc}", err=True, fg="red")
            raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(manifest))
        return
    window = f"{manifest['window_start']}..{manifest['window_end']} ({manifest['frequency']})"
    table = Table(title=f"forecast datasets {window}")
    for col in ("dataset", "type", "rows", "path"):
        table.add_column(col)
    for name, entry in manifest["datasets"].items():
        table.add_row(name, entry["dataset_type"], str(entry["rows"]), entry["path"])
    output.stdout().print(table)


@run_app.command("enrich-forecast")
def enrich_forecast(
    ctx: typer.Context,
    export_key: str = typer.Option(
        None, help="Export manifest (exports/<run_id>/manifest.json or s3://...); default: the newest run's."
    ),
    recent_periods: int = typer.Option(8, min=1, help="Periods of actual demand summarised beside the forecast."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Join a forecast export with item metadata, recent actuals, outliers and the run's accuracy; write the
    enriched_forecasts table (parquet per run) and register it in the (local) Glue catalog."""
    settings = ctx.obj
    if export_key is None:
        export_key = latest_export_manifest(settings)
        if export_key is None:
            typer.secho(
                "error: no exports/<run>/manifest.json yet; run `demand forecast run` first", err=True, fg="red"
            )
            raise typer.Exit(1)
    with Console(stderr=True).status("enriching forecasts on local Spark..."):
        spark, _ = spark_session("enrich_forecast")
        try:
            result = publish_run(spark, settings, export_key, recent_periods)
        except EnrichError as exc:
            typer.secho(f"error: {exc}", err=True, fg="red")
            raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(result))
    else:
        output.stdout().print(
            f"enriched {result['rows']} forecast rows of run {result['run_id']} -> {result['location']}"
        )
