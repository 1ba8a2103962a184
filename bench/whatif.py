"""Bench `whatif`: latency (p50/p99 ms) of one-item what-if scenarios through POST /whatif, against the plain
forecast request (GET /items/{id}/forecast, uncached) of the same items in the same run; on generator data (weekly,
8 periods) and on the real year (daily, the 200 best sellers, 28 days).

As in production, on loopback: the local stack (moto server process), `demand serve` (uvicorn, its own process) and
one client in this process asking one request at a time (an analyst changing a price and waiting for the answer).
The run's scenario model is the forecast step's (the global model fitted once); its run id is the enriched run's, so
the API scores scenarios on it. Each scenario changes one item: a price factor between 0.8 and 1.2 or a promotion
at 20 % off, alternately. The first what-if of the server (it loads the model) is left out. Each line also carries
the pooled answer to a 10 % cut of every price.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from api.app import ID_PATTERN
from bench.api import serving
from bench.forecast import DAYS, holdout, weekly_demand
from bench.online_retail import daily_inputs, sales_lines
from bench.report import emit
from core.object_store import LocalObjectStore
from core.settings import Settings
from forecast_orchestrator.ensemble import EnsembleConfig, EnsembleModel, complete_selection
from forecast_orchestrator.series import ForecastInputs
from forecast_orchestrator.whatif import build_model
from glue_jobs.runtime import spark_session
from streaming.generator import GeneratorConfig

PREFIX = "bench-whatif"


def _inputs(dataset: str, quick: bool) -> ForecastInputs:
    if dataset == "generator":
        items = 40 if quick else 200
        return holdout(*weekly_demand(GeneratorConfig(seed=5, stores=1, items=items, days=DAYS)))[0]
    lines = sales_lines()
    return daily_inputs(lines, top=100 if quick else 200)[0]


def _scenario_model(settings: Settings, inputs: ForecastInputs) -> list[str]:
    """Train the global model, forecast, keep its scenario model as run `bench`; returns the series ids."""
    model = EnsembleModel(EnsembleConfig(models=("LightGBM",), backtest_windows=1))
    trained = model.train(inputs)
    kept: list = []
    model.forecast(inputs, trained, keep=kept.append)
    selection = complete_selection(trained.selection, inputs.target["unique_id"].unique())
    scenario = build_model("bench", inputs.frequency, inputs.horizon, kept[0], inputs.future(), inputs.metadata,
                           selection)  # fmt: skip
    scenario.save(LocalObjectStore(settings.data_root), settings.names.bucket("forecast-export"))
    return [i for i in scenario.series["unique_id"] if re.match(ID_PATTERN, i)]


def _timed(http: httpx.Client, method: str, path: str, body: dict | None = None) -> float:
    t0 = time.perf_counter()
    reply = http.request(method, path, json=body)
    elapsed = (time.perf_counter() - t0) * 1000
    if reply.status_code != 200:
        raise RuntimeError(f"{method} {path}: {reply.status_code} {reply.text[:300]}")
    return elapsed


def _measure(root: Path, inputs: ForecastInputs, spark) -> tuple[list[float], list[float], dict]:
    """(plain forecast request latencies, one-item what-if latencies, the pooled answer to a 10 % cut of every
    price) on a local stack and `demand serve` of their own."""
    rng = np.random.default_rng(7)
    ids = _scenario_model(Settings(data_root=root, prefix=PREFIX), inputs)
    with serving(root, PREFIX, spark, ids) as base_url, httpx.Client(base_url=base_url, timeout=300) as http:
        _timed(http, "POST", "/whatif", {"changes": [{"items": [ids[0]], "price_factor": 0.9}]})  # loads it
        plain = [_timed(http, "GET", f"/items/{item}/forecast") for item in ids]
        scenarios = []
        for k, item in enumerate(ids):
            change = {"items": [item], "price_factor": round(float(rng.uniform(0.8, 1.2)), 3)}
            if k % 2:
                change = {"items": [item], "promotion": True, "discount": 0.2}
            scenarios.append(_timed(http, "POST", "/whatif", {"changes": [change]}))
        pooled = http.post("/whatif", json={"changes": [{"price_factor": 0.9}]}).json()
    changes = [s["totals"]["units_change"] for s in pooled["series"] if s["totals"]["units_change"] is not None]
    answer = {"price_cut_10pct_units_change": pooled["total"]["units_change"],
              "series_raised_share": round(float(np.mean([c >= 0 for c in changes])), 4),
              "model_elasticity": pooled["model_elasticity"], "warned": bool(pooled["warnings"])}  # fmt: skip
    return plain, scenarios, answer


def run(quick: bool, only: str | None) -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    spark, _ = spark_session("bench_whatif")
    for dataset in ("generator", "online_retail"):
        inputs = _inputs(dataset, quick)
        with tempfile.TemporaryDirectory(prefix="bench-whatif-") as tmp:
            plain, scenarios, answer = _measure(Path(tmp), inputs, spark)
        for metric, q in (("p50_ms", 50), ("p99_ms", 99)):
            emit("whatif", metric, float(np.percentile(scenarios, q)), "ms", float(np.percentile(plain, q)),
                 dataset=dataset, requests=len(scenarios), frequency=inputs.frequency, horizon=inputs.horizon,
                 baseline_request="GET /items/{id}/forecast (uncached)", clients=1, **answer)  # fmt: skip
