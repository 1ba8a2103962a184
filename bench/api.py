"""Bench `api`: latency (p50/p99 ms) of GET /items/{id}/forecast, uncached (query layer + DynamoDB put) and
cached (DynamoDB get), in-process over httpx against the app, its cache on a moto server on loopback.

The load is bounded and sequential (one client): each uncached request asks for a different item, then the
cached requests cycle over the same items. The cached line's baseline is the uncached figure.
"""

from __future__ import annotations

import logging
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from api.app import create_app
from bench.enrich import write_inputs
from bench.report import emit
from demand.settings import Settings
from glue_jobs.enrich_forecast import enrich_run
from glue_jobs.runtime import spark_session
from streaming.local_stack import ensure_resources


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _timed(client: TestClient, items: list[str], expect: str) -> list[float]:
    times = []
    for item in items:
        t0 = time.perf_counter()
        reply = client.get(f"/items/{item}/forecast")
        times.append((time.perf_counter() - t0) * 1000)
        if reply.status_code != 200 or reply.json()["cache"] != expect:
            raise RuntimeError(f"item {item}: expected a cache {expect}, got {reply.status_code} {reply.text[:200]}")
    return times


def run(quick: bool, only: str | None) -> None:
    from moto.server import ThreadedMotoServer

    items, hits = (100, 400) if quick else (300, 1500)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
            settings = Settings(data_root=Path(tmp), endpoint_url=f"http://127.0.0.1:{port}", prefix="bench-api")
            ensure_resources(settings)
            key = write_inputs(settings, items)
            spark, _ = spark_session("bench_api")
            enrich_run(spark, settings, key)
            ids = [f"SKU{i:05d}" for i in range(items)]
            client = TestClient(create_app(settings))
            client.get("/health")  # warm-up: app start, first boto3 connection
            miss = np.array(_timed(client, ids, "miss"))
            hit = np.array(_timed(client, [ids[k % items] for k in range(hits)], "hit"))
    finally:
        moto.stop()
    for metric, q in (("p50_ms", 50), ("p99_ms", 99)):
        uncached = float(np.percentile(miss, q))
        emit("api", metric, uncached, "ms", baseline=None, cache="miss", requests=len(miss))
        emit("api", metric, float(np.percentile(hit, q)), "ms", baseline=uncached, cache="hit", requests=len(hit))
