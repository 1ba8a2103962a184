"""Bench `uci_pipeline`: the real Online Retail year through every stage on this machine, as a new user runs it.

replay (parquet -> contract events) -> push (into the local stack's Kinesis) -> read (the stream back) -> split (the
Flink job on the mini-cluster) -> land (parquet in the buckets) -> build (the Glue job on local Spark: daily
datasets, 28 days of horizon, GB holidays) -> forecast (the workflow in-process, the default ensemble) -> enrich
(the Glue job). One line per stage with `rows_per_s`, rows in and out, seconds and objects written; the push line's
baseline is the same push into a moto server without the local stack's Kinesis fix, on the first 50,000 events;
a last line with the whole pipeline's seconds. `--quick`: December 2009 only. `uci_pipeline_2x`: the year and the
same year again, shifted by a year (its invoices renumbered), so every stage sees twice the rows.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd

from bench import online_retail
from bench.report import emit
from core.object_store import object_store
from core.settings import Settings
from local_stack import stack
from streaming.producer import push_events, read_lines
from streaming.records import encode_event
from streaming.stream_reader import iter_stream
from streaming.uci_replay import ReplayCounts, replay

BASELINE_EVENTS = 50_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _unpatched_push(events: Path, root: Path) -> float:
    """events/s of the same push into a plain moto server (its Kinesis as released), on the first events."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        while not stack.port_open(port):
            time.sleep(0.1)
        settings = Settings(endpoint_url=f"http://127.0.0.1:{port}", data_root=root, prefix="plain")
        stack.ensure_resources(settings)
        lines = [line for _, line in zip(range(BASELINE_EVENTS), read_lines(events), strict=False)]
        return push_events(lines, settings).events_per_s
    finally:
        server.terminate()
        server.wait(timeout=10)


def _twice(source: Path, out: Path) -> Path:
    """The file followed by itself a year later, its invoice numbers prefixed with 9 (C123 -> C9123)."""
    frame = pd.read_parquet(source)
    later = frame.copy()
    later["InvoiceDate"] = later["InvoiceDate"] + pd.DateOffset(years=1)
    later["Invoice"] = later["Invoice"].astype(str).str.replace(r"^([A-Za-z]*)", r"\g<1>9", regex=True)
    pd.concat([frame.assign(Invoice=frame["Invoice"].astype(str)), later], ignore_index=True).to_parquet(out)
    return out


def _objects(root: Path, bucket: str) -> int:
    return sum(1 for p in (root / bucket).rglob("*") if p.is_file() and not p.name.startswith("."))


