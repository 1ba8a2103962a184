"""`demand backfill FILE`: history a retailer already has, through the same outlier split and landing as the
stream, without Kinesis (replay -> Flink split in bounded mode -> landing)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from core.object_store import object_store
from demand import output
from streaming.records import encode_event
from streaming.uci_replay import COLUMNS, ReplayCounts, replay

app = typer.Typer()


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_uci(path: Path) -> bool:
    """The Online Retail II layout (xlsx, parquet, or a CSV whose header is its columns)."""
    if path.suffix.lower() in (".xlsx", ".xlsm", ".parquet"):
        return True
    if path.suffix.lower() == ".csv":
        with path.open("rb") as fh:
            header = fh.readline().decode("utf-8-sig", errors="replace")
        return [h.strip() for h in header.strip().split(",")] == list(COLUMNS)
    return False


@app.command("backfill")
def backfill(
    ctx: typer.Context,
    source: Path = typer.Argument(
        ...,
        metavar="FILE",
        help="Contract events as JSON lines, or the Online Retail II layout (xlsx, csv, parquet).",
        exists=True,
        dir_okay=False,
    ),  # fmt: skip
    work: Path = typer.Option(..., "--work", help="Working folder: events.jsonl, the split's output (split/)."),
    parallelism: int = typer.Option(1, min=1, max=64, help="Flink parallelism of the split."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Validate, split (the same outlier split as the stream, in bounded mode) and land years of history at once.
    Every line ends clean, outlier or rejected (with the reason) in the buckets. A re-run with the same input keeps
    the finished split and lands only what is not landed yet: nothing twice."""
    from flink_jobs.outlier_split import JobConfig, run_local
    from streaming.landing import deliver

    settings = ctx.obj
    console = Console(stderr=True)
    work.mkdir(parents=True, exist_ok=True)
    split_out = work / "split"
    summary: dict = {"source": str(source)}
    stages: list[tuple[str, float]] = []
    started = time.perf_counter()
    events = source
    if _is_uci(source):
        events = work / "events.jsonl"
        counts = ReplayCounts()
        rejected_rows = []
        with console.status("replaying the Online Retail II rows") as line, events.open("wb") as out:
            for kind, record in replay(source, counts, progress=lambda n: line.update(f"replaying: {n:,} rows")):
                if kind == "event":
                    out.write(encode_event(record) + b"\n")
                else:
                    rejected_rows.append(record)
        summary["replay"] = counts.as_dict()
        stages.append(("replay", time.perf_counter() - started))
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    config = JobConfig(
        parallelism=parallelism, checkpoint_dir=str(split_out / "_checkpoints"), outlier=settings.outlier
    )
    marker, digest = work / "split-done.json", _digest(events)
    begun = time.perf_counter()
    done = json.loads(marker.read_text()) if marker.is_file() else {}
    if done.get("input") == digest:  # a re-run: the split of this input is there (and maybe partly landed)
        summary["split"] = done["counts"]
    else:
        shutil.rmtree(split_out, ignore_errors=True)  # an interrupted split: nothing of it was landed yet
        with console.status(f"splitting {events} on the Flink mini-cluster"):
            summary["split"] = run_local(events, split_out, config)
        if _is_uci(source) and rejected_rows:  # the replay's rejections land with the split's
            rejected = "".join(json.dumps(r) + "\n" for r in rejected_rows)
            (split_out / "rejected").mkdir(parents=True, exist_ok=True)
            (split_out / "rejected" / "part-replay.jsonl").write_text(rejected)
        marker.write_text(json.dumps({"input": digest, "counts": summary["split"]}))
    stages.append(("split", time.perf_counter() - begun))
    with console.status("landing parquet") as line:
        begun = time.perf_counter()
        landed = deliver(split_out, object_store(settings), settings.names.buckets,
                         progress=lambda done, total: line.update(f"landing: {done}/{total} part files"))  # fmt: skip
        summary["land"] = landed.as_dict()
        stages.append(("land", time.perf_counter() - begun))
    summary["seconds"] = round(time.perf_counter() - started, 1)
    balanced = summary["split"]["accounted"] == summary["split"]["input"]
    summary["balanced"] = balanced
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        table = Table(title=f"backfill {source} -> {settings.data_root}")
        table.add_column("stage")
        table.add_column("records", justify="right")
        table.add_column("seconds", justify="right")
        seconds = dict(stages)
        if "replay" in summary:
            table.add_row("replay: events / rejected", f"{summary['replay']['sale_events']:,} / "
                          f"{summary['replay']['rejected']:,}", f"{seconds['replay']:.1f}")  # fmt: skip
        split = summary["split"]
        table.add_row("split: clean / outliers / rejected / duplicates",
                      f"{split['clean']:,} / {split['outliers']:,} / {split['rejected']:,} / {split['duplicates']:,}",
                      f"{seconds['split']:.1f}")  # fmt: skip
        table.add_row("land: objects", f"{landed.objects_written:,}", f"{seconds['land']:.1f}")
        output.stdout().print(table)
    if not balanced:
        console.print(f"[red]counts do not add up: {split['accounted']} accounted for, {split['input']} input lines")
        raise typer.Exit(1)
