"""Producer throughput: PutRecords batches (500 records/call) vs one put_record call per event.

Both push the same generated events (the baseline: the first 5,000 of them on the full run) to the same
moto server (in-process, free port) in this process.
"""

from __future__ import annotations

import logging
import socket
import tempfile
import time
from pathlib import Path

from bench.report import emit
from core import aws
from core.settings import Settings
from streaming.events import Rejection
from streaming.generator import GeneratorConfig, generate
from streaming.producer import partition_key, push_events
from streaming.records import encode_event, parse_record
from streaming.stream_reader import read_stream


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _naive(records: list[bytes], settings: Settings, stream: str) -> float:
    """The baseline: one PutRecord call per event, no batching. Returns seconds."""
    kinesis = aws.client("kinesis", settings)
    started = time.perf_counter()
    for raw in records:
        event = parse_record(raw)  # the same validation work as the batched producer
        assert not isinstance(event, Rejection), event
        kinesis.put_record(StreamName=stream, Data=raw, PartitionKey=partition_key(event))
    return time.perf_counter() - started


def run(quick: bool, only: str | None = None) -> None:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    config = GeneratorConfig(seed=7, stores=2, items=20, days=182) if quick else GeneratorConfig(seed=7)
    events = generate(config).events
    if quick:
        events = events[:2000]
    records = [encode_event(e) for e in events]

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        with tempfile.TemporaryDirectory() as root:
            settings = Settings(endpoint_url=f"http://127.0.0.1:{port}", data_root=Path(root), prefix="bench")
            kinesis = aws.client("kinesis", settings)
            # Every run writes to a fresh stream of its own: moto slows down as a stream fills up.
            streams = [f"bench-batched-{i}" for i in range(3)] + ["bench-naive"]
            for stream in streams:
                kinesis.create_stream(StreamName=stream, ShardCount=settings.stream_shards)
                kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1})
            # The batched run is short (a few calls): the median of three runs steadies it on a busy machine.
            runs = [push_events(records, settings, stream=stream) for stream in streams[:3]]
            summary = sorted(runs, key=lambda r: r.events_per_s)[1]
            # The baseline's cost per event is constant (one HTTP call each): on the full data set it is
            # timed on the first 5,000 events, so `make bench` does not spend minutes on the slow path.
            naive_records = records if quick else records[:5000]
            naive_s = _naive(naive_records, settings, streams[3])
            delivered = len(read_stream(settings, summary.stream))
            if any(r.sent != len(records) for r in runs) or delivered != len(records):
                raise RuntimeError(f"batched producer delivered {delivered} of {len(records)} events")
    finally:
        server.stop()
    emit(
        "producer",
        "events_per_s",
        summary.events_per_s,
        "events/s",
        baseline=len(naive_records) / naive_s,
        events=len(records),
        baseline_events=len(naive_records),
        batches=summary.batches,
        target="moto",
    )
