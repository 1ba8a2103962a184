"""Glue job: the statsforecast backend's heavy steps (train, forecast) on Spark, for the AWS workflow.

The step Lambda cannot hold statsforecast (numba, scipy: far over Lambda's 250 MB unzipped limit), so on
AWS the workflow's TrainPredictor and CreateForecast states start this job (forecast_orchestrator.glue_backend)
and poll it. It runs the same StatsForecastStepBackend the local workflow calls in-process, with the
series spread over the cluster through fugue (BackendConfig.use_spark), so many series scale out.

Arguments: --step train|forecast, --request_key (the run state, JSON, in the forecast-export bucket; written by
the Lambda), plus Settings overrides (--prefix, --runtime, ...). The step's result is written as JSON to
--request_key with `.request.json` replaced by `.result.json`, which the polling Lambda reads.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from demand.object_store import object_store
from forecast_orchestrator.glue_backend import result_key
from forecast_orchestrator.local_backend import StatsForecastStepBackend
from forecast_orchestrator.statsforecast_backend import BackendConfig
from glue_jobs.runtime import resolve_args, settings_from_args, spark_session

STEPS = {"train": "train_predictor", "forecast": "create_forecast"}
REQUIRED = ["JOB_NAME", "step", "request_key"]
OPTIONAL = {"use_spark": "true"}


def main(argv: list[str]) -> dict[str, Any]:
    args = resolve_args(argv, REQUIRED, OPTIONAL)
    if args["step"] not in STEPS:
        raise SystemExit(f"error: --step must be one of {', '.join(STEPS)}, got {args['step']!r}")
    settings = settings_from_args(args)
    use_spark = args["use_spark"].lower() == "true"
    if use_spark:
        spark_session(args["JOB_NAME"])  # the session fugue distributes the series over
    store = object_store(settings)
    bucket = settings.names.bucket("forecast-export")
    run = json.loads(store.get(bucket, args["request_key"]))
    config = BackendConfig(quantiles=tuple(settings.quantiles), use_spark=use_spark)
    result = getattr(StatsForecastStepBackend(settings, store, config), STEPS[args["step"]])(run)
    store.put(bucket, result_key(args["request_key"]), json.dumps(result).encode())
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
