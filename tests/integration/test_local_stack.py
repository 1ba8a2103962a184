"""`demand local up|status|down` on a free port and a temporary data root, through the CLI."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlparse

import pytest
from typer.testing import CliRunner

from core.settings import ResourceNames, Settings
from demand.cli import app
from local_stack import stack as local_stack


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def stack(tmp_path, monkeypatch):
    """CLI arguments for a stack of this test's own; whatever `up` started is stopped afterwards."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("DEMAND_ENDPOINT_URL", raising=False)
    args = ["--data-root", str(tmp_path), "--port", str(_free_port()), "--prefix", "stacktest"]
    yield args
    CliRunner().invoke(app, [*args, "local", "down"])


def _run(*args: str) -> dict:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_up_creates_everything_once_and_down_stops_the_server(stack, tmp_path):
    port = int(stack[3])

    first = _run(*stack, "local", "up")
    assert first["started"] and local_stack.port_open(port)
    assert len(first["created"]["streams"]) == 6 and len(first["created"]["tables"]) == 4  # the streams AWS has
    assert len(first["created"]["buckets"]) == 7
    again = _run(*stack, "local", "up")
    assert not again["started"] and again["server"]["pid"] == first["server"]["pid"]
    assert all(created == [] for created in again["created"].values())
    assert again["env"]["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{port}"

    status = _run(*stack, "local", "status")
    assert status["server"]["running"]
    assert status["streams"] == {name: {"status": "ACTIVE", "shards": 2} for name in ResourceNames("stacktest").streams}
    assert set(status["tables"].values()) == {"ACTIVE"} and len(status["tables"]) == 4
    assert status["topic"].endswith(":stacktest-forecast-notifications")
    assert status["glue_database"] == "stacktest"
    assert all(status["buckets"].values()) and (tmp_path / "stacktest-staged").is_dir()

    down = _run(*stack, "local", "down")
    assert down["stopped"]["pid"] == first["server"]["pid"]
    assert not local_stack.port_open(port)
    assert not (tmp_path / local_stack.STATE_FILE).exists()
    assert _run(*stack, "local", "down") == {"stopped": None}


def test_up_refuses_a_port_it_did_not_start(moto_server, tmp_path):
    taken = str(urlparse(moto_server).port)
    result = CliRunner().invoke(app, ["--data-root", str(tmp_path), "--port", taken, "local", "up"])
    assert result.exit_code == 1
    assert f"port {taken}" in result.output and "did not start" in result.output
    assert local_stack.port_open(int(taken))  # the other server is untouched


def test_ensure_resources_is_idempotent_on_any_endpoint(settings):
    created = local_stack.ensure_resources(settings)
    assert sorted(created["streams"]) == sorted(settings.names.streams)
    assert sorted(created["tables"]) == sorted(settings.names.tables)
    assert local_stack.ensure_resources(settings) == {k: [] for k in created}


def test_a_killed_local_stack_comes_back_with_every_pushed_record_under_its_sequence_number(stack, tmp_path):
    """The moto server killed (SIGKILL) between a push and the read: `up` again replays the Kinesis journal, and the
    stream holds every record pushed, once, under the sequence numbers the push got; `down --reset` forgets them."""
    import os
    import signal

    from core import aws

    first = _run(*stack, "local", "up")
    settings = Settings(data_root=tmp_path, prefix="stacktest", endpoint_url=first["server"]["endpoint"])
    kinesis = aws.client("kinesis", settings)
    stream = settings.names.sales_events_stream
    pushed = {}
    for batch in range(3):
        records = [{"Data": f"event {batch}-{i}".encode(), "PartitionKey": f"item-{i % 7}"} for i in range(400)]
        answer = kinesis.put_records(StreamName=stream, Records=records)
        pushed |= {
            (r["ShardId"], r["SequenceNumber"]): rec["Data"] for r, rec in zip(answer["Records"], records, strict=True)
        }

    os.kill(first["server"]["pid"], signal.SIGKILL)
    for _ in range(100):
        if not local_stack.port_open(first["server"]["port"]):
            break
        time.sleep(0.1)
    again = _run(*stack, "local", "up")
    assert again["started"] and again["server"]["pid"] != first["server"]["pid"]
    assert again["created"]["streams"] == []  # the journal brought them back; DynamoDB's tables are made anew

    def read_all() -> dict[tuple[str, str], bytes]:
        kinesis = aws.client("kinesis", settings.model_copy(update={"endpoint_url": again["server"]["endpoint"]}))
        found = {}
        for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
            iterator = kinesis.get_shard_iterator(
                StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
                found |= {(shard["ShardId"], r["SequenceNumber"]): r["Data"] for r in page["Records"]}
                iterator = page.get("NextShardIterator") if page["Records"] else None
        return found

    assert read_all() == pushed

    _run(*stack, "local", "down", "--reset")
    _run(*stack, "local", "up")
    assert read_all() == {}
