"""Bench `api`: latency (p50/p99 ms) of GET /items/{id}/forecast under a bounded local load, uncached (query
layer in DuckDB + DynamoDB put) and cached (one DynamoDB BatchGetItem).

Everything runs as in production, on loopback: the local stack (moto server process, `demand local up`), the
API served by `demand serve` (uvicorn, its own process), and CLIENTS concurrent clients in this process, each
with its own keep-alive connection, sending a fixed total of requests (closed loop: a client sends its next
request when the last one is answered). The uncached pass asks for every item once; the cached pass then
cycles over the same items. The cached lines' baseline is the uncached figure of the same run.
"""

from __future__ import annotations

import logging
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

from bench.enrich import write_inputs
from bench.report import emit
from core.cache_generation import record_enriched_run
from core.settings import Settings
from glue_jobs.enrich_forecast import enrich_run
from glue_jobs.runtime import spark_session
from local_stack import stack as local_stack

CLIENTS = 8
PREFIX = "bench-api"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(settings: Settings, port: int, log: Path) -> subprocess.Popen:
    """`demand serve` on the bench's data root, prefix and moto server; returns once /health answers."""
    demand = Path(sys.executable).parent / "demand"
    args = [str(demand), "--prefix", settings.prefix, "--data-root", str(settings.data_root),
            "--endpoint-url", str(settings.endpoint_url), "serve", "--port", str(port)]  # fmt: skip
    with log.open("wb") as out:
        server = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"demand serve did not answer on port {port}: {log.read_text()[-2000:]}")
        time.sleep(0.2)


def _load(base_url: str, items: list[str], expect: str) -> tuple[np.ndarray, float]:
    """GET every item's forecast with CLIENTS concurrent clients; latencies (ms) and requests per second."""
    work: queue.SimpleQueue[str] = queue.SimpleQueue()
    for item in items:
        work.put(item)
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        mine = []
        with httpx.Client(base_url=base_url, timeout=60) as http:
            while True:
                try:
                    item = work.get_nowait()
                except queue.Empty:
                    break
                t0 = time.perf_counter()
                reply = http.get(f"/items/{item}/forecast")
                mine.append((time.perf_counter() - t0) * 1000)
                if reply.status_code != 200 or reply.json()["cache"] != expect:
                    errors.append(f"item {item}: expected a cache {expect}, got {reply.status_code} {reply.text[:200]}")
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(items)} requests failed; first: {errors[0]}")
    return np.array(times), len(items) / elapsed


@contextmanager
def serving(root: Path, prefix: str, spark, items: int | list[str]) -> Iterator[str]:
    """A local stack (moto server process) and `demand serve` on `root`, with an enriched run of `items`
    (bench.enrich.write_inputs) that the API cache was told of; yields the API's base URL, stops both after."""
    settings = Settings(data_root=root, prefix=prefix, local_port=_free_port())
    state, _, _ = local_stack.up(settings)
    server = None
    try:
        settings = settings.model_copy(update={"endpoint_url": state.endpoint})
        record_enriched_run(settings, enrich_run(spark, settings, write_inputs(settings, items))["run_id"])
        port = _free_port()
        server = _serve(settings, port, root / "serve.log")
        yield f"http://127.0.0.1:{port}"
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        local_stack.down(settings, reset=True)


def run(quick: bool, only: str | None) -> None:
    items, hits = (100, 400) if quick else (300, 1500)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    spark, _ = spark_session("bench_api")
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp, serving(Path(tmp), PREFIX, spark, items) as base_url:
        httpx.get(f"{base_url}/items/WARMUP/forecast", timeout=60)  # 404; first DuckDB and boto3 use
        ids = [f"SKU{i:05d}" for i in range(items)]
        miss, miss_rps = _load(base_url, ids, "miss")
        hit, hit_rps = _load(base_url, [ids[k % items] for k in range(hits)], "hit")
    load = {"clients": CLIENTS}
    for metric, q in (("p50_ms", 50), ("p99_ms", 99)):
        uncached = float(np.percentile(miss, q))
        emit("api", metric, uncached, "ms", None, cache="miss", requests=len(miss), rps=round(miss_rps, 1), **load)
        emit("api", metric, float(np.percentile(hit, q)), "ms", uncached, cache="hit", requests=len(hit),
             rps=round(hit_rps, 1), **load)  # fmt: skip
