"""Fault injection: the local pipeline, broken at each stage as it breaks in real life (a process killed with SIGKILL,
a step that raises), then run again. After each, the outputs equal those of an undisturbed run: every record once,
no stage stuck. The summary table is in the README ("Reliability: what is guarded")."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from factories import sale

from core.object_store import LocalObjectStore
from core.settings import Settings
from flink_jobs.accuracy import split_lines
from flink_jobs.outlier_split import read_outputs
from forecast_orchestrator.handlers import Runtime, dispatch
from forecast_orchestrator.state_machine import run_local
from forecast_orchestrator.workflow import run_forecast
from glue_jobs.build_forecast_inputs import BuildRequest, build
from glue_jobs.forecast_inputs import RunWindow
from local_stack.stack import ensure_resources
from streaming.generator import GeneratorConfig, generate
from streaming.landing import LANDED_STATE, deliver
from streaming.records import encode_event

pytestmark = pytest.mark.slow

START = date(2023, 1, 2)
WINDOW = RunWindow(START, START + timedelta(weeks=52), "W", horizon=4)


def _demand(*args: str, root: Path) -> subprocess.Popen:
    """`demand ...` in its own process group (so a kill takes its JVM children too)."""
    env = {**os.environ, "DEMAND_DATA_ROOT": str(root), "PYTHONUNBUFFERED": "1"}
    cli = [sys.executable, "-c", "from demand.cli import app; app()"]
    return subprocess.Popen([*cli, *args], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def _kill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def _wait(predicate, timeout: float, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended ({process.returncode}) before {what}: {process.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def _split_output(folder: Path, events: list[dict]) -> Path:
    for name in ("clean", "reference"):
        (folder / name).mkdir(parents=True)
    sales = [e for e in events if e["event_type"] == "sale"]
    for k in range(3):  # three part files: more than one landing batch
        part = sales[k::3]
        (folder / "clean" / f"part-{k}").write_text("".join(json.dumps(e) + "\n" for e in part))
    other = [e for e in events if e["event_type"] != "sale"]
    (folder / "reference" / "part-0").write_text("".join(json.dumps(e) + "\n" for e in other))
    return folder


def _objects(root: Path) -> dict[str, list]:
    """Every landed object under root: key -> its rows, sorted by event id."""
    out = {}
    for path in sorted(root.rglob("*.parquet")):
        rows = pq.read_table(path).to_pylist()
        out[path.relative_to(root).as_posix()] = sorted(rows, key=lambda r: r.get("event_id") or "")
    return out


@pytest.fixture(scope="module")
def data():
    return generate(GeneratorConfig(seed=23, stores=2, items=8, start=START.isoformat(), days=7 * 56))


@pytest.fixture(scope="module")
def many_sales():
    """390,000 sales: landing needs two batches of 250,000 lines for them."""
    base = date(2024, 1, 1)
    return [
        sale(f"e{n}", f"{base + timedelta(days=n % 60)}T{n % 24:02d}:00:00Z", f"i{n % 500}", 1 + n % 7)
        for n in range(390_000)
    ]


def test_landing_killed_half_way_and_run_again_lands_every_record_once(many_sales, tmp_path):
    split = _split_output(tmp_path / "split", many_sales)
    undisturbed = tmp_path / "undisturbed"
    shutil.copytree(split, tmp_path / "split-copy")
    deliver(tmp_path / "split-copy", LocalObjectStore(undisturbed), Settings().names.buckets)

    killed = tmp_path / "root"
    landing = _demand("land", str(split), root=killed)
    _wait(lambda: (split / LANDED_STATE).exists(), 300, "the first batch to land", landing)
    _kill(landing)  # in the second batch
    assert len(json.loads((split / LANDED_STATE).read_text())) < 4, "the landing finished before it was killed"
    deliver(split, LocalObjectStore(killed), Settings().names.buckets)  # run again

    assert _objects(killed) == _objects(undisturbed)
    sales = [r for key, rows in _objects(killed).items() if key.startswith("demand-staged/sales/") for r in rows]
    assert len(sales) == len({r["event_id"] for r in sales}) == len(many_sales)


def test_dataset_build_killed_and_run_again_gives_the_undisturbed_build(spark, data, tmp_path):
    roots = {name: tmp_path / name for name in ("undisturbed", "killed")}
    for name, root in roots.items():
        deliver(
            _split_output(tmp_path / f"split-{name}", data.events), LocalObjectStore(root), Settings().names.buckets
        )
    request = BuildRequest(WINDOW, country="DE")
    expected = build(spark, Settings(data_root=roots["undisturbed"]), request)

    inputs = roots["killed"] / "demand-forecast-input" / "datasets"
    args = ["glue", "run", "build-forecast-inputs", "--window-start", str(WINDOW.start), "--window-end",
            str(WINDOW.end), "--frequency", "W", "--horizon", "4", "--country", "DE"]  # fmt: skip
    job = _demand(*args, root=roots["killed"])
    _wait(lambda: any(inputs.glob("W/*/target")), 300, "the build to start writing", job)
    _kill(job)
    assert not any(inputs.glob("W/*/manifest.json")), "a killed build must not look finished"
    again = build(spark, Settings(data_root=roots["killed"]), request)

    assert {**again, "built_at": None} == {**expected, "built_at": None}
    for name, entry in expected["datasets"].items():

        def rows(root: Path, path: str = entry["path"]) -> list[str]:
            parts = sorted((root / "demand-forecast-input" / path).glob("part-*.csv"))
            return [line for part in parts for line in part.read_text().splitlines()[1:]]

        assert rows(roots["killed"]) == rows(roots["undisturbed"]), name


def test_flink_job_killed_mid_stream_and_restored_loses_and_repeats_nothing(data, tmp_path):
    lines = [encode_event(e) for e in data.events]
    inbox, out, checkpoints = tmp_path / "inbox", tmp_path / "out", tmp_path / "chk"
    inbox.mkdir()
    half = len(lines) // 2
    (inbox / "a.jsonl").write_bytes(b"\n".join(lines[:half]) + b"\n")
    args = ["flink", "run", "--input", str(inbox), "--out", str(out), "--checkpoint-dir", str(checkpoints), "--follow"]

    def committed() -> int:
        return sum(
            len(read_outputs(out, name)) for name in ("clean", "outliers", "rejected", "reference", "duplicates")
        )

    def latest() -> Path | None:
        done = [p.parent for p in checkpoints.glob("*/chk-*/_metadata")]
        return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)

    first = _demand(*args, root=tmp_path / "root")
    _wait(lambda: committed() >= 1000 and latest() is not None, 300, "a checkpoint to commit records", first)
    _kill(first)
    (inbox / "b.jsonl").write_bytes(b"\n".join(lines[half:]) + b"\n")
    second = _demand(*args, "--restore-from", str(latest()), root=tmp_path / "root")
    try:
        _wait(lambda: committed() >= len(lines), 300, "every record to be committed", second)
        time.sleep(3)  # one more checkpoint: anything repeated would show now
    finally:
        _kill(second)

    expected = split_lines(lines)
    clean = [json.loads(line)["event_id"] for line in read_outputs(out, "clean")]
    outliers = [json.loads(line)["event_id"] for line in read_outputs(out, "outliers")]
    assert sorted(clean) == sorted(s["event_id"] for s in expected.clean)
    assert sorted(outliers) == sorted(o["event_id"] for o in expected.outliers)
    assert len(read_outputs(out, "duplicates")) == expected.duplicates


# The steps a run of the in-process backend goes through (its polls finish at once, so no Check state runs).
STEPS = ["start_run", "import_datasets", "train_predictor", "get_accuracy", "accuracy_gate", "create_forecast",
         "export_forecast", "notify"]  # fmt: skip


@pytest.fixture(scope="module")
def built(spark, data, tmp_path_factory):
    root = tmp_path_factory.mktemp("built")
    deliver(_split_output(root / "split", data.events), LocalObjectStore(root / "data"), Settings().names.buckets)
    return root / "data", build(spark, Settings(data_root=root / "data"), BuildRequest(WINDOW, country="DE"))


def _forecast(settings: Settings, run: dict) -> bytes:
    store = LocalObjectStore(settings.data_root)
    bucket = settings.names.bucket("forecast-export")
    manifest = json.loads(store.get(bucket, run["export_manifest"]["key"]))
    return b"".join(store.get(bucket, key) for key in manifest["forecast_keys"])


@pytest.fixture(scope="module")
def undisturbed(moto_server, built, tmp_path_factory):
    settings = _stack(moto_server, built, tmp_path_factory.mktemp("undisturbed"), "undisturbed")
    status, run = run_forecast(settings, built[1]["prefix"] + "manifest.json")
    assert status == "SUCCEEDED", run.get("error")
    return _forecast(settings, run)


def _stack(moto_server: str, built, root: Path, name: str) -> Settings:
    """A stack of its own (prefix) on the session's moto server, holding a copy of the built datasets."""
    settings = Settings(endpoint_url=moto_server, data_root=root, prefix=f"fault-{name.replace('_', '-')}")
    source = built[0] / Settings().names.bucket("forecast-input")
    shutil.copytree(source, root / settings.names.bucket("forecast-input"))
    ensure_resources(settings)
    return settings


