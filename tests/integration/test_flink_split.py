"""The outlier split job on the PyFlink mini-cluster: generator data in, four outputs and counts out.

One Flink run serves most tests of this module (a run costs ~20 s of cluster start and checkpoints).
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from demand.cli import app
from flink_jobs.accuracy import promo_sale_ids, score, split_lines
from flink_jobs.outlier_split import JobConfig, count_outputs, file_job, read_outputs
from streaming.generator import GeneratorConfig, generate, write_dataset
from streaming.records import encode_event

BAD_LINES = [
    b"garbage{",
    b'{"event_type": "sale", "event_id": "\xff\xfe"}',
    b'{"event_type": "sale", "event_id": "x1"}',
    b'{"event_type": "refund", "schema_version": 1}',
    json.dumps(
        {
            "data": {},
            "metadata": {
                "timestamp": "2024-01-01T00:00:00Z",
                "record-type": "control",
                "operation": "create-table",
                "table-name": "sales",
            },
        }
    ).encode(),
]


@pytest.fixture(scope="module")
def data():
    return generate(GeneratorConfig(seed=7, stores=3, items=40, days=364, anomaly_rate=0.01))


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    """`demand flink run` once on the generator's events with bad lines mixed in; (out dir, counts)."""
    base = tmp_path_factory.mktemp("flink_split")
    events, _ = write_dataset(data, base / "data")
    lines = events.read_bytes().splitlines()
    for k, bad in enumerate(BAD_LINES):
        lines.insert(1000 * (k + 1), bad)
    source = base / "input.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    out = base / "out"
    result = CliRunner().invoke(app, ["flink", "run", "--input", str(source), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout.strip().splitlines()[-1])


def test_counts_add_up_and_duplicates_are_dropped(data, run):
    out, counts = run
    assert counts["input"] == len(data.events) + len(BAD_LINES)
    assert (
        counts["clean"] + counts["outliers"] + counts["rejected"] + counts["duplicates"] + counts["reference"]
        == (counts["input"])
    )
    assert counts["duplicates"] == sum(lab.expected == "duplicate" for lab in data.labels)
    assert json.loads((out / "counts.json").read_text())["accounted"] == counts["input"]


def test_outliers_are_found_and_promotions_left_alone(data, run):
    out, _ = run
    outliers = [json.loads(line) for line in read_outputs(out, "outliers")]
    accuracy = score(data.labels, [o["event_id"] for o in outliers], promo_sale_ids(data.events))
    assert accuracy.precision >= 0.9 and accuracy.recall >= 0.9, accuracy
    assert accuracy.promo_false_positive_rate <= 0.01, accuracy
    assert all(o["outlier_reason"] and o["detector"] for o in outliers)


def test_flink_job_agrees_with_the_plain_python_detector(data, run):
    out, _ = run
    reference = split_lines(encode_event(e) for e in data.events)
    flagged = {json.loads(line)["event_id"] for line in read_outputs(out, "outliers")}
    assert flagged == {o["event_id"] for o in reference.outliers}


def test_bad_input_is_rejected_with_a_reason(run):
    out, counts = run
    rejected = [json.loads(line) for line in read_outputs(out, "rejected")]
    assert counts["rejected"] == len(BAD_LINES)
    codes = {r["error_code"] for r in rejected}
    assert codes == {"invalid_json", "not_utf8", "missing_field", "unknown_event_type", "dms_control_record"}
    (not_utf8,) = (r for r in rejected if r["error_code"] == "not_utf8")  # kept byte for byte
    assert not_utf8["raw_encoding"] == "base64" and base64.b64decode(not_utf8["raw"]) == BAD_LINES[1]
    assert all(r["error"] and r["source"].endswith("input.jsonl") for r in rejected)


def test_reference_events_are_kept(data, run):
    out, counts = run
    assert counts["reference"] == sum(e["event_type"] != "sale" for e in data.events)


# --- recovery -------------------------------------------------------------------------------------
def _latest_checkpoint(root: Path) -> Path | None:
    done = [p.parent for p in root.glob("*/chk-*/_metadata")]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


@pytest.mark.slow
def test_restart_from_checkpoint_loses_and_repeats_nothing(data, tmp_path):
    """Follow a directory, cancel after a checkpoint, add more input, restart from the checkpoint."""
    lines = [encode_event(e) for e in data.events[:6000]]
    inbox, out, checkpoints = tmp_path / "inbox", tmp_path / "out", tmp_path / "checkpoints"
    inbox.mkdir()
    (inbox / "a.jsonl").write_bytes(b"\n".join(lines[:3000]) + b"\n")
    config = JobConfig(checkpoint_dir=str(checkpoints), checkpoint_interval_ms=1000)
    first = file_job(str(inbox), str(out), config, follow=True).execute_async("outlier-split-1")
    # Cancel mid-file: some records committed by a checkpoint, the rest in flight or not yet read.
    _wait(lambda: sum(count_outputs(out).values()) >= 500, 120, "a checkpoint to commit the first records")
    first.cancel().result()
    checkpoint = _latest_checkpoint(checkpoints)
    assert checkpoint is not None

    (inbox / "b.jsonl").write_bytes(b"\n".join(lines[3000:]) + b"\n")
    restored = JobConfig(checkpoint_dir=str(checkpoints), checkpoint_interval_ms=1000, restore_from=str(checkpoint))
    second = file_job(str(inbox), str(out), restored, follow=True).execute_async("outlier-split-2")
    try:
        _wait(lambda: sum(count_outputs(out).values()) >= 6000, 120, "all records to be committed")
        time.sleep(3)  # one more checkpoint: anything repeated would show up now
    finally:
        second.cancel().result()

    expected = split_lines(lines)
    clean = [json.loads(line)["event_id"] for line in read_outputs(out, "clean")]
    outliers = [json.loads(line)["event_id"] for line in read_outputs(out, "outliers")]
    assert len(clean) == len(set(clean)) and len(outliers) == len(set(outliers))
    assert set(clean) == {s["event_id"] for s in expected.clean}
    assert set(outliers) == {o["event_id"] for o in expected.outliers}
    assert count_outputs(out)["duplicates"] == expected.duplicates


@pytest.mark.slow
def test_parallel_run_partitions_by_item_and_gives_the_same_split(data, tmp_path):
    """Two parallel detector instances: each item's state lives on one of them, so the split is the same."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(encode_event(e) for e in data.events[:8000]) + b"\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["flink", "run", "--input", str(events), "--out", str(out), "--parallelism", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    expected = split_lines(encode_event(e) for e in data.events[:8000])
    assert counts["accounted"] == counts["input"] == 8000
    assert {json.loads(line)["event_id"] for line in read_outputs(out, "outliers")} == {
        o["event_id"] for o in expected.outliers
    }
    assert counts["duplicates"] == expected.duplicates
    assert len(list((out / "clean").glob("part*"))) >= 2  # both instances wrote


def test_blocks_become_one_element_per_record_for_kinesis_sinks():
    """What the AWS sinks get: the job's blocks of lines split back into records (SplitLines, in the JVM)."""
    from pyflink.common import Types

    from flink_jobs.outlier_split import environment, one_per_record

    env = environment(JobConfig())
    blocks = env.from_collection(['{"a":1}\n{"b":2}', '{"c":3}', "x\n\ny"], type_info=Types.STRING())
    with one_per_record(blocks).execute_and_collect() as records:
        assert sorted(records) == sorted(['{"a":1}', '{"b":2}', '{"c":3}', "x", "y"])


def test_an_item_has_one_bucket_however_its_producer_wrote_it():
    """The JVM's ItemBucket: escaped and raw ids, direct events and DMS envelopes of one item share a bucket."""
    from pyflink.table import StreamTableEnvironment

    from flink_jobs.outlier_split import BUCKETS, environment

    tenv = StreamTableEnvironment.create(environment(JobConfig()))
    tenv.create_java_temporary_system_function("ITEM_BUCKET", "demand.flink.ItemBucket")
    lines = [
        '{"event_type":"sale","item_id":"café-1"}',
        '{"event_type": "sale", "item_id" : "caf\\u00e9-1"}',
        '{"metadata":{"operation":"insert"},"data":{"item_id":"caf\\u00e9\\u002d1"}}',
        '{"name":"item_id","item_id":"café-1"}',  # the word as a value is not the member
        '{"event_type":"sale"}',
        "not json",
    ]
    rows = ", ".join("('" + line.replace("'", "''") + "')" for line in lines)
    result = tenv.sql_query(f"SELECT ITEM_BUCKET(line, {BUCKETS}) FROM (VALUES {rows}) AS t(line)").execute()
    with result.collect() as collected:
        buckets = [row[0] for row in collected]
    assert buckets[:4] == ["133"] * 4  # String.hashCode("café-1") mod 256: fixed by the Java spec
    assert buckets[4] == buckets[5] == "0"  # no item_id: the bucket of ""
    assert all(0 <= int(b) < BUCKETS for b in buckets)


def test_a_batch_for_python_is_cut_by_bytes_as_well_as_by_lines():
    """The MicroBatcher sends a bucket's batch at batch_records lines or batch_bytes bytes: a burst of large records
    goes to Python in bounded batches, and no line is lost or repeated."""
    from pyflink.datastream import DataStream
    from pyflink.table import StreamTableEnvironment

    from flink_jobs.outlier_split import environment, micro_batches

    config = JobConfig(batch_records=1000, batch_bytes=25_000, batch_ms=60_000)
    tenv = StreamTableEnvironment.create(environment(config))
    lines = [json.dumps({"item_id": "big", "n": n, "pad": "x" * 10_000}) for n in range(40)]
    rows = ", ".join(f"('{line}')" for line in lines)
    tenv.create_temporary_view("big_lines", tenv.sql_query(
        "SELECT CAST(l AS BYTES) AS line, CAST(NULL AS STRING) AS shard_id, CAST(NULL AS STRING) AS sequence_number "
        f"FROM (VALUES {rows}) AS t(l)"
    ))  # fmt: skip
    batches, _ = micro_batches(tenv, "big_lines", config)
    with DataStream(batches).execute_and_collect() as collected:
        batched = [[json.loads(bytes(line)) for line in row[1][0]] for row in collected]
    assert [line["n"] for batch in batched for line in batch] == list(range(40))  # each once, in arrival order
    sizes = [[len(json.dumps(line)) for line in batch] for batch in batched]
    assert max(len(s) for s in sizes) == 3  # 3 lines of 10 KB pass 25,000 bytes; 1,000 lines never came
    assert all(sum(s) < 25_000 + 10_100 for s in sizes)
