"""Local entry of the forecast workflow: run the state machine in-process for one manifest, or watch."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from core.object_store import ObjectStore
from core.settings import Settings
from forecast_orchestrator.handlers import Runtime, dispatch
from forecast_orchestrator.state_machine import run_local

MANIFEST = "manifest.json"


def manifests(runtime: Runtime) -> list[str]:
    """Every complete dataset build in the forecast-input bucket (manifest present), the newest build last (by the
    manifest's built_at, whatever its frequency or window)."""
    return input_manifests(runtime.store, runtime.settings)


def input_manifests(store: ObjectStore, settings: Settings) -> list[str]:
    """manifests() from the object store alone."""
    bucket = settings.names.bucket("forecast-input")
    keys = [k for k in store.list(bucket, "datasets/") if k.endswith("/" + MANIFEST)]
    built = {k: json.loads(store.get(bucket, k)).get("built_at", "") for k in keys}
    return sorted(keys, key=lambda k: (built[k], k))


def run_forecast(
    settings: Settings,
    manifest_key: str,
    runtime: Runtime | None = None,
    on_state: Callable[[str], None] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Run the workflow for one manifest, as the S3 event -> EventBridge -> Step Functions chain would."""
    runtime = runtime or Runtime.build(settings)
    run_input = {"bucket": settings.names.bucket("forecast-input"), "manifest_key": manifest_key}
    return run_local(lambda payload: dispatch(payload, runtime), run_input, max_wait_seconds=0, on_state=on_state)


def watch(settings: Settings, interval: float = 10.0, max_polls: int | None = None) -> Iterator[tuple[str, str]]:
    """Poll for new manifests and run each; the idempotency key makes a seen manifest a no-op."""
    runtime = Runtime.build(settings)
    seen: set[str] = set()
    polls = 0
    while max_polls is None or polls < max_polls:
        for key in manifests(runtime):
            if key not in seen:
                seen.add(key)
                status, _ = run_forecast(settings, key, runtime)
                yield key, status
        polls += 1
        if max_polls is None or polls < max_polls:
            time.sleep(interval)
