"""Read a Kinesis stream back from the start of every shard: to check what the producer delivered."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from core import aws
from core.settings import Settings
from streaming.events import Rejection
from streaming.records import parse_record


@dataclass(frozen=True)
class StreamRecord:
    shard_id: str
    sequence_number: str
    partition_key: str
    data: bytes


def _shard_ids(kinesis, stream: str) -> list[str]:
    shards, token = [], None
    while True:
        resp = kinesis.list_shards(NextToken=token) if token else kinesis.list_shards(StreamName=stream)
        shards += [s["ShardId"] for s in resp["Shards"]]
        token = resp.get("NextToken")
        if not token:
            return shards


def iter_stream(
    settings: Settings, stream: str | None = None, *, kinesis=None, limit: int = 10_000
) -> Iterator[StreamRecord]:
    """Every record of every shard from TRIM_HORIZON until caught up (no records and 0 ms behind latest), one at a
    time (a stream of a million records is not held in memory)."""
    stream = stream or settings.names.sales_events_stream
    kinesis = kinesis or aws.client("kinesis", settings)
    for shard_id in _shard_ids(kinesis, stream):
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        while iterator:
            resp = kinesis.get_records(ShardIterator=iterator, Limit=limit)
            for r in resp["Records"]:
                yield StreamRecord(shard_id, r["SequenceNumber"], r["PartitionKey"], r["Data"])
            if not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0:
                break
            if not resp["Records"]:
                time.sleep(0.2)  # behind but empty: GetRecords allows 5 calls/s per shard
            iterator = resp.get("NextShardIterator")  # None once a closed shard is fully read


def read_stream(settings: Settings, stream: str | None = None, **kwargs) -> list[StreamRecord]:
    """iter_stream as a list (small streams, tests)."""
    return list(iter_stream(settings, stream, **kwargs))


def stream_counts(records: Iterable[StreamRecord]) -> dict[str, Any]:
    """Records, distinct event_ids, duplicates (records beyond the first per event_id), undecodable records."""
    ids: Counter = Counter()
    undecodable = total = 0
    shards: set[str] = set()
    for record in records:
        total += 1
        shards.add(record.shard_id)
        event = parse_record(record.data)
        if isinstance(event, Rejection):
            undecodable += 1
        else:
            ids[event["event_id"]] += 1
    return {
        "records": total,
        "distinct_event_ids": len(ids),
        "duplicates": sum(n - 1 for n in ids.values()),
        "undecodable": undecodable,
        "shards": len(shards),
    }