def run(quick: bool, only: str | None = None) -> None:
    from flink_jobs.outlier_split import JobConfig, run_local
    from forecast_orchestrator.workflow import run_forecast
    from glue_jobs.build_forecast_inputs import BuildRequest, build
    from glue_jobs.enrich_forecast import publish_run
    from glue_jobs.forecast_inputs import RunWindow
    from glue_jobs.runtime import spark_session
    from streaming.landing import deliver

    # PyFlink's Python workers start `python` from PATH: make it this interpreter.
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    with tempfile.TemporaryDirectory(prefix="bench-uci-") as tmp:
        work = Path(tmp)
        source = online_retail.DATA
        if quick:
            frame = pd.read_parquet(source)
            source = work / "december.parquet"
            frame[frame["InvoiceDate"] < "2010-01-01"].to_parquet(source)
        if only == "uci_pipeline_2x":
            source = _twice(source, work / "twice.parquet")
        horizon = 7 if quick else online_retail.HORIZON  # a month of history holds no 3 windows of 28 days
        settings = Settings(data_root=work / "data", prefix="uci", local_port=_free_port(), country="GB",
                            frequency="D", horizon=horizon, backtest_windows=2 if quick else 3)  # fmt: skip
        began = time.perf_counter()
        lines: list[tuple[str, float, int, int, int]] = []  # stage, seconds, rows in, rows out, objects

        t0 = time.perf_counter()
        counts, events = ReplayCounts(), work / "events.jsonl"
        with events.open("wb") as out:
            for kind, record in replay(source, counts):
                if kind == "event":
                    out.write(encode_event(record) + b"\n")
        n_events = counts.sale_events + counts.product_events
        lines.append(("replay", time.perf_counter() - t0, counts.rows_read, n_events, 0))

        state, _, _ = stack.up(settings)
        settings = settings.model_copy(update={"endpoint_url": state.endpoint})
        try:
            t0 = time.perf_counter()
            pushed = push_events(read_lines(events), settings)
            lines.append(("push", time.perf_counter() - t0, n_events, pushed.sent, 0))
            baseline_push = _unpatched_push(events, work / "plain")

            t0 = time.perf_counter()
            received = work / "received.jsonl"
            with received.open("wb") as out:
                n_read = sum(out.write(r.data + b"\n") > 0 for r in iter_stream(settings))
            lines.append(("read", time.perf_counter() - t0, pushed.sent, n_read, 0))

            t0 = time.perf_counter()
            split = run_local(received, work / "split", JobConfig(checkpoint_dir=str(work / "chk")))
            kept = split["clean"] + split["outliers"] + split["rejected"] + split["reference"]
            lines.append(("split", time.perf_counter() - t0, split["input"], kept, 0))

            t0 = time.perf_counter()
            landed = deliver(work / "split", object_store(settings), settings.names.buckets)
            lines.append(("land", time.perf_counter() - t0, sum(landed.rows.values()), sum(landed.rows.values()),
                          landed.objects_written))  # fmt: skip

            t0 = time.perf_counter()
            spark, _ = spark_session("uci_pipeline")
            last = date.fromisoformat(received_last_day(work / "split"))
            window = RunWindow(date(2009, 12, 1), last, "D", horizon)
            manifest = build(spark, settings, BuildRequest(window, country="GB"))
            target_rows = manifest["datasets"]["target"]["rows"]
            lines.append(("build", time.perf_counter() - t0, landed.rows.get("sales", 0), target_rows,
                          _objects(settings.data_root, settings.names.bucket("forecast-input"))))  # fmt: skip

            t0 = time.perf_counter()
            key = next(k for k in object_store(settings).list(settings.names.bucket("forecast-input"))
                       if k.endswith("/manifest.json"))  # fmt: skip
            status, result = run_forecast(settings, key)
            assert status == "SUCCEEDED", result.get("error")
            series = result["imported"]["series"]
            forecast_rows = series * horizon
            lines.append(("forecast", time.perf_counter() - t0, target_rows, forecast_rows,
                          _objects(settings.data_root, settings.names.bucket("forecast-export"))))  # fmt: skip

            t0 = time.perf_counter()
            enriched = publish_run(spark, settings, result["export_manifest"]["key"])
            lines.append(("enrich", time.perf_counter() - t0, forecast_rows, enriched["rows"],
                          _objects(settings.data_root, settings.names.bucket("enriched"))))  # fmt: skip
        finally:
            stack.down(settings)
        total = time.perf_counter() - began
    name = only or "uci_pipeline"
    unpatched = {"baseline_events": BASELINE_EVENTS, "baseline_server": "moto 5.2.5 as released"}
    for stage, seconds, rows_in, rows_out, objects in lines:
        baseline = baseline_push if stage == "push" else None
        emit(name, "rows_per_s", rows_in / seconds, "rows/s", baseline=baseline, stage=stage,
             rows_in=rows_in, rows_out=rows_out, seconds=round(seconds, 1), objects=objects,
             **(unpatched if baseline else {}))  # fmt: skip
    emit(name, "pipeline_seconds", total, "s", rows=counts.rows_read, quick=quick)


def received_last_day(split: Path) -> str:
    """The day after the newest clean sale (the build's exclusive window end)."""
    newest = ""
    for path in (split / "clean").glob("part*"):
        for line in path.read_bytes().splitlines():
            newest = max(newest, json.loads(line)["event_time"][:10])
    return (pd.Timestamp(newest) + pd.Timedelta(days=1)).date().isoformat()
