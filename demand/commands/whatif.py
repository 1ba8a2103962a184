"""`demand whatif` and `demand drivers`: scenarios scored on, and the drivers of, the latest run's global model."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.table import Table

from demand import output

app = typer.Typer()

SUMMARY = ["item_id", "location", "baseline_units", "scenario_units", "units_change", "baseline_revenue",
           "scenario_revenue", "implied_elasticity", "uses_related"]  # fmt: skip
PERIODS = ["item_id", "location", "date", "baseline_p50", "scenario_p50", "baseline_price", "scenario_price",
           "promotion", "discount"]  # fmt: skip


def _answer(settings, run_id: str | None, answer: Callable[[Any], dict]) -> dict:
    """answer(the run's scenario model) for the run (default: the latest enriched one); exit 1 with the reason when
    there is no run, no model or no answer."""
    from api.queries import QueryLayer
    from core.object_store import object_store
    from forecast_orchestrator.whatif import WhatIfError, load_model

    run = run_id or QueryLayer(settings).latest_run()
    try:
        if run is None:
            raise WhatIfError("no forecast yet: run the forecast workflow and the enrichment first")
        return answer(load_model(object_store(settings), settings.names.bucket("forecast-export"), run))
    except WhatIfError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        raise typer.Exit(1) from None


def _scenario(scenario_file: Path | None, change: dict, items: list[str]):
    from forecast_orchestrator.whatif import Scenario

    given = {k: v for k, v in change.items() if v is not None and v != []}
    if scenario_file is not None and given:
        raise typer.BadParameter("give a --scenario file or change options (--price-factor, ...), not both")
    try:
        if scenario_file is not None:
            return Scenario.model_validate_json(scenario_file.read_text())
        return Scenario(changes=[given], items=items or None)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'scenario'}: {e['msg']}" for e in exc.errors())
        raise typer.BadParameter(problems) from None


@app.command("whatif")
def whatif(
    ctx: typer.Context,
    item: list[str] = typer.Option([], "--item", help="Item to change (repeat; default: every item)."),
    category: list[str] = typer.Option([], "--category", help="Category to change (repeat)."),
    location: list[str] = typer.Option([], "--location", help="Store to change, for per-store series (repeat)."),
    start: datetime = typer.Option(None, "--from", formats=["%Y-%m-%d"], help="First period changed (default: all)."),
    end: datetime = typer.Option(None, "--to", formats=["%Y-%m-%d"], help="Last period changed, inclusive."),
    price_factor: float = typer.Option(None, "--price-factor", help="Regular price x this (0.9 = 10 % cut)."),
    price: float = typer.Option(None, "--price", help="Regular price = this value."),
    promotion: bool = typer.Option(None, "--promotion/--no-promotion", help="Promotion on (with --discount) or off."),
    discount: float = typer.Option(None, "--discount", help="Share off the regular price on promotion (0.2)."),
    answer: list[str] = typer.Option([], "--answer", help="Items to answer for (repeat; default: those changed)."),
    scenario_file: Path = typer.Option(
        None, "--scenario", exists=True, dir_okay=False, help="A scenario as JSON (POST /whatif's body) instead."
    ),
    run_id: str = typer.Option(None, "--run", help="Forecast run (default: the latest enriched run)."),
    fmt: str = typer.Option("table", "--format", help="table (per series), csv (per period) or json (everything)."),
) -> None:
    """Score a scenario of prices and promotions on the forecast run's global model, without retraining: baseline
    and scenario units and revenue per series and in total. Series whose published forecast does not use the global
    model say so. Exit code 1 when the scenario cannot be scored (the message says why)."""
    from forecast_orchestrator.whatif import score

    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter("must be table, csv or json", param_hint="--format")
    change = {"items": item, "categories": category, "locations": location,
              "start": start.date() if start else None, "end": end.date() if end else None,
              "price_factor": price_factor, "price": price, "promotion": promotion, "discount": discount}  # fmt: skip
    scenario = _scenario(scenario_file, change, answer)
    result = _answer(ctx.obj, run_id, lambda model: score(model, scenario))
    if fmt == "json":
        typer.echo(json.dumps(result, indent=2))
        return
    if fmt == "csv":
        for warning in result["warnings"]:
            typer.secho(f"warning: {warning}", err=True, fg="yellow")
        writer = csv.DictWriter(sys.stdout, fieldnames=PERIODS)
        writer.writeheader()
        for series in result["series"]:
            for period in series["periods"]:
                row = {"item_id": series["item_id"], "location": series["location"], "date": period["date"]}
                row |= {"baseline_p50": period["baseline"]["p50"], "scenario_p50": period["scenario"]["p50"]}
                writer.writerow(row | {k: period[k] for k in PERIODS[5:]})
        return
    table = Table(title=f"what-if on run {result['run_id']} ({result['model']})")
    for column in SUMMARY:
        table.add_column(column)
    for series in result["series"]:
        row = {"item_id": series["item_id"], "location": series["location"], **series["totals"],
               "implied_elasticity": series["implied_elasticity"], "uses_related": series["uses_related"]}  # fmt: skip
        table.add_row(*["" if row.get(c) is None else str(row[c]) for c in SUMMARY])
    total = {"item_id": "total", **result["total"]}
    table.add_row(*["" if total.get(c) is None else str(total[c]) for c in SUMMARY])
    output.stdout().print(table)
    for series in result["series"]:
        if "note" in series:
            typer.secho(f"note: {series['item_id']}: {series['note']}", err=True, fg="yellow")
    for warning in result["warnings"]:
        typer.secho(f"warning: {warning}", err=True, fg="yellow")


@app.command("drivers")
def drivers_command(
    ctx: typer.Context,
    item: list[str] = typer.Option(..., "--item", help="Item (repeat)."),
    run_id: str = typer.Option(None, "--run", help="Forecast run (default: the latest enriched run)."),
    fmt: str = typer.Option("table", "--format", help="table (per series, over the horizon) or json (per period)."),
) -> None:
    """What each item's forecast is made of: the ensemble's models and weights, and what moves the global model's
    median (recent demand, seasonality, price, promotion, holiday, item and store) as a factor on demand."""
    from forecast_orchestrator.drivers import drivers
    from forecast_orchestrator.global_model import DRIVERS

    if fmt not in ("table", "json"):
        raise typer.BadParameter("must be table or json", param_hint="--format")
    result = _answer(ctx.obj, run_id, lambda model: drivers(model, item))
    if fmt == "json":
        typer.echo(json.dumps(result, indent=2))
        return
    table = Table(title=f"drivers of run {result['run_id']} (factor on 1 + demand; 1 = no effect)")
    for column in ("item_id", "location", "ensemble", *DRIVERS):
        table.add_column(column)
    for series in result["series"]:
        models = ", ".join(f"{m['model']} {m['weight']:.2f}" for m in series["ensemble"])
        effects = [f"{series['drivers'][name]['effect']:.3f}" for name in DRIVERS]
        table.add_row(series["item_id"], series["location"] or "", models, *effects)
    output.stdout().print(table)
