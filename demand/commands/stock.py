"""`demand stock`: stock projection and reorder suggestions from the latest forecast (api/stock.py)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from demand import output

app = typer.Typer()


def _stock_rows(path: Path, lead_time: int) -> list[tuple[str, str | None, float, int]]:
    """(item_id, location, on_hand, lead_time) per row of the CSV; errors name the row and column."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"item_id", "on_hand"} <= set(reader.fieldnames):
            raise typer.BadParameter(f"{path}: needs the columns item_id and on_hand (has {reader.fieldnames})")
        rows = []
        for number, row in enumerate(reader, start=2):
            try:
                on_hand = float(row["on_hand"])
                lead = int(row.get("lead_time") or lead_time)
            except ValueError:
                raise typer.BadParameter(
                    f"{path} row {number}: on_hand={row['on_hand']!r} / lead_time={row.get('lead_time')!r} "
                    "must be numbers"
                ) from None
            rows.append((row["item_id"], row.get("location") or None, on_hand, lead))
    return rows


@app.command("stock")
def stock(
    ctx: typer.Context,
    on_hand: Path = typer.Option(
        ..., "--on-hand", exists=True, dir_okay=False, help="CSV: item_id, on_hand[, location][, lead_time]."
    ),
    lead_time: int = typer.Option(1, "--lead-time", min=0, help="Periods from order to delivery (a row's own wins)."),
    service_level: float = typer.Option(0.9, "--service-level", min=0.5, max=0.99, help="Share of periods in full."),
    fmt: str = typer.Option("table", "--format", help="table, csv or json."),
) -> None:
    """Project each item's stock over the latest forecast at p50 and at the service level's quantile: the first
    shortage of each and a suggested order (quantity, the latest period to place it). Items without a forecast are
    reported, not skipped silently (exit code 1)."""
    from api.queries import QueryLayer
    from api.stock import StockError, project

    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter("must be table, csv or json", param_hint="--format")
    layer, plans, missing = QueryLayer(ctx.obj), [], []
    for item_id, location, units, lead in _stock_rows(on_hand, lead_time):
        try:
            plans.append(project(item_id, layer.forecast(item_id), units, lead, service_level, location).as_dict())
        except StockError as exc:
            missing.append(str(exc))
    summary = ["item_id", "location", "on_hand", "quantile", "shortage_p50", "shortage_service", "order_quantity",
               "order_by", "late"]  # fmt: skip
    if fmt == "json":
        typer.echo(json.dumps({"plans": plans, "errors": missing}, indent=2))
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=summary, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(plans)
    else:
        table = Table(title=f"stock at service level {service_level}")
        for column in summary:
            table.add_column(column)
        for plan in plans:
            table.add_row(*["" if plan[c] is None else str(plan[c]) for c in summary])
        output.stdout().print(table)
    for message in missing:
        typer.secho(f"error: {message}", err=True, fg="red")
    if missing:
        raise typer.Exit(1)
