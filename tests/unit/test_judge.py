"""The Flink job's batch step (flink_jobs.judge.Judge) in plain Python: how a stream is cut into batches does not
change any verdict, and the batch step agrees with the sequential reference (accuracy.split_lines)."""

from __future__ import annotations

import json

import pytest
from factories import sale

from flink_jobs.accuracy import split_lines
from flink_jobs.detector import Detector
from flink_jobs.judge import OUTPUTS, Judge
from streaming.generator import GeneratorConfig, generate
from streaming.records import encode_event

BAD = [b"not json", b'{"event_type": "sale"}', b"\xff\xfe"]


@pytest.fixture(scope="module")
def lines():
    data = generate(GeneratorConfig(seed=3, stores=2, items=8, days=120, anomaly_rate=0.02))
    lines = [encode_event(e) for e in data.events]
    for k, bad in enumerate(BAD):
        lines.insert(300 * (k + 1), bad)
    return lines


def judge_in_batches(lines: list[bytes], size: int) -> dict[str, list[bytes]]:
    judge, store = Judge(Detector(), "memory"), {}
    outputs: dict[str, list[bytes]] = {name: [] for name in OUTPUTS}
    for start in range(0, len(lines), size):
        batch = lines[start : start + size]
        out, states = judge(batch, ["shard-1"] * len(batch), [str(start + i) for i in range(len(batch))], store.get)
        store.update(states)
        for name, records in out.items():
            outputs[name] += records
    return outputs


@pytest.mark.parametrize("size", [1, 7, 1000])
def test_batches_give_the_sequential_verdicts(lines, size):
    reference = split_lines(lines)
    got = judge_in_batches(lines, size)
    assert [json.loads(r) for r in got["clean"]] == reference.clean
    assert [json.loads(r) for r in got["outliers"]] == reference.outliers
    assert [json.loads(r) for r in got["reference"]] == reference.reference
    assert len(got["duplicates"]) == reference.duplicates > 0
    rejected = [json.loads(r) for r in got["rejected"]]
    assert [r["error_code"] for r in rejected] == [r["error_code"] for r in reference.rejected]
    assert all(r["shard_id"] == "shard-1" and r["source"] == "memory" for r in rejected)
    assert sum(len(v) for v in got.values()) == len(lines)


def test_rejected_records_name_their_position(lines):
    rejected = [json.loads(r) for r in judge_in_batches(lines, 64)["rejected"]]
    assert [int(r["sequence_number"]) for r in rejected] == [300 * (k + 1) for k in range(len(BAD))]
    assert {r["error_code"] for r in rejected} == {"invalid_json", "missing_field", "not_utf8"}


def _sale(event_id: str, when: str) -> bytes:
    return encode_event(sale(event_id, when, "i1", 2))


def test_a_far_future_event_time_is_rejected_and_does_not_switch_off_duplicate_detection():
    judge, store = Judge(Detector(), "memory", clock=lambda: 1_700_000_000.0), {}  # 2023-11-14T22:13Z
    lines = [
        _sale("a", "2023-11-14T10:00:00.000Z"),
        _sale("future", "9999-12-31T00:00:00.000Z"),
        _sale("soon", "2023-11-15T05:00:00.000Z"),  # ahead of the clock, within the slack: no error
        _sale("a", "2023-11-14T10:00:00.000Z"),  # the first sale sent again
    ]
    out, _ = judge(lines, [None] * 4, [str(i) for i in range(4)], store.get)
    rejected = [json.loads(r) for r in out["rejected"]]
    assert [r["error_code"] for r in rejected] == ["event_time_in_future"]
    assert "9999-12-31" in rejected[0]["error"] and "24 h" in rejected[0]["error"]
    assert out["duplicates"] == [b"a"]
    assert [json.loads(r)["event_id"] for r in out["clean"]] == ["a", "soon"]


def test_the_duplicate_map_of_an_item_is_capped():
    judge, store = Judge(Detector(dedup_max_ids=3), "memory", clock=lambda: 1_700_000_000.0), {}
    lines = [_sale(f"e{i}", f"2023-11-14T10:00:0{i}.000Z") for i in range(6)]
    _, states = judge(lines, [None] * 6, [None] * 6, store.get)
    assert list(states["i1"].seen) == ["e3", "e4", "e5"]


def test_the_aws_job_routes_every_reference_record_to_its_table_by_its_event_type(lines):
    """On AWS the reference output is split into the products and campaigns streams by a filter on the Judge's JSON
    lines: every reference record passes exactly one, the one of its event type."""
    from flink_jobs.outlier_split import is_event_type
    from flink_jobs.properties import AWS_SINKS

    reference = [r.decode() for r in judge_in_batches(lines, 500)["reference"]]
    filters = {table: is_event_type(kind) for output, kind, table in AWS_SINKS.values() if output == "reference"}
    assert set(filters) == {"products", "campaigns"}
    for line in reference:
        passed = [table for table, keep in filters.items() if keep(line)]
        assert passed == [json.loads(line)["event_type"] + "s"], line
    assert {json.loads(line)["event_type"] for line in reference} == {"product", "campaign"}
