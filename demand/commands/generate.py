"""`demand generate` (synthetic sales with labelled anomalies) and `demand replay-uci` (a real data set)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from demand import output
from streaming.generator import ANOMALY_KINDS, GeneratorConfig, generate, write_dataset
from streaming.records import encode_event
from streaming.uci_replay import ReplayCounts, count_rows, replay

app = typer.Typer()


def _table(title: str, rows: list[tuple[str, str, int]]) -> Table:
    table = Table(title=title)
    table.add_column("group")
    table.add_column("name")
    table.add_column("count", justify="right")
    for group, name, count in rows:
        table.add_row(group, name, f"{count:,}")
    return table


@app.command("generate")
def generate_command(
    out: Path = typer.Option(..., "--out", help="Directory for events.jsonl and labels.jsonl (created)."),
    stores: int = typer.Option(GeneratorConfig.stores, help="Number of stores.", min=1, max=999),
    items: int = typer.Option(GeneratorConfig.items, help="Number of items (SKUs).", min=1, max=99_999),
    days: int = typer.Option(GeneratorConfig.days, help="Number of days to generate.", min=1),
    start: str = typer.Option(GeneratorConfig.start, help="First day, a UTC date like 2023-01-02."),
    anomaly_rate: float = typer.Option(
        GeneratorConfig.anomaly_rate, help="Share of sale events that are injected anomalies (0..0.5).", min=0, max=0.5
    ),
    seed: int = typer.Option(GeneratorConfig.seed, help="Random seed; the same seed gives the same bytes."),
    country: str = typer.Option(
        GeneratorConfig.country, help="Holiday calendar: a country (GB) or country-subdivision (GB-SCT)."
    ),
    currency: str = typer.Option(GeneratorConfig.currency, help="ISO-4217 currency of the prices."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable JSON summary instead of a table."),
) -> None:
    """Generate realistic sales events with labelled, injected anomalies (events.jsonl + labels.jsonl)."""
    try:
        config = GeneratorConfig(
            seed=seed,
            stores=stores,
            items=items,
            start=start,
            days=days,
            anomaly_rate=anomaly_rate,
            country=country.upper(),
            currency=currency.upper(),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    console = Console(stderr=as_json)
    with console.status(f"generating {stores} stores x {items} items x {days} days", spinner="dots"):
        data = generate(config)
        events_path, labels_path = write_dataset(data, out)
    by_type = Counter(e["event_type"] for e in data.events)
    by_kind = Counter(label.kind for label in data.labels)
    summary = {
        "events": len(data.events),
        "events_by_type": dict(sorted(by_type.items())),
        "anomalies": len(data.labels),
        "anomalies_by_kind": {k: by_kind.get(k, 0) for k in ANOMALY_KINDS},
        "events_path": str(events_path),
        "labels_path": str(labels_path),
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    rows = [("events", t, c) for t, c in sorted(by_type.items())]
    rows += [("anomalies", k, by_kind.get(k, 0)) for k in ANOMALY_KINDS]
    console.print(_table(f"{len(data.events):,} events -> {events_path}", rows))
    console.print(f"labels: {labels_path}")


@app.command("replay-uci")
def replay_uci_command(
    path: Path = typer.Argument(
        ...,
        metavar="FILE",
        help="Online Retail II as the UCI .xlsx (both sheets), a CSV export or parquet "
        "(Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country).",
        exists=True,
        dir_okay=False,
    ),
    out: Path = typer.Option(..., "--out", help="Directory for events.jsonl and rejected.jsonl (created)."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable JSON summary instead of a table."),
) -> None:
    """Replay the UCI Online Retail II data set as contract events; rows that are no sale go to rejected.jsonl with
    the reason. Cancellations are matched to the order they cancel where the data allows (README)."""
    console = Console(stderr=True)
    out.mkdir(parents=True, exist_ok=True)
    events_path, rejected_path = out / "events.jsonl", out / "rejected.jsonl"
    counts = ReplayCounts()
    show = not as_json and console.is_terminal
    try:
        with (
            events_path.open("wb") as events,
            rejected_path.open("w", encoding="utf-8") as rejected,
            Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                     console=console, disable=not show) as bar,
        ):  # fmt: skip
            task = bar.add_task("rows", total=count_rows(path))
            for kind, record in replay(path, counts, progress=lambda n: bar.update(task, completed=n)):
                if kind == "event":
                    events.write(encode_event(record) + b"\n")
                else:
                    rejected.write(json.dumps(record) + "\n")
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="FILE") from None
    summary = dict(counts.as_dict(), events_path=str(events_path), rejected_path=str(rejected_path))
    if as_json:
        typer.echo(json.dumps(summary))
        return
    rows = [("rows", name, summary[name]) for name in ("rows_read", "sale_events", "rejected", "overlap_rows_dropped")]
    rows += [("events", "products", counts.product_events), ("events", "cancellations", counts.cancellations)]
    rows += [("events", "cancellations matched to their order", counts.matched_cancellations)]
    rows += [("rejected", code, n) for code, n in summary["rejected_by_code"].items()]
    output.stdout().print(_table(f"{path} -> {events_path}", rows))
