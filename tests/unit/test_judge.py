"""The Flink job's batch step (flink_jobs.judge.Judge) in plain Python: how a stream is cut into batches does not
change any verdict, and the batch step agrees with the sequential reference (accuracy.split_lines)."""

from __future__ import annotations

import json

import pytest

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