@pytest.mark.parametrize("step", STEPS)
def test_forecast_workflow_failing_at_a_step_then_triggered_again_gives_the_undisturbed_forecast(
    step, moto_server, built, undisturbed, tmp_path
):
    settings = _stack(moto_server, built, tmp_path, step)
    runtime, manifest_key = Runtime.build(settings), built[1]["prefix"] + "manifest.json"
    trigger = {"bucket": settings.names.bucket("forecast-input"), "manifest_key": manifest_key}

    def invoke(payload: dict) -> dict:
        if payload["step"] == step:
            raise RuntimeError(f"the {step} Lambda's worker died")  # not retryable: the run fails
        return dispatch(payload, runtime)

    status, failed = run_local(invoke, trigger, max_wait_seconds=0)
    assert status == "FAILED" and failed["error"]["Error"] == "RuntimeError"

    status, run = run_forecast(settings, manifest_key, runtime)  # the trigger again (a retry, or a new upload)
    assert status == "SUCCEEDED" and not run["duplicate"], run.get("error")
    assert _forecast(settings, run) == undisturbed
    record = runtime.dynamodb.get_item(TableName=settings.names.run_table, Key={"run_id": {"S": run["run_id"]}})
    assert record["Item"]["status"]["S"] == "SUCCEEDED"


