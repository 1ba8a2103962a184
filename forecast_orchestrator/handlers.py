"""The workflow steps, Lambda-compatible: `handler({"step": NAME, "run": {...}}, context) -> run`.

The same functions run on AWS (one Lambda, invoked by every Task state) and locally in-process
(state_machine.run_local). The run document is what Step Functions passes between states.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from uuid import uuid4

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as AwsConnectionError

from core.aws import client
from core.object_store import ObjectStore, object_store
from core.settings import Settings
from forecast_orchestrator import amazon_forecast, ensemble_on_glue  # noqa: F401 - they register
from forecast_orchestrator.backends import (
    DONE,
    RUN_LEASE_SECONDS,
    TRANSIENT_CODES,
    ForecastBackend,
    RetryableStepError,
    make_backend,
)

log = logging.getLogger("demand.orchestrator")
# What the step Lambda imports beyond the runtime's boto3 (scripts/package.sh puts them in the bundle). The ensemble's
# own libraries run in the forecast-steps Glue job (ensemble_on_glue), never here.
LAMBDA_PACKAGES = ("pydantic", "pydantic-settings", "holidays")  # holidays: Settings checks the country


@dataclass
class Runtime:
    """What the steps need, built once per process (per Lambda container, or per local run)."""

    settings: Settings
    store: ObjectStore
    clients: Callable[[str], Any]
    backend: ForecastBackend

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        clients = cache(lambda service: client(service, settings))
        store = object_store(settings)
        return cls(settings, store, clients, make_backend(settings, store, clients))

    @property
    def dynamodb(self):
        return self.clients("dynamodb")

    @property
    def topic_arn(self) -> str:
        if self.settings.notify_topic_arn:
            return self.settings.notify_topic_arn
        # CreateTopic is idempotent and returns the ARN; used where no ARN is configured (local stack).
        return self.clients("sns").create_topic(Name=self.settings.names.notify_topic)["TopicArn"]


def _now(after_seconds: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=after_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def start_run(run: dict[str, Any], rt: Runtime) -> dict[str, Any]:
    """Load the manifest and claim the run by its idempotency key: re-delivery of a trigger is a no-op.

    Accepts {"bucket", "manifest_key"} or the S3 "Object Created" event EventBridge delivers, and the execution's id
    (`execution_id`, from the context object). The claim names its execution and holds for RUN_LEASE_SECONDS: the
    same execution may claim again (Step Functions retried this step after a claim that did succeed), a failed run
    may be started again, and a RUNNING claim whose lease lapsed (its execution was stopped or timed out) may be
    taken over; a running claim of another execution, or a finished run, may not."""
    execution = run.get("execution_id") or f"unknown:{uuid4()}"
    if "detail" in run:
        run = {"bucket": run["detail"]["bucket"]["name"], "manifest_key": run["detail"]["object"]["key"]}
    run = {**run, "execution_id": execution}
    manifest = json.loads(rt.store.get(run["bucket"], run["manifest_key"]))
    key = manifest["idempotency_key"]
    run_id = hashlib.sha256(key.encode()).hexdigest()[:16]
    base = run["manifest_key"].rsplit("/", 1)[0] + "/"
    schemas = {name: json.loads(rt.store.get(run["bucket"], d["schema"])) for name, d in manifest["datasets"].items()}
    dynamodb, table = rt.dynamodb, rt.settings.names.run_table
    try:
        dynamodb.put_item(
            TableName=table,
            Item={
                "run_id": {"S": run_id},
                "idempotency_key": {"S": key},
                "manifest_key": {"S": run["manifest_key"]},
                "status": {"S": "RUNNING"},
                "started_at": {"S": _now()},
                "execution_id": {"S": execution},
                "lease_until": {"S": _now(RUN_LEASE_SECONDS)},
            },
            ConditionExpression="attribute_not_exists(run_id) OR #s = :failed OR execution_id = :me"
            " OR (#s = :running AND lease_until < :now)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":failed": {"S": "FAILED"},
                ":running": {"S": "RUNNING"},
                ":me": {"S": execution},
                ":now": {"S": _now()},
            },
        )
        duplicate = False
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        duplicate = True
        log.info("run=%s duplicate trigger for %s: skipped", run_id, key)
    # One dataset group per tenant and frequency (Forecast names: letters, digits, underscores).
    group = f"{rt.settings.prefix}_{rt.settings.tenant}_{manifest['frequency']}".replace("-", "_")
    return {
        **run,
        "run_id": run_id,
        "duplicate": duplicate,
        "manifest": manifest,
        "dataset_base": base,
        "schemas": schemas,
        "dataset_group": group,
        "backend": rt.backend.name,
        "started_at": _now(),
    }


def accuracy_gate(run: dict[str, Any], rt: Runtime) -> dict[str, Any]:
    """Champion/challenger: the new predictor replaces the champion only if its avg wQL and WAPE are not
    worse beyond the tolerance. The winner is recorded (with its metrics) in the champion table."""
    dynamodb, table = rt.dynamodb, rt.settings.names.champion_table
    challenger = {"predictor_id": run["predictor_id"], "run_id": run["run_id"], **run["accuracy"]}
    item = dynamodb.get_item(TableName=table, Key={"dataset_group": {"S": run["dataset_group"]}}, ConsistentRead=True)
    champion = json.loads(item["Item"]["record"]["S"]) if "Item" in item else None
    tolerance = 1 + rt.settings.gate_tolerance
    wins = champion is None or all(
        challenger[m] <= champion[m] * tolerance + 1e-12 for m in ("avg_wQL", "WAPE") if m in champion
    )
    decision = {
        "promoted": wins,
        "challenger": challenger,
        "champion": champion,
        "tolerance": rt.settings.gate_tolerance,
    }
    if wins:
        condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(dataset_group)"}
        if champion:
            condition = {
                "ConditionExpression": "predictor_id = :old",
                "ExpressionAttributeValues": {":old": {"S": champion["predictor_id"]}},
            }
        dynamodb.put_item(
            TableName=table,
            Item={
                "dataset_group": {"S": run["dataset_group"]},
                "predictor_id": {"S": challenger["predictor_id"]},
                "record": {"S": json.dumps(challenger)},
                "updated_at": {"S": _now()},
            },
            **condition,
        )
    winner = challenger if wins or champion is None else champion
    log.info("run=%s gate promoted=%s predictor=%s", run["run_id"], wins, winner["predictor_id"])
    return {**run, "gate": decision, "forecast_predictor": winner["predictor_id"]}


def _finish(run: dict[str, Any], rt: Runtime, status: str) -> dict[str, Any]:
    """Record the run's end: runs table, a JSON status file beside the export, an SNS message."""
    record = {
        "run_id": run.get("run_id"),
        "status": status,
        "manifest_key": run.get("manifest_key"),
        "backend": run.get("backend"),
        "predictor": run.get("forecast_predictor"),
        "accuracy": run.get("accuracy"),
        "gate": {k: v for k, v in (run.get("gate") or {}).items() if k != "challenger"},
        "export": run.get("export"),
        "export_manifest": run.get("export_manifest"),
        "error": run.get("error") or run.get("failure"),
        "finished_at": _now(),
    }
    if run.get("run_id"):
        dynamodb, table = rt.dynamodb, rt.settings.names.run_table
        dynamodb.update_item(
            TableName=table,
            Key={"run_id": {"S": run["run_id"]}},
            UpdateExpression="SET #s = :s, finished_at = :f, summary = :r",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":s": {"S": status},
                ":f": {"S": record["finished_at"]},
                ":r": {"S": json.dumps(record, default=str)},
            },
        )
        key = f"runs/{run['run_id']}/status.json"
        rt.store.put(rt.settings.names.bucket("forecast-export"), key, json.dumps(record, indent=2).encode())
    rt.clients("sns").publish(
        TopicArn=rt.topic_arn,
        Subject=f"forecast run {status.lower()}"[:100],
        Message=json.dumps(record, default=str),
        MessageAttributes={"status": {"DataType": "String", "StringValue": status}},
    )
    log.info("run=%s status=%s", run.get("run_id"), status)
    return {**run, "status": status, "summary": record}


