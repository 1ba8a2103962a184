"""The forecasting backends behind one interface, chosen by configuration (Settings.forecast_backend).

Every method takes the run document (JSON, what Step Functions passes between states; keep it small:
large results live in the object store and are referenced by key) and returns the fields to merge into
it. Asynchronous steps return {"status": "IN_PROGRESS", "wait_seconds": n} until done; the state machine
waits (with back-off) and calls the matching check method. Synchronous backends return DONE at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from core.object_store import ObjectStore
from core.settings import Settings

DONE, IN_PROGRESS, FAILED = "DONE", "IN_PROGRESS", "FAILED"
MAX_WAIT_SECONDS = 300
# How long a run's claim holds: the state machine's own timeout, so an execution never outlives its claim and a
# claim left RUNNING by a stopped or timed-out execution can be taken over once it has lapsed.
RUN_LEASE_SECONDS = 48 * 3600
# AWS error codes that say "try again soon": throttling and services briefly unavailable.
TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalServerError",
    }
)


class RetryableStepError(Exception):
    """A step met a transient AWS error (a code in TRANSIENT_CODES, or a dropped connection). A Python Lambda reports
    an error by its exception's class name, so this name is what the state machine's Retry lists; Step Functions never
    sees botocore's error codes, and every other error fails the run."""


def progress_key(run_id: str) -> str:
    """Where a running train or forecast step keeps its progress (series done, elapsed, ETA), in forecast-export."""
    return f"runs/{run_id}/progress.json"


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


Clients = Callable[[str], Any]  # service name -> boto3 client
Factory = Callable[[Settings, ObjectStore, Clients], ForecastBackend]
_CANDIDATES: dict[str, list[tuple[Callable[[Settings], bool], Factory]]] = {}


def register(name: str, when: Callable[[Settings], bool] = lambda settings: True) -> Callable[[Factory], Factory]:
    """Register a backend factory for `Settings.forecast_backend == name` (and `when(settings)`). The modules that
    implement backends register themselves; the workflow's entry (handlers.py) imports them."""

    def decorate(factory: Factory) -> Factory:
        _CANDIDATES.setdefault(name, []).append((when, factory))
        return factory

    return decorate


def make_backend(settings: Settings, store: ObjectStore, clients: Clients) -> ForecastBackend:
    """The one registered backend that fits the settings; `clients(service)` gives boto3 clients."""
    fits = [factory for when, factory in _CANDIDATES.get(settings.forecast_backend, []) if when(settings)]
    if len(fits) != 1:
        known = ", ".join(sorted(_CANDIDATES)) or "none registered"
        raise ValueError(
            f"forecast_backend {settings.forecast_backend!r} has {len(fits)} fitting backends (known: {known})"
        )
    return fits[0](settings, store, clients)
