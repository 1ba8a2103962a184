"""The producer against a real moto server: everything pushed is read back once, bad input is rejected."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from core import aws
from local_stack.stack import ensure_resources
from streaming.generator import GeneratorConfig, generate
from streaming.producer import MAX_RECORD_BYTES, Backoff, push_events, push_file
from streaming.records import parse_record
from streaming.stream_reader import read_stream, stream_counts

FAST = Backoff(attempts=6, base=0.001, cap=0.01)


@pytest.fixture(scope="module")
def events() -> list[bytes]:
    data = generate(GeneratorConfig(seed=7, stores=2, items=20, days=182, anomaly_rate=0.01))
    raw = [json.dumps(e, separators=(",", ":")).encode() for e in data.events]
    assert 1500 <= len(raw) <= 4000
    return raw


def _ids(records: list[bytes]) -> Counter:
    return Counter(parse_record(r)["event_id"] for r in records)


def test_every_event_is_read_back_once(settings, events, tmp_path):
    ensure_resources(settings)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(events) + b"\n")

    summary = push_file(path, settings)

    assert (summary.read, summary.sent, summary.rejected, summary.retried) == (len(events), len(events), 0, 0)
    assert summary.batches == -(-len(events) // 500)
    back = read_stream(settings)
    # The generator injects `duplicate` anomalies (the same event_id twice): the stream holds exactly the input.
    assert _ids([r.data for r in back]) == _ids(events)
    assert sorted(r.data for r in back) == sorted(events)  # sent as received, byte for byte
    assert stream_counts(back)["shards"] == settings.stream_shards
    # one item in one store stays on one shard (ordering)
    shards_by_key: dict[str, set] = {}
    for r in back:
        shards_by_key.setdefault(r.partition_key, set()).add(r.shard_id)
    assert all(len(s) == 1 for s in shards_by_key.values())


class _FlakyPutRecords:
    """Withholds every third entry from the first `failing_calls` PutRecords requests and reports those
    entries as throttled in the response, as Kinesis does for a partially failed batch."""

    def __init__(self, client, failing_calls: int, code: str = "ProvisionedThroughputExceededException"):
        self.failing_calls, self.code, self.calls, self.withheld = failing_calls, code, 0, 0
        client.meta.events.register("provide-client-params.kinesis.PutRecords", self.before)
        client.meta.events.register("after-call.kinesis.PutRecords", self.after)

    def before(self, params, context, **_):
        self.calls += 1
        if self.calls > self.failing_calls:
            return
        records = params["Records"]
        failed = set(range(0, len(records), 3))
        context["withheld"] = (len(records), failed)
        params["Records"] = [r for i, r in enumerate(records) if i not in failed]
        self.withheld += len(failed)

    def after(self, parsed, context, **_):
        if "withheld" not in context:
            return
        total, failed = context.pop("withheld")
        delivered = iter(parsed["Records"])
        parsed["Records"] = [
            {"ErrorCode": self.code, "ErrorMessage": "Rate exceeded for shard (injected)"}
            if i in failed
            else next(delivered)
            for i in range(total)
        ]
        parsed["FailedRecordCount"] = parsed.get("FailedRecordCount", 0) + len(failed)


def test_partially_failed_batches_are_retried_until_delivered_once(settings, events):
    ensure_resources(settings)
    kinesis = aws.client("kinesis", settings)
    flaky = _FlakyPutRecords(kinesis, failing_calls=4)

    summary = push_events(events, settings, kinesis=kinesis, backoff=FAST)

    assert flaky.withheld > 0
    assert summary.retried >= flaky.withheld
    assert (summary.sent, summary.rejected) == (len(events), 0)
    assert _ids([r.data for r in read_stream(settings)]) == _ids(events)


def test_records_failing_on_every_attempt_are_rejected_with_reason(settings, events, tmp_path):
    ensure_resources(settings)
    kinesis = aws.client("kinesis", settings)
    _FlakyPutRecords(kinesis, failing_calls=10_000, code="InternalFailure")
    rejected = tmp_path / "rejected.jsonl"
    sample = events[:30]

    summary = push_events(
        sample, settings, kinesis=kinesis, backoff=Backoff(attempts=3, base=0.001, cap=0.01), rejected_path=rejected
    )

    rows = [json.loads(line) for line in rejected.read_text().splitlines()]
    # every third entry of every attempt is withheld: 10 fail on the 1st, 4 of those on the 2nd, 2 on the 3rd
    assert summary.rejected == len(rows) == 2
    assert {r["error_code"] for r in rows} == {"put_failed"}
    assert "InternalFailure" in rows[0]["error"] and "3 attempts" in rows[0]["error"]
    assert summary.sent + summary.rejected == summary.read == 30
    assert len(read_stream(settings)) == summary.sent


def test_invalid_records_end_in_the_rejected_file(settings, events, tmp_path):
    ensure_resources(settings)
    good = [json.loads(e) for e in events[:50]]
    sale = next(e for e in good if e["event_type"] == "sale")
    missing_field = {k: v for k, v in sale.items() if k != "store_id"} | {"event_id": "bad-1"}
    negative_price = sale | {"event_id": "bad-2", "unit_price": -1.0}
    product = next(e for e in good if e["event_type"] == "product")
    too_large = product | {"event_id": "bad-3", "name": "x" * MAX_RECORD_BYTES}  # valid, but over 1 MiB
    bad = [
        b'{"event_type": "sale", ',
        json.dumps(missing_field).encode(),
        json.dumps(negative_price).encode(),
        b"\xff\xfe not utf-8",
        json.dumps(too_large).encode(),
    ]
    lines = [json.dumps(e).encode() for e in good] + bad
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    summary = push_file(path, settings)

    rows = [json.loads(line) for line in (tmp_path / "mixed.rejected.jsonl").read_text().splitlines()]
    assert summary.sent + summary.rejected == summary.read == len(lines)
    assert summary.sent == len(good) and summary.rejected == len(bad) == len(rows)
    codes = [r["error_code"] for r in rows]
    assert codes[0] == "invalid_json" and codes[3] == "not_utf8" and codes[4] == "record_too_large"
    assert all(r["error"] and r["source"] == str(path) for r in rows)
    assert rows[3]["raw_encoding"] == "base64"
    assert "store_id" in rows[1]["error"] and "unit_price" in rows[2]["error"]
    assert len(read_stream(settings)) == len(good)


def test_cli_push_and_read_back(settings, events, tmp_path):
    from typer.testing import CliRunner

    from demand.cli import app

    ensure_resources(settings)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(events[:700]) + b"\nnot json\n")
    base = ["--endpoint-url", settings.endpoint_url, "--prefix", settings.prefix, "--data-root", str(tmp_path)]

    pushed = CliRunner().invoke(app, [*base, "push", str(path), "--json"])
    assert pushed.exit_code == 0, pushed.output
    summary = json.loads(pushed.stdout)
    assert (summary["read"], summary["sent"], summary["rejected"], summary["batches"]) == (701, 700, 1, 2)
    assert summary["rejected_by_code"] == {"invalid_json": 1}

    read = CliRunner().invoke(app, [*base, "stream", "read", "--json", "--out", str(tmp_path / "back.jsonl")])
    assert read.exit_code == 0, read.output
    counts = json.loads(read.stdout)
    assert counts["records"] == 700 and counts["distinct_event_ids"] + counts["duplicates"] == 700
    assert len((tmp_path / "back.jsonl").read_bytes().splitlines()) == 700

    missing = CliRunner().invoke(app, [*base, "push", str(path), "--stream", "no-such-stream"])
    assert missing.exit_code == 1 and "no-such-stream" in missing.output


def test_rate_limit_spaces_events_after_the_burst():
    from streaming.producer import TokenBucket

    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(100, clock=lambda: now[0], sleep=sleep)
    for _ in range(300):
        bucket.take()
    # a one-second burst of 100, then 200 more at 100/s: two seconds of waiting
    assert now[0] == pytest.approx(2.0, rel=0.01)
