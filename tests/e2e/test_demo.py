"""`make demo` end to end on a small data set, in its own data root and on its own port.

The whole pipeline runs as a user runs it: the real CLI, the moto server `demand local up` starts, the PyFlink
mini-cluster, local Spark, statsforecast and DuckDB. A developer's own stack (.demand, port 4566) is never
touched, and the test stops the stack it started.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMAND = Path(sys.executable).parent / "demand"
STORES, ITEMS, DAYS = 1, 4, 364  # one year: the weekly backtest needs more than 41 weeks per series
STAGES = [
    "local stack on 127.0.0.1:",
    f"generate {DAYS} days of sales",
    "push it to Kinesis",
    "read the stream back",
    "Flink outlier split",
    "land the split as parquet",
    "build the forecast datasets",
    "demand anomalies of the build",
    "forecast workflow",
    "query the enriched forecasts",
    "report of the run",
]
DEMO_LIMIT_S = 600

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _run_demo(env: dict[str, str]) -> subprocess.CompletedProcess:
    """`make demo` in its own process group, so a timeout stops every process it started."""
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "demo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=DEMO_LIMIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"make demo took over {DEMO_LIMIT_S} s\n--- stdout\n{out[-4000:]}\n--- stderr\n{err[-4000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_make_demo_runs_every_stage_on_a_small_data_set(tmp_path):
    root, port = tmp_path / "root", _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEMAND_", "AWS_", "DEMO_"))}
    env.update(
        DEMAND_DATA_ROOT=str(root),
        DEMAND_LOCAL_PORT=str(port),
        DEMO_STORES=str(STORES),
        DEMO_ITEMS=str(ITEMS),
        DEMO_DAYS=str(DAYS),
        COLUMNS="200",  # rich tables: wide enough that item ids are not cut
    )
    try:
        demo = _run_demo(env)
    finally:
        down = subprocess.run([DEMAND, "local", "down"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    output = demo.stdout
    assert demo.returncode == 0, f"--- stdout\n{output[-4000:]}\n--- stderr\n{demo.stderr[-4000:]}"

    headers = [line[3:] for line in output.splitlines() if line.startswith("== ")]
    assert len(headers) == len(STAGES) and all(h.startswith(s) for h, s in zip(headers, STAGES, strict=True)), headers
    assert headers[0].startswith(f"local stack on 127.0.0.1:{port} ")

    demo_dir = root / "demo"
    generated = sum(1 for _ in (demo_dir / "events.jsonl").open())
    counts = json.loads((demo_dir / "split" / "counts.json").read_text())
    assert counts["accounted"] == counts["input"] == generated  # every event made it through Kinesis and the split
    assert counts["clean"] > 0.9 * generated

    # next_period_forecast: one row per item (series per item, no location); then outliers by reason code.
    printed = [int(n) for n in re.findall(r"^\s*(\d+) rows, [\d.,]+ ms, duckdb\s*$", output, re.MULTILINE)]
    assert printed[0] == ITEMS and printed[1] >= 1, printed
    skus = [f"SKU{k:05d}" for k in range(1, ITEMS + 1)]
    assert all(sku in output for sku in skus)

    assert re.search(r"^demand anomalies of build \S+ ending on or after \d{4}-\d\d-\d\d$", output, re.MULTILINE)
    run_id = re.search(r"^report of run (\w+) written to (.+)$", output, re.MULTILINE)
    assert run_id and Path(run_id.group(2)) == root / "report.html"
    report = (root / "report.html").read_text()
    assert f"Forecast run {run_id.group(1)}" in report and all(sku in report for sku in skus)

    assert down.returncode == 0 and f"on port {port}" in down.stdout, down.stdout + down.stderr
    assert not _port_open(port) and not (root / "local-stack.json").exists()
