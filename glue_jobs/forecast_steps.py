"""Glue job: the open ensemble's workflow steps that read the datasets (import, train, forecast, export) on AWS.

On AWS the workflow's ImportDatasets, TrainPredictor, CreateForecast and ExportForecast states start this job and
poll it; the request/result
protocol and the step itself are forecast_orchestrator/ensemble_on_glue.py. With --use_spark true (the default)
the series are spread over the cluster through fugue, so many series scale out.

    forecast_steps.py --JOB_NAME forecast-steps --step import|train|forecast|export \
        --request_key runs/<run_id>/<step>.request.json [--use_spark true --prefix demand --runtime aws]
"""

from __future__ import annotations

import json
import sys
from typing import Any

from core.object_store import object_store
from forecast_orchestrator.ensemble_on_glue import STEPS, run_step
from glue_jobs.runtime import resolve_args, settings_from_args, spark_session

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
    return run_step(settings, object_store(settings), args["step"], args["request_key"], use_spark)


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
