"""`demand forecast run|watch|definition`: the forecast workflow, locally through the same states."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from demand import output
from forecast_orchestrator.handlers import Runtime
from forecast_orchestrator.state_machine import asl_json
from forecast_orchestrator.workflow import manifests, run_forecast, watch

app = typer.Typer(help="Train, gate and run forecasts (the Step Functions workflow, locally).")


def _print_run(status: str, run: dict, as_json: bool) -> None:
    summary = run.get("summary") or {}
    if as_json:
        out = {"status": status, "run_id": run.get("run_id"), **summary, "enriched": run.get("enriched")}
        typer.echo(json.dumps(out, default=str))
        return
    table = Table(title=f"forecast run {run.get('run_id')}: {status}")
    table.add_column("field")
    table.add_column("value")
    gate = run.get("gate") or {}
    rows = {
        "manifest": run.get("manifest_key"),
        "backend": run.get("backend"),
        "duplicate trigger": str(run.get("duplicate", False)),
        "challenger promoted": str(gate.get("promoted")),
        "forecast predictor": run.get("forecast_predictor"),
        "export": (run.get("export") or {}).get("prefix"),
        "enriched rows": (run.get("enriched") or {}).get("rows"),
        "error": json.dumps(run.get("error")) if run.get("error") else None,
    }
    for key, value in (run.get("accuracy") or {}).items():
        rows[key] = f"{value:.4f}" if isinstance(value, float) else str(value)
    for key, value in rows.items():
        if value is not None:
            table.add_row(key, str(value))
    output.stdout().print(table)


@app.command("run")
def run(
    ctx: typer.Context,
    manifest: str = typer.Option(None, help="Manifest key in the forecast-input bucket (default: the newest)."),
    enrich: bool = typer.Option(
        True, help="Then run enrich_forecast on the export (on AWS the export's S3 event starts it)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
) -> None:
    """Run the workflow for one dataset build: import, train, accuracy gate, forecast, export, notify, then
    enrichment. Needs the AWS APIs (DynamoDB, SNS): start them with `demand local up` or set AWS_ENDPOINT_URL."""
    settings = ctx.obj
    runtime = Runtime.build(settings)
    if manifest is None:
        found = manifests(runtime)
        if not found:
            typer.secho(
                "error: no manifest.json in the forecast-input bucket; run `demand glue run "
                "build-forecast-inputs` first",
                err=True,
                fg="red",
            )
            raise typer.Exit(1)
        manifest = found[-1]
    console = Console(stderr=True)
    with console.status("starting") as status_line:
        state = ["starting"]

        def show_state(name: str) -> None:
            state[0] = name
            status_line.update(name)

        def show_progress(p: dict) -> None:
            eta = f", about {p['eta_s']:.0f} s left" if p.get("eta_s") is not None else ""
            done = f"{p['series_done']:,}/{p['series_total']:,} series"
            status_line.update(f"{state[0]}: {p['phase']}: {done}, {p['elapsed_s']:.0f} s{eta}")

        if hasattr(runtime.backend, "on_progress"):
            runtime.backend.on_progress = show_progress
        status, result = run_forecast(settings, manifest, runtime, on_state=show_state)
    if status == "SUCCEEDED" and enrich and not result.get("duplicate"):
        from glue_jobs.enrich_forecast import publish_run
        from glue_jobs.runtime import spark_session

        with console.status("enriching forecasts on local Spark"):
            spark, _ = spark_session("enrich_forecast")
            result["enriched"] = publish_run(spark, settings, result["export_manifest"]["key"])
    _print_run(status, result, as_json)
    raise typer.Exit(0 if status == "SUCCEEDED" else 1)


@app.command("import")
def import_cmd(
    ctx: typer.Context,
    target: Path = typer.Option(..., help="Target time series CSV: item_id,[location,]timestamp,demand."),
    related: Path = typer.Option(
        ...,
        help="Related time series CSV: item_id,[location,]timestamp and price, promotion_flag, discount, "
        "holiday_flag (missing ones: 1, 0, 0, 0), through the horizon.",
    ),
    metadata: Path = typer.Option(None, help="Item metadata CSV: item_id[,category,brand]."),
    frequency: str = typer.Option(None, help="D or W (default from settings)."),
    horizon: int = typer.Option(None, min=1, help="Forecast horizon in periods (default from settings)."),
    run_after: bool = typer.Option(True, "--run/--no-run", help="Then run the forecast workflow on it."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Bring your own datasets (the Amazon Forecast RETAIL layout): check them against Forecast's rules (errors name
    the file, row and column), write them and the manifest to the forecast-input bucket, then run the workflow."""
    from core.object_store import object_store
    from forecast_orchestrator.dataset_import import DatasetImportError, check, write

    settings = ctx.obj
    frequency = (frequency or settings.frequency).upper()
    if frequency not in ("D", "W"):
        raise typer.BadParameter("must be D or W", param_hint="--frequency")
    horizon = horizon or settings.horizon
    try:
        frames = check(target, related, metadata, frequency, horizon)
    except DatasetImportError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        raise typer.Exit(1) from None
    imported = write(object_store(settings), settings.names.bucket("forecast-input"), frames, frequency, horizon,
                     settings.prefix)  # fmt: skip
    result: dict = {"manifest_key": imported.manifest_key, "series": imported.series}
    if run_after:
        runtime = Runtime.build(settings)
        with Console(stderr=True).status("running the forecast workflow") as line:
            status, run = run_forecast(settings, imported.manifest_key, runtime, on_state=line.update)
        result |= {"status": status, "run_id": run.get("run_id"), "export": (run.get("export") or {}).get("prefix")}
    if as_json:
        typer.echo(json.dumps(result, default=str))
    else:
        for key, value in result.items():
            typer.echo(f"{key}: {value}")
    if result.get("status", "SUCCEEDED") != "SUCCEEDED":
        raise typer.Exit(1)


@app.command("watch")
def watch_cmd(
    ctx: typer.Context,
    interval: float = typer.Option(10.0, min=0.1, help="Seconds between polls of the forecast-input bucket."),
    max_polls: int = typer.Option(None, help="Stop after this many polls (default: run until interrupted)."),
) -> None:
    """Watch the forecast-input bucket and run the workflow for every new manifest (the local stand-in for
    S3 event -> EventBridge -> Step Functions). A manifest already run is skipped by its idempotency key."""
    for key, status in watch(ctx.obj, interval, max_polls):
        typer.echo(f"manifest={key} status={status}")


@app.command("definition")
def definition_cmd(
    out: Path = typer.Option(None, help="Write the Amazon States Language JSON here instead of stdout."),
) -> None:
    """Print the state machine definition (Amazon States Language) that Step Functions runs."""
    if out:
        out.write_text(asl_json())
    else:
        typer.echo(asl_json(), nl=False)