def export_manifest(run: dict[str, Any], rt: Runtime) -> dict[str, Any]:
    """What enrich_forecast needs, written last beside the export: its creation is the enrichment trigger."""
    export = run["export"]
    # Every backend writes the forecast files under exports/<run_id>/forecast/ (Forecast's export job too).
    forecast_prefix = f"exports/{run['run_id']}/forecast/"
    drivers_prefix = f"exports/{run['run_id']}/drivers/"  # the open ensemble's, when the global model forecast
    coherent_prefix = f"exports/{run['run_id']}/coherent/"  # the open ensemble's coherent totals
    manifest = {
        "run_id": run["run_id"],
        "run_started_at": run["started_at"],
        "backend": run["backend"],
        "predictor_id": run["forecast_predictor"],
        "accuracy": run.get("accuracy") if (run.get("gate") or {}).get("promoted", True) else None,
        "frequency": run["manifest"]["frequency"],
        "input_bucket": run["bucket"],
        "input_manifest_key": run["manifest_key"],
        "forecast_keys": sorted(k for k in rt.store.list(export["bucket"], forecast_prefix) if k.endswith(".csv")),
        "drivers_keys": sorted(k for k in rt.store.list(export["bucket"], drivers_prefix) if k.endswith(".csv")),
        "coherent_keys": sorted(k for k in rt.store.list(export["bucket"], coherent_prefix) if k.endswith(".csv")),
    }
    if not manifest["forecast_keys"]:
        raise ValueError(f"export {rt.store.uri(export['bucket'], forecast_prefix)} holds no forecast CSV")
    if manifest["accuracy"] is None:  # the champion forecast: its own metrics, as recorded by the gate
        manifest["accuracy"] = {k: v for k, v in run["gate"]["champion"].items() if k not in ("predictor_id", "run_id")}
    key = f"exports/{run['run_id']}/manifest.json"
    rt.store.put(export["bucket"], key, json.dumps(manifest, indent=2).encode())
    return {"bucket": export["bucket"], "key": key}


