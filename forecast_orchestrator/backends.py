"""The forecasting backends behind one interface, chosen by configuration (Settings.forecast_backend).

Every method takes the run document (JSON, what Step Functions passes between states; keep it small:
large results live in the object store and are referenced by key) and returns the fields to merge into
it. Asynchronous steps return {"status": "IN_PROGRESS", "wait_seconds": n} until done; the state machine
waits (with back-off) and calls the matching check method. Synchronous backends return DONE at once.
"""

from __future__ import annotations

from typing import Any, Protocol

DONE, IN_PROGRESS, FAILED = "DONE", "IN_PROGRESS", "FAILED"
MAX_WAIT_SECONDS = 300


def backoff(run: dict[str, Any], first: int = 15) -> int:
    """Next poll interval: doubles from `first` up to MAX_WAIT_SECONDS."""
    previous = int(run.get("wait_seconds") or 0)
    return min(MAX_WAIT_SECONDS, max(first, previous * 2))


class ForecastBackend(Protocol):
    name: str

    def import_datasets(self, run: dict[str, Any]) -> dict[str, Any]: ...
    def check_import(self, run: dict[str, Any]) -> dict[str, Any]: ...
    def train_predictor(self, run: dict[str, Any]) -> dict[str, Any]: ...  # sets predictor_id
    def check_training(self, run: dict[str, Any]) -> dict[str, Any]: ...
    def get_accuracy(self, run: dict[str, Any]) -> dict[str, Any]: ...  # sets accuracy {avg_wQL, WAPE, ...}
    def create_forecast(self, run: dict[str, Any]) -> dict[str, Any]: ...  # uses run["forecast_predictor"]
    def check_forecast(self, run: dict[str, Any]) -> dict[str, Any]: ...
    def export_forecast(self, run: dict[str, Any]) -> dict[str, Any]: ...  # sets export {bucket, prefix}
    def check_export(self, run: dict[str, Any]) -> dict[str, Any]: ...


def make_backend(settings, store, clients) -> ForecastBackend:
    name = settings.forecast_backend
    if name == "statsforecast" and settings.model_job:
        from forecast_orchestrator.glue_backend import GlueStatsForecastBackend

        return GlueStatsForecastBackend(settings, store, clients("glue"))
    if name == "statsforecast":
        from forecast_orchestrator.local_backend import StatsForecastStepBackend

        return StatsForecastStepBackend(settings, store)
    if name == "amazon-forecast":
        from forecast_orchestrator.amazon_forecast import AmazonForecastBackend

        return AmazonForecastBackend(settings, clients("forecast"))
    raise ValueError(f"forecast_backend {name!r} must be statsforecast or amazon-forecast")