def test_local_stack_killed_between_push_and_read_loses_and_repeats_nothing(data, tmp_path):
    """`demand push` into the local stack, the moto server SIGKILLed before the read, `demand local up` again: it
    replays its Kinesis journal, and `demand stream read` gets every pushed event once."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = tmp_path / "root"
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "DEMAND_ENDPOINT_URL")}
    env |= {"DEMAND_DATA_ROOT": str(root), "DEMAND_LOCAL_PORT": str(port), "DEMAND_PREFIX": "faultstack"}

    def demand(*args: str) -> dict:
        cli = [sys.executable, "-c", "from demand.cli import app; app()", *args]
        done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    events = tmp_path / "events.jsonl"
    sales = [e for e in data.events if e["event_type"] == "sale"]
    events.write_text("".join(json.dumps(e) + "\n" for e in sales))
    first = demand("local", "up", "--json")
    try:
        pushed = demand("push", str(events), "--quiet", "--json")
        assert pushed["rejected"] == 0 and pushed["sent"] == len(sales)
        os.kill(first["server"]["pid"], signal.SIGKILL)
        _wait(lambda: not _port_open(port), 30, "the killed server's port to close")
        again = demand("local", "up", "--json")
        assert again["started"] and again["server"]["pid"] != first["server"]["pid"]
        read = demand("stream", "read", "--json", "--out", str(tmp_path / "read.jsonl"))
        ids = [json.loads(line)["event_id"] for line in (tmp_path / "read.jsonl").read_text().splitlines()]
        assert sorted(ids) == sorted(e["event_id"] for e in sales)  # every record pushed, once
        assert read["duplicates"] == len(sales) - len({e["event_id"] for e in sales})  # the generator's own re-sends
    finally:
        demand("local", "down", "--reset", "--json")


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
