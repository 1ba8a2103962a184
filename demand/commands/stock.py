"""`demand stock`: stock projection and reorder suggestions from the latest forecast (api/stock.py)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from demand import output

if TYPE_CHECKING:
    from api.stock_table import OnHand

app = typer.Typer()


def _stock_rows(path: Path) -> list[OnHand]:
    """The CSV's rows (a lead time only where the row has one); errors name the row and column."""
    from api.stock_table import OnHand

    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"item_id", "on_hand"} <= set(reader.fieldnames):
            raise typer.BadParameter(f"{path}: needs the columns item_id and on_hand (has {reader.fieldnames})")
        rows = []
        for number, row in enumerate(reader, start=2):
            try:
                on_hand = float(row["on_hand"])
                lead = int(row["lead_time"]) if row.get("lead_time") else None
            except ValueError:
                raise typer.BadParameter(
                    f"{path} row {number}: on_hand={row['on_hand']!r} / lead_time={row.get('lead_time')!r} "
                    "must be numbers"
                ) from None
            if on_hand < 0 or (lead is not None and lead < 0):
                raise typer.BadParameter(f"{path} row {number}: on_hand and lead_time must not be negative")
            rows.append(OnHand(row["item_id"], row.get("location") or None, on_hand, lead))
    return rows


@app.command("stock")
def stock(
    ctx: typer.Context,
    on_hand: Path = typer.Option(
        None,
        "--on-hand",
        exists=True,
        dir_okay=False,
        help="CSV: item_id, on_hand[, location][, lead_time]. Without it: the stock-on-hand table.",
    ),
    save: bool = typer.Option(False, "--save", help="Also record the CSV's stock in the stock-on-hand table."),
    lead_time: int = typer.Option(1, "--lead-time", min=0, help="Periods from order to delivery (a row's own wins)."),
    service_level: float = typer.Option(0.9, "--service-level", min=0.5, max=0.99, help="Share of periods in full."),
    fmt: str = typer.Option("table", "--format", help="table, csv or json."),
) -> None:
    """Project each item's stock over the latest forecast at p50 and at the service level's quantile: the first
    shortage of each and a suggested order (quantity, the latest period to place it). The stock comes from a CSV
    (`--save` records it in the stock-on-hand table, which the API reads too) or, without one, from that table.
    Items without a forecast are reported, not skipped silently (exit code 1)."""
    from api import stock_table
    from api.queries import QueryLayer
    from api.stock import StockError, project

    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter("must be table, csv or json", param_hint="--format")
    if save and on_hand is None:
        raise typer.BadParameter("--save records a CSV's stock: give it with --on-hand", param_hint="--save")
    rows = _stock_rows(on_hand) if on_hand is not None else stock_table.every_row(ctx.obj)
    if on_hand is None and not rows:
        typer.secho(f"error: {ctx.obj.names.stock_table} holds no stock: give a CSV with --on-hand (--save records it)",
                    err=True, fg="red")  # fmt: skip
        raise typer.Exit(1)
    if save:
        saved = stock_table.save(ctx.obj, rows)
        typer.secho(f"recorded the stock of {saved} series in {ctx.obj.names.stock_table}", err=True)
    layer, plans, missing = QueryLayer(ctx.obj), [], []
    for row in rows:
        lead = lead_time if row.lead_time is None else row.lead_time
        try:
            forecast = layer.forecast(row.item_id)
            plans.append(project(row.item_id, forecast, row.on_hand, lead, service_level, row.location).as_dict())
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
