"""`demand generate` (synthetic sales with labelled anomalies) and `demand replay-uci` (a real data set)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from streaming.generator import ANOMALY_KINDS, GeneratorConfig, generate, write_dataset
from streaming.records import encode_event
from streaming.uci_replay import replay_uci

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
    csv_path: Path = typer.Argument(
        ..., metavar="CSV", help="Online Retail II CSV (Invoice,StockCode,...,Country).", exists=True, dir_okay=False
    ),
    out: Path = typer.Option(..., "--out", help="Directory for events.jsonl and rejected.jsonl (created)."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable JSON summary instead of a table."),
) -> None:
    """Replay the UCI Online Retail II data set as contract events; bad rows go to rejected.jsonl."""
    console = Console(stderr=as_json)
    try:
        with console.status(f"reading {csv_path}", spinner="dots"):
            result = replay_uci(csv_path)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="CSV") from None
    out.mkdir(parents=True, exist_ok=True)
    events_path, rejected_path = out / "events.jsonl", out / "rejected.jsonl"
    with events_path.open("wb") as dst:
        dst.writelines(encode_event(e) + b"\n" for e in result.events)
    with rejected_path.open("w", encoding="utf-8") as dst:
        dst.writelines(json.dumps(r) + "\n" for r in result.rejected)
    summary = dict(result.counts, events_path=str(events_path), rejected_path=str(rejected_path))
    if as_json:
        typer.echo(json.dumps(summary))
        return
    rows = [("rows", name, result.counts[name]) for name in ("rows_read", "sale_events", "rejected")]
    rows += [("events", "cancellations", result.cancellations), ("events", "products", result.product_events)]
    rows += [("rejected", code, n) for code, n in result.counts["rejected_by_code"].items()]
    console.print(_table(f"{csv_path} -> {events_path}", rows))
