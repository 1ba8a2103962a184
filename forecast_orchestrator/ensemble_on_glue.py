"""The `statsforecast` backend (the open ensemble), registered in its two forms.

In process (no `Settings.model_job`: the local workflow, tests): forecast_orchestrator.ensemble_backend runs every
step in the caller's process.

On AWS (`Settings.model_job` names the Glue job, entry glue_jobs/forecast_steps.py): the step Lambda holds none of
the ensemble's libraries (pandas, pyarrow, statsforecast, LightGBM: far over Lambda's 250 MB unzipped). Every step
that reads the datasets (import, train, forecast, export) writes the run state to the forecast-export bucket
(`request_key`), starts the Glue job with `--step` and `--request_key`, and returns IN_PROGRESS; its check polls
GetJobRun with the workflow's back-off and, once the run SUCCEEDED, returns the result the job wrote beside the
request (`result_key`). The train step's result carries the backtest accuracy, which get_accuracy hands on. In the
job, `run_step` runs the same EnsembleBackend step the local workflow calls in-process. This module imports no
library beyond boto3's: the Lambda bundle is our code and pydantic.
"""

from __future__ import annotations

import json
from typing import Any

from core.object_store import ObjectStore
from core.settings import Settings
from forecast_orchestrator.backends import DONE, FAILED, IN_PROGRESS, Clients, backoff, progress_key, register

GLUE_FAILED = {"FAILED", "ERROR", "TIMEOUT", "STOPPED", "EXPIRED"}
# --step -> the EnsembleBackend method the Glue job runs
STEPS = {
    "import": "import_datasets",
    "train": "train_predictor",
    "forecast": "create_forecast",
    "export": "export_forecast",
}


def request_key(run_id: str, step: str) -> str:
    """Where the Lambda writes the run state for a step, in the forecast-export bucket."""
    return f"runs/{run_id}/{step}.request.json"


def result_key(request: str) -> str:
    """Where the Glue job writes a step's result, next to the request the Lambda wrote."""
    return request.removesuffix(".request.json") + ".result.json"


def run_step(settings: Settings, store: ObjectStore, step: str, request: str, use_spark: bool) -> dict[str, Any]:
    """In the Glue job: run one step on the request's run state and write its result for the polling Lambda."""
    if step not in STEPS:
        raise ValueError(f"--step must be one of {', '.join(STEPS)}, got {step!r}")
    from forecast_orchestrator.ensemble_backend import EnsembleBackend, ensemble_config  # the ensemble's libraries

    bucket = settings.names.bucket("forecast-export")
    run = json.loads(store.get(bucket, request))
    backend = EnsembleBackend(settings, store, ensemble_config(settings, use_spark))
    result = getattr(backend, STEPS[step])(run)
    if step == "train":  # the accuracy too: reading the backtest metrics needs pandas, which the Lambda has not
        result = {**result, **backend.get_accuracy({**run, **result})}
    store.put(bucket, result_key(request), json.dumps(result).encode())
    return result


class GlueEnsembleBackend:
    name = "statsforecast"

    def __init__(self, settings: Settings, store: ObjectStore, glue):
        self.settings = settings
        self.store = store
        self.bucket = settings.names.bucket("forecast-export")
        self.glue = glue
        self.job = settings.model_job

    def _start(self, run: dict[str, Any], step: str) -> dict[str, Any]:
        key = request_key(run["run_id"], step)
        self.store.put(self.bucket, key, json.dumps(run, default=str).encode())
        job_run = self.glue.start_job_run(
            JobName=self.job, Arguments={"--step": step, "--request_key": key, "--prefix": self.settings.prefix}
        )
        glue_run = {"id": job_run["JobRunId"], "key": key}
        return {"status": IN_PROGRESS, "glue_run": glue_run, "glue_step": step, "wait_seconds": backoff({})}

    def _check(self, run: dict[str, Any]) -> dict[str, Any]:
        job_run = self.glue.get_job_run(JobName=self.job, RunId=run["glue_run"]["id"])["JobRun"]
        state = job_run["JobRunState"]
        if state in GLUE_FAILED:
            message = job_run.get("ErrorMessage") or f"job run state {state}"
            failure = {"step": run.get("glue_step"), "resource": f"{self.job}/{job_run['Id']}", "message": message}
            return {"status": FAILED, "failure": {**failure, "resource_status": state}}
        if state != "SUCCEEDED":
            waiting: dict[str, Any] = {"status": IN_PROGRESS, "wait_seconds": backoff(run)}
            if self.store.exists(self.bucket, progress_key(run["run_id"])):
                waiting["progress"] = json.loads(self.store.get(self.bucket, progress_key(run["run_id"])))
            return waiting
        return {**json.loads(self.store.get(self.bucket, result_key(run["glue_run"]["key"]))), "status": DONE}

    def import_datasets(self, run: dict[str, Any]) -> dict[str, Any]:
        return self._start(run, "import")

    def train_predictor(self, run: dict[str, Any]) -> dict[str, Any]:
        return self._start(run, "train")

    def get_accuracy(self, run: dict[str, Any]) -> dict[str, Any]:
        return {"status": DONE, "accuracy": run["accuracy"]}  # computed by the train step's job

    def create_forecast(self, run: dict[str, Any]) -> dict[str, Any]:
        return self._start(run, "forecast")

    def export_forecast(self, run: dict[str, Any]) -> dict[str, Any]:
        return self._start(run, "export")

    def check_import(self, run: dict[str, Any]) -> dict[str, Any]:
        return self._check(run)

    check_training = check_forecast = check_export = check_import


@register("statsforecast", when=lambda settings: bool(settings.model_job))
def _on_glue(settings: Settings, store: ObjectStore, clients: Clients) -> GlueEnsembleBackend:
    return GlueEnsembleBackend(settings, store, clients("glue"))


@register("statsforecast", when=lambda settings: not settings.model_job)
def _in_process(settings: Settings, store: ObjectStore, clients: Clients):
    from forecast_orchestrator.ensemble_backend import EnsembleBackend  # the ensemble's libraries, imported here

    return EnsembleBackend(settings, store)
