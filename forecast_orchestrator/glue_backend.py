"""The `statsforecast` backend on AWS: train and forecast run as a Glue job, the rest in the step Lambda.

train_predictor / create_forecast write the run state to the forecast-export bucket, start the Glue job
(glue_jobs/forecast_model.py) and return IN_PROGRESS; check_training / check_forecast poll GetJobRun with
the workflow's back-off and, once the run SUCCEEDED, return the result the job wrote. Import, accuracy and
export only read and write small files and stay in the Lambda (StatsForecastStepBackend).
"""

from __future__ import annotations

import json
from typing import Any

from forecast_orchestrator.backends import DONE, FAILED, IN_PROGRESS, backoff
from forecast_orchestrator.local_backend import StatsForecastStepBackend

GLUE_FAILED = {"FAILED", "ERROR", "TIMEOUT", "STOPPED", "EXPIRED"}


def result_key(request_key: str) -> str:
    """Where the Glue job writes a step's result, next to the request the Lambda wrote."""
    return request_key.removesuffix(".request.json") + ".result.json"


class GlueStatsForecastBackend(StatsForecastStepBackend):
    def __init__(self, settings, store, glue):
        super().__init__(settings, store)
        self.glue = glue
        self.job = settings.model_job

    def _start(self, run: dict[str, Any], step: str) -> dict[str, Any]:
        key = f"runs/{run['run_id']}/{step}.request.json"
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
            return {"status": IN_PROGRESS, "wait_seconds": backoff(run)}
        return {**json.loads(self.store.get(self.bucket, result_key(run["glue_run"]["key"]))), "status": DONE}

    def train_predictor(self, run: dict[str, Any]) -> dict[str, Any]:
        return self._start(run, "train")

    def create_forecast(self, run: dict[str, Any]) -> dict[str, Any]:
        return self._start(run, "forecast")

    def check_training(self, run: dict[str, Any]) -> dict[str, Any]:
        return self._check(run)

    check_forecast = check_training
