"""`demand totals`: the latest run's coherent forecasts of a level (total, categories, stores, items) and the
backtest accuracy of every level before and after reconciliation (forecast_orchestrator/totals.py)."""

from __future__ import annotations

import csv
import json
import sys

import typer
from rich.table import Table

from core.contracts import HIERARCHY_LEVELS
from demand import output

app = typer.Typer()


@app.command("totals")
def totals(
    ctx: typer.Context,
    level: str = typer.Option("category", "--level", help=f"One of {', '.join(HIERARCHY_LEVELS)}."),
    key: str = typer.Option(None, "--key", help="One category, store or item of the level."),
    fmt: str = typer.Option("table", "--format", help="table (per node, over the horizon), csv or json (per period)."),
) -> None:
    """Coherent forecasts: each period's expected demand (`mean`) of a level adds up to the level above, up to the
    company's total. The table sums the horizon per node; csv and json give every period. Exit 1 when the latest
    run has no coherent totals at the level."""
    from api.queries import QueryLayer, no_totals
    from forecast_orchestrator.reconcile import LEVEL_KEYS

    if level not in HIERARCHY_LEVELS:
        raise typer.BadParameter(f"must be one of {', '.join(HIERARCHY_LEVELS)}", param_hint="--level")
    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter("must be table, csv or json", param_hint="--format")
    layer = QueryLayer(ctx.obj)
    rows = layer.totals(level, key)
    if not rows:
        typer.secho(f"error: {no_totals(level, key)}", err=True, fg="red")
        raise typer.Exit(1)
    if fmt == "json":
        typer.echo(
            json.dumps({"level": level, "rows": rows, "accuracy": layer.totals_accuracy()}, indent=2, default=str)
        )
        return
    if fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        return
    keys = LEVEL_KEYS[level] or ("level",)  # the total is its own node
    nodes: dict[tuple, dict[str, float]] = {}
    for row in rows:
        node = nodes.setdefault(tuple(row[c] for c in keys), {"mean": 0.0, "p50": 0.0, "base_p50": 0.0})
        for column in node:
            node[column] += row[column]
    total = sum(node["mean"] for node in nodes.values()) or 1.0
    table = Table(title=f"{level} over {len({r['forecast_date'] for r in rows})} periods, run {rows[0]['run_id']} "
                        f"(method {rows[0]['method']})")  # fmt: skip
    for column in (*keys, "expected units", "share", "sum of p50", "sum of base p50"):
        table.add_column(column)
    for names, node in sorted(nodes.items(), key=lambda kv: -kv[1]["mean"]):
        table.add_row(*map(str, names), f"{node['mean']:.1f}", f"{node['mean'] / total:.3f}", f"{node['p50']:.1f}",
                      f"{node['base_p50']:.1f}")  # fmt: skip
    accuracy = Table(title="backtest WAPE by level")
    for column in ("level", "method", "backtest_wape", "base_backtest_wape", "nodes"):
        accuracy.add_column(column)
    for row in sorted(layer.totals_accuracy(), key=lambda r: HIERARCHY_LEVELS.index(r["level"])):
        accuracy.add_row(row["level"], row["method"], f"{row['backtest_wape']:.4f}", f"{row['base_backtest_wape']:.4f}",
                         str(row["nodes"]))  # fmt: skip
    console = output.stdout()
    console.print(table)
    console.print(accuracy)