def notify(run: dict[str, Any], rt: Runtime) -> dict[str, Any]:
    return _finish({**run, "export_manifest": export_manifest(run, rt)}, rt, "SUCCEEDED")


def record_failure(run: dict[str, Any], rt: Runtime) -> dict[str, Any]:
    return _finish(run, rt, "FAILED")


def _backend_step(method: str) -> Callable[[dict[str, Any], Runtime], dict[str, Any]]:
    def step(run: dict[str, Any], rt: Runtime) -> dict[str, Any]:
        result = getattr(rt.backend, method)(run)
        return {**run, "status": DONE, **result}

    step.__name__ = method
    return step


STEPS: dict[str, Callable[[dict[str, Any], Runtime], dict[str, Any]]] = {
    "start_run": start_run,
    "accuracy_gate": accuracy_gate,
    "notify": notify,
    "record_failure": record_failure,
    **{
        m: _backend_step(m)
        for m in (
            "import_datasets",
            "check_import",
            "train_predictor",
            "check_training",
            "get_accuracy",
            "create_forecast",
            "check_forecast",
            "export_forecast",
            "check_export",
        )
    },
}


def dispatch(payload: dict[str, Any], rt: Runtime) -> dict[str, Any]:
    step = payload.get("step")
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; expected one of {', '.join(STEPS)}")
    run = payload["run"]
    if "execution_id" in payload:
        run = {**run, "execution_id": payload["execution_id"]}
    with transient_errors_retryable(step):
        return STEPS[step](run, rt)


@contextmanager
def transient_errors_retryable(step: str) -> Iterator[None]:
    """Transient AWS errors (TRANSIENT_CODES, dropped connections) leave a step as RetryableStepError, the name the
    state machine retries; every other error leaves as it is, and fails the run."""
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in TRANSIENT_CODES:
            raise RetryableStepError(f"{step}: {code}: {exc}") from exc
        raise
    except (AwsConnectionError, HTTPClientError) as exc:
        raise RetryableStepError(f"{step}: {exc}") from exc


@cache
def _lambda_runtime() -> Runtime:
    return Runtime.build(Settings(runtime="aws"))


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """AWS Lambda entry point (configuration from DEMAND_* environment variables)."""
    return dispatch(event, _lambda_runtime())
