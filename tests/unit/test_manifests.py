"""Which dataset build `demand forecast run` takes by default: the newest one built, whatever its frequency."""

from __future__ import annotations

import json

from core.object_store import LocalObjectStore
from core.settings import Settings
from forecast_orchestrator.handlers import Runtime
from forecast_orchestrator.workflow import manifests


def test_the_newest_build_comes_last_not_the_greatest_key(tmp_path):
    settings = Settings(data_root=tmp_path)
    store, bucket = LocalObjectStore(tmp_path), settings.names.bucket("forecast-input")
    builds = {
        "datasets/W/2024-06-03-aaaa/manifest.json": "2024-06-03T08:00:00.000000Z",
        "datasets/D/2024-06-05-bbbb/manifest.json": "2024-06-05T08:00:00.000000Z",  # built last
        "datasets/W/2024-05-27-cccc/manifest.json": "2024-06-05T07:00:00.000000Z",  # a rebuild of an older window
    }
    for key, built_at in builds.items():
        store.put(bucket, key, json.dumps({"built_at": built_at}).encode())
    store.put(bucket, "datasets/W/2024-06-03-aaaa/target/part-00000.csv", b"item_id,timestamp,demand\n")
    runtime = Runtime(settings, store, clients=lambda service: None, backend=None)
    assert manifests(runtime) == [
        "datasets/W/2024-06-03-aaaa/manifest.json",
        "datasets/W/2024-05-27-cccc/manifest.json",
        "datasets/D/2024-06-05-bbbb/manifest.json",
    ]
