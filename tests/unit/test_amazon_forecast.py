"""The amazon-forecast backend against botocore's Stubber: the exact API calls of a run, no network.

Stubber checks each request against the Forecast service model (parameter names, types, required
members) and the expected parameters given here, and each canned response against the output shape.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from core.settings import Settings
from forecast_orchestrator.amazon_forecast import AmazonForecastBackend, accuracy_summary, forecast_types
from forecast_orchestrator.backends import DONE, FAILED, IN_PROGRESS
from forecast_orchestrator.handlers import transient_errors_retryable
from forecast_orchestrator.state_machine import run_local

ROLE = "arn:aws:iam::123456789012:role/forecast"
ARN = "arn:aws:forecast:us-east-1:123456789012"
RUN_ID = "0f1e2d3c4b5a6978"
ATTEMPT = f"{RUN_ID}_261123085200"  # run id + started_at (yymmddHHMMSS)
BASE = "datasets/W/2024-01-01/"


def schema(*columns: tuple[str, str]) -> dict[str, Any]:
    return {"Attributes": [{"AttributeName": n, "AttributeType": t} for n, t in columns]}


SCHEMAS = {
    "target": schema(("item_id", "string"), ("timestamp", "timestamp"), ("demand", "float")),
    "related": schema(
        ("item_id", "string"), ("timestamp", "timestamp"), ("price", "float"), ("promotion_flag", "integer")
    ),
    "metadata": schema(("item_id", "string"), ("category", "string"), ("brand", "string")),
}
SERVICE = botocore.session.get_session().get_service_model("forecast")
TYPES = {"target": "TARGET_TIME_SERIES", "related": "RELATED_TIME_SERIES", "metadata": "ITEM_METADATA"}


def new_run() -> dict[str, Any]:
    """The run document as start_run hands it to the first backend step."""
    datasets = {
        name: {"path": f"{BASE}{name}/", "dataset_type": kind, "rows": 120, "schema": f"{BASE}schema/{name}.json"}
        for name, kind in TYPES.items()
    }
    manifest = {
        "domain": "RETAIL",
        "frequency": "W",
        "window_start": "2022-01-03",
        "window_end": "2024-01-01",
        "horizon": 8,
        "timestamp_format": "yyyy-MM-dd",
        "country": "DE",
        "with_location": False,
        "datasets": datasets,
    }
    return {
        "run_id": RUN_ID,
        "bucket": "demand-forecast-input",
        "manifest_key": BASE + "manifest.json",
        "manifest": manifest,
        "schemas": SCHEMAS,
        "dataset_group": "demand_W",
        "started_at": "2026-11-23T08:52:00Z",
    }


# Checks botocore's client-side validation leaves to the service: string length maxima, enums and the
# patterns of names, frequencies, forecast types and S3 paths. (The model's `Arn` pattern names the
# forecast service, yet RoleArn is an IAM ARN of that shape; tag patterns use \\p{L}: both skipped.)
UNCHECKED_PATTERNS = {"Arn", "TagKey", "TagValue"}


def model_violations(operation: str, params: dict[str, Any]) -> list[str]:
    found: list[str] = []

    def walk(shape, value, path: str) -> None:
        if shape.type_name == "structure":
            for key, item in value.items():
                walk(shape.members[key], item, f"{path}.{key}")
        elif shape.type_name == "list":
            for i, item in enumerate(value):
                walk(shape.member, item, f"{path}[{i}]")
        elif shape.type_name == "map":
            for key, item in value.items():
                walk(shape.key, key, f"{path} key")
                walk(shape.value, item, f"{path}.{key}")
        elif shape.type_name == "string":
            meta = shape.metadata
            if len(value) > meta.get("max", len(value)) or (shape.enum and value not in shape.enum):
                found.append(f"{operation}{path}={value!r} breaks {meta}")
            elif (
                "pattern" in meta and shape.name not in UNCHECKED_PATTERNS and not re.fullmatch(meta["pattern"], value)
            ):
                found.append(f"{operation}{path}={value!r} does not match {meta['pattern']}")

    walk(SERVICE.operation_model(operation).input_shape, params, "")
    return found


class Harness:
    """A real boto3 Forecast client (dummy credentials) with a Stubber, recording every request made."""

    def __init__(self) -> None:
        self.settings = Settings(forecast_role_arn=ROLE, forecast_backend="amazon-forecast")
        self.client = boto3.client(
            "forecast",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            endpoint_url="https://forecast.us-east-1.amazonaws.com",
        )
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.client.meta.events.register(
            "provide-client-params.forecast.*", lambda params, model, **_: self.calls.append((model.name, params))
        )
        self.stub = Stubber(self.client)
        self.backend = AmazonForecastBackend(self.settings, self.client)
        self.tags = [
            {"Key": "project", "Value": self.settings.prefix},
            {"Key": "tenant", "Value": self.settings.tenant},
        ]
        self.dataset = {name: self.backend._dataset_name(new_run(), name) for name in TYPES}

    def ok(self, method: str, response: dict[str, Any], params: dict[str, Any]) -> None:
        self.stub.add_response(method, response, params)

    def fail(self, method: str, code: str, params: dict[str, Any], message: str = "") -> None:
        self.stub.add_client_error(method, service_error_code=code, service_message=message, expected_params=params)

    def step(self, run: dict[str, Any], method: str) -> dict[str, Any]:
        """Call one step and merge its result as handlers._backend_step does."""
        return {**run, "status": DONE, **getattr(self.backend, method)(run)}


# --- expected requests, one function per operation ---------------------------------------------------


def create_group(h: Harness) -> dict[str, Any]:
    return {"DatasetGroupName": "demand_W", "Domain": "RETAIL", "Tags": h.tags}


def create_dataset(h: Harness, name: str) -> dict[str, Any]:
    params = {
        "DatasetName": h.dataset[name],
        "Domain": "RETAIL",
        "DatasetType": TYPES[name],
        "Schema": SCHEMAS[name],
        "Tags": h.tags,
    }
    return params if name == "metadata" else {**params, "DataFrequency": "W"}


def create_import(h: Harness, name: str) -> dict[str, Any]:
    params = {
        "DatasetImportJobName": f"{name}_{ATTEMPT}",
        "DatasetArn": f"{ARN}:dataset/{h.dataset[name]}",
        "DataSource": {"S3Config": {"Path": f"s3://demand-forecast-input/{BASE}{name}/", "RoleArn": ROLE}},
        "Format": "CSV",
        "ImportMode": "FULL",
        "Tags": h.tags,
    }
    return params if name == "metadata" else {**params, "TimestampFormat": "yyyy-MM-dd"}


def import_arn(h: Harness, name: str) -> str:
    return f"{ARN}:dataset-import-job/{h.dataset[name]}/{name}_{ATTEMPT}"


PREDICTOR = f"{ARN}:predictor/demand_W_{ATTEMPT}"
FORECAST = f"{ARN}:forecast/demand_W_{ATTEMPT}"
EXPORT_JOB = f"{ARN}:forecast-export-job/demand_W_{ATTEMPT}/export_{ATTEMPT}"


def stub_import(h: Harness) -> None:
    h.ok("create_dataset_group", {"DatasetGroupArn": f"{ARN}:dataset-group/demand_W"}, create_group(h))
    for name in TYPES:
        h.ok("create_dataset", {"DatasetArn": f"{ARN}:dataset/{h.dataset[name]}"}, create_dataset(h, name))
    datasets = [f"{ARN}:dataset/{h.dataset[name]}" for name in TYPES]
    h.ok("update_dataset_group", {}, {"DatasetGroupArn": f"{ARN}:dataset-group/demand_W", "DatasetArns": datasets})
    for name in TYPES:
        h.ok("create_dataset_import_job", {"DatasetImportJobArn": import_arn(h, name)}, create_import(h, name))


def stub_import_polls(h: Harness) -> None:
    first_poll = {"target": "ACTIVE", "related": "CREATE_IN_PROGRESS", "metadata": "CREATE_PENDING"}
    for name, status in first_poll.items():
        h.ok("describe_dataset_import_job", {"Status": status}, {"DatasetImportJobArn": import_arn(h, name)})
    for name in TYPES:
        h.ok("describe_dataset_import_job", {"Status": "ACTIVE"}, {"DatasetImportJobArn": import_arn(h, name)})


CREATE_PREDICTOR = {
    "PredictorName": f"demand_W_{ATTEMPT}",
    "ForecastHorizon": 8,
    "ForecastTypes": ["0.1", "0.5", "0.9"],
    "ForecastFrequency": "W",
    "DataConfig": {
        "DatasetGroupArn": f"{ARN}:dataset-group/demand_W",
        "AdditionalDatasets": [{"Name": "holiday", "Configuration": {"CountryCode": ["DE"]}}],
    },
    "OptimizationMetric": "AverageWeightedQuantileLoss",
    "ExplainPredictor": False,
}


def window(kind: str, wql: float, wape: float) -> dict[str, Any]:
    return {
        "TestWindowStart": datetime(2023, 10, 2, tzinfo=UTC),
        "TestWindowEnd": datetime(2023, 11, 27, tzinfo=UTC),
        "ItemCount": 40,
        "EvaluationType": kind,
        "Metrics": {
            "AverageWeightedQuantileLoss": wql,
            "WeightedQuantileLosses": [
                {"Quantile": 0.9, "LossValue": wql * 0.8},
                {"Quantile": 0.5, "LossValue": wql * 1.2},
                {"Quantile": 0.1, "LossValue": wql},
            ],
            "ErrorMetrics": [{"ForecastType": "0.5", "WAPE": wape, "RMSE": 4.5, "MASE": 0.9, "MAPE": 0.3}],
        },
    }


ACCURACY = {
    "PredictorEvaluationResults": [
        {"TestWindows": [window("SUMMARY", 0.25, 0.3), window("COMPUTED", 0.2, 0.28), window("COMPUTED", 0.3, 0.32)]}
    ],
    "IsAutoPredictor": True,
    "OptimizationMetric": "AverageWeightedQuantileLoss",
}


def stub_rest(h: Harness) -> None:
    """Everything after the import, each asynchronous step ACTIVE after one IN_PROGRESS poll."""
    h.ok("create_auto_predictor", {"PredictorArn": PREDICTOR}, {**CREATE_PREDICTOR, "Tags": h.tags})
    h.ok("describe_auto_predictor", {"Status": "CREATE_IN_PROGRESS"}, {"PredictorArn": PREDICTOR})
    h.ok("describe_auto_predictor", {"Status": "ACTIVE"}, {"PredictorArn": PREDICTOR})
    h.ok("get_accuracy_metrics", ACCURACY, {"PredictorArn": PREDICTOR})
    create_forecast = {
        "ForecastName": f"demand_W_{ATTEMPT}",
        "PredictorArn": PREDICTOR,
        "ForecastTypes": ["0.1", "0.5", "0.9"],
        "Tags": h.tags,
    }
    h.ok("create_forecast", {"ForecastArn": FORECAST}, create_forecast)
    h.ok("describe_forecast", {"Status": "CREATE_IN_PROGRESS"}, {"ForecastArn": FORECAST})
    h.ok("describe_forecast", {"Status": "ACTIVE"}, {"ForecastArn": FORECAST})
    export = {
        "ForecastExportJobName": f"export_{ATTEMPT}",
        "ForecastArn": FORECAST,
        "Destination": {
            "S3Config": {"Path": f"s3://demand-forecast-export/exports/{RUN_ID}/forecast/", "RoleArn": ROLE}
        },
        "Format": "CSV",
        "Tags": h.tags,
    }
    h.ok("create_forecast_export_job", {"ForecastExportJobArn": EXPORT_JOB}, export)
    h.ok("describe_forecast_export_job", {"Status": "CREATE_PENDING"}, {"ForecastExportJobArn": EXPORT_JOB})
    h.ok("describe_forecast_export_job", {"Status": "ACTIVE"}, {"ForecastExportJobArn": EXPORT_JOB})


HAPPY_SEQUENCE = [
    "CreateDatasetGroup",
    *["CreateDataset"] * 3,
    "UpdateDatasetGroup",
    *["CreateDatasetImportJob"] * 3,
    *["DescribeDatasetImportJob"] * 6,
    "CreateAutoPredictor",
    *["DescribeAutoPredictor"] * 2,
    "GetAccuracyMetrics",
    "CreateForecast",
    *["DescribeForecast"] * 2,
    "CreateForecastExportJob",
    *["DescribeForecastExportJob"] * 2,
]


def drive(h: Harness, run: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str, int | None]]]:
    """Run every step as the state machine does: start, then check while IN_PROGRESS. Returns the
    final run and (step, status, wait_seconds) of every call."""
    trail = []
    for start, check in [
        ("import_datasets", "check_import"),
        ("train_predictor", "check_training"),
        ("get_accuracy", None),
        ("create_forecast", "check_forecast"),
        ("export_forecast", "check_export"),
    ]:
        step = start
        while True:
            run = h.step(run, step)
            trail.append((step, run["status"], run.get("wait_seconds") if run["status"] == IN_PROGRESS else None))
            if run["status"] != IN_PROGRESS:
                break
            step = check
        assert run["status"] == DONE, run.get("failure")
        if start == "get_accuracy":
            run["forecast_predictor"] = run["predictor_id"]  # what the accuracy gate sets
    return run, trail


def test_a_happy_run_makes_exactly_these_calls_and_ends_with_the_export_location():
    h = Harness()
    stub_import(h)
    stub_import_polls(h)
    stub_rest(h)
    with h.stub:
        run, trail = drive(h, new_run())
        h.stub.assert_no_pending_responses()

    assert [op for op, _ in h.calls] == HAPPY_SEQUENCE
    assert [v for op, params in h.calls for v in model_violations(op, params)] == []
    # Each asynchronous step: first poll after 15 s, then doubled; back-off restarts for every new resource.
    assert trail == [
        ("import_datasets", IN_PROGRESS, 15),
        ("check_import", IN_PROGRESS, 30),
        ("check_import", DONE, None),
        ("train_predictor", IN_PROGRESS, 15),
        ("check_training", IN_PROGRESS, 30),
        ("check_training", DONE, None),
        ("get_accuracy", DONE, None),
        ("create_forecast", IN_PROGRESS, 15),
        ("check_forecast", IN_PROGRESS, 30),
        ("check_forecast", DONE, None),
        ("export_forecast", IN_PROGRESS, 15),
        ("check_export", IN_PROGRESS, 30),
        ("check_export", DONE, None),
    ]
    assert run["predictor_id"] == PREDICTOR
    assert run["import_job_arns"] == {name: import_arn(h, name) for name in TYPES}
    assert run["export"] == {"bucket": "demand-forecast-export", "prefix": f"exports/{RUN_ID}/forecast/"}
    assert run["accuracy"] == {
        "avg_wQL": 0.25,
        "wQL": {"0.1": 0.25, "0.5": 0.3, "0.9": 0.2},
        "WAPE": 0.3,
        "RMSE": 4.5,
        "MAPE": 0.3,
        "MASE": 0.9,
        "windows": 2,
    }
    assert "failure" not in run


def test_every_create_call_carries_the_project_and_tenant_tags():
    h = Harness()
    stub_import(h)
    stub_import_polls(h)
    stub_rest(h)
    with h.stub:
        drive(h, new_run())
    creates = [(op, params) for op, params in h.calls if op.startswith("Create")]
    assert len(creates) == 10
    for op, params in creates:
        assert params["Tags"] == [
            {"Key": "project", "Value": h.settings.prefix},
            {"Key": "tenant", "Value": h.settings.tenant},
        ], op


def test_training_that_fails_in_the_service_fails_the_run_with_its_message():
    h = Harness()
    run = {**new_run(), "dataset_group_arn": f"{ARN}:dataset-group/demand_W", "wait_seconds": 60}
    message = "Too few observations: at least 3 per series required for the backtest windows"
    h.ok("create_auto_predictor", {"PredictorArn": PREDICTOR}, {**CREATE_PREDICTOR, "Tags": h.tags})
    h.ok("describe_auto_predictor", {"Status": "CREATE_FAILED", "Message": message}, {"PredictorArn": PREDICTOR})
    with h.stub:
        run = h.step(run, "train_predictor")
        assert (run["status"], run["wait_seconds"]) == (IN_PROGRESS, 15)  # a new resource: back-off restarts
        run = h.step(run, "check_training")
        h.stub.assert_no_pending_responses()
    assert run["status"] == FAILED
    assert run["failure"] == {
        "step": "check_training",
        "resource": PREDICTOR,
        "resource_status": "CREATE_FAILED",
        "message": message,
    }


def test_throttling_is_raised_to_the_state_machine_which_retries_the_step():
    h = Harness()
    h.fail("create_dataset_group", "ThrottlingException", create_group(h), "Rate exceeded")
    with h.stub, pytest.raises(ClientError) as raised:
        h.backend.import_datasets(new_run())
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"

    # Through the local ASL interpreter: the Task's Retry calls the step again and the run succeeds.
    h = Harness()
    h.fail("create_dataset_group", "ThrottlingException", create_group(h), "Rate exceeded")
    stub_import(h)
    stub_import_polls(h)
    stub_rest(h)

    def invoke(payload: dict[str, Any]) -> dict[str, Any]:
        step, run = payload["step"], payload["run"]
        if step == "start_run":
            return {**run, **new_run(), "duplicate": False}
        if step == "accuracy_gate":
            return {**run, "forecast_predictor": run["predictor_id"]}
        if step in ("notify", "record_failure"):
            return run
        with transient_errors_retryable(step):  # what the step Lambda (handlers.dispatch) does
            return h.step(run, step)

    with h.stub:
        status, run = run_local(invoke, {"bucket": "demand-forecast-input"}, max_wait_seconds=0)
        h.stub.assert_no_pending_responses()
    assert status == "SUCCEEDED", run.get("failure") or run.get("error")
    assert [op for op, _ in h.calls] == ["CreateDatasetGroup", *HAPPY_SEQUENCE]


def test_existing_dataset_group_and_dataset_are_reused_and_the_run_continues():
    """A retried import step meets what its first attempt created: the derived ARNs are used."""
    h = Harness()
    group_arn = f"{ARN}:dataset-group/demand_W"
    h.fail("create_dataset_group", "ResourceAlreadyExistsException", create_group(h), "dataset group exists")
    h.fail("create_dataset", "ResourceAlreadyExistsException", create_dataset(h, "target"), "dataset exists")
    for name in ("related", "metadata"):
        h.ok("create_dataset", {"DatasetArn": f"{ARN}:dataset/{h.dataset[name]}"}, create_dataset(h, name))
    datasets = [f"{ARN}:dataset/{h.dataset[name]}" for name in TYPES]
    h.ok("update_dataset_group", {}, {"DatasetGroupArn": group_arn, "DatasetArns": datasets})
    for name in TYPES:
        h.ok("create_dataset_import_job", {"DatasetImportJobArn": import_arn(h, name)}, create_import(h, name))
    for name in TYPES:
        h.ok("describe_dataset_import_job", {"Status": "ACTIVE"}, {"DatasetImportJobArn": import_arn(h, name)})
    with h.stub:
        run = h.step(new_run(), "import_datasets")
        run = h.step(run, "check_import")
        h.stub.assert_no_pending_responses()
    assert run["status"] == DONE
    assert run["dataset_group_arn"] == group_arn
    assert run["dataset_arns"]["target"] == f"{ARN}:dataset/{h.dataset['target']}"


def test_a_failed_import_names_the_job_and_the_service_message():
    h = Harness()
    run = {**new_run(), "import_job_arns": {name: import_arn(h, name) for name in TYPES}, "wait_seconds": 30}
    message = "The timestamp 2023/01/02 does not match the format yyyy-MM-dd"
    h.ok("describe_dataset_import_job", {"Status": "ACTIVE"}, {"DatasetImportJobArn": import_arn(h, "target")})
    h.ok(
        "describe_dataset_import_job",
        {"Status": "CREATE_FAILED", "Message": message},
        {"DatasetImportJobArn": import_arn(h, "related")},
    )
    h.ok("describe_dataset_import_job", {"Status": "ACTIVE"}, {"DatasetImportJobArn": import_arn(h, "metadata")})
    with h.stub:
        run = h.step(run, "check_import")
    assert run["status"] == FAILED
    assert run["failure"]["resource"] == import_arn(h, "related")
    assert run["failure"]["message"] == message


def test_a_restarted_run_gets_new_resource_names_and_a_location_series_a_dimension():
    h = Harness()
    run = {
        **new_run(),
        "started_at": "2026-11-24T07:00:05Z",
        "dataset_group_arn": f"{ARN}:dataset-group/demand_W",
    }
    run["manifest"] = {**run["manifest"], "with_location": True, "country": ""}
    attempt = f"{RUN_ID}_261124070005"
    params = {
        **CREATE_PREDICTOR,
        "PredictorName": f"demand_W_{attempt}",
        "DataConfig": {"DatasetGroupArn": f"{ARN}:dataset-group/demand_W"},
        "ForecastDimensions": ["location"],
        "Tags": h.tags,
    }
    h.ok("create_auto_predictor", {"PredictorArn": f"{ARN}:predictor/demand_W_{attempt}"}, params)
    with h.stub:
        assert h.step(run, "train_predictor")["predictor_id"] == f"{ARN}:predictor/demand_W_{attempt}"
        h.stub.assert_no_pending_responses()


def test_point_metrics_prefer_the_mean_forecast_and_windows_count_backtests_only():
    response = {
        "PredictorEvaluationResults": [
            {
                "TestWindows": [
                    {
                        "EvaluationType": "SUMMARY",
                        "Metrics": {
                            "AverageWeightedQuantileLoss": 0.2,
                            "ErrorMetrics": [
                                {"ForecastType": "0.5", "WAPE": 0.4},
                                {"ForecastType": "mean", "WAPE": 0.35, "RMSE": 3.0},
                            ],
                        },
                    },
                    {"EvaluationType": "COMPUTED", "Metrics": {}},
                ]
            }
        ]
    }
    assert accuracy_summary(response) == {"windows": 1, "avg_wQL": 0.2, "wQL": {}, "WAPE": 0.35, "RMSE": 3.0}


def test_quantiles_become_forecast_types_and_unsupported_ones_are_refused():
    assert forecast_types((0.1, 0.5, 0.9, 0.05)) == ["0.1", "0.5", "0.9", "0.05"]
    with pytest.raises(ValueError, match="0.125"):
        forecast_types((0.125,))


def test_the_backend_needs_the_role_forecast_assumes():
    with pytest.raises(ValueError, match="forecast_role_arn"):
        AmazonForecastBackend(Settings(forecast_role_arn=None, forecast_backend="amazon-forecast"), object())


def test_dataset_names_are_stable_per_group_and_schema_and_change_with_the_schema():
    backend = Harness().backend
    run = new_run()
    name = backend._dataset_name(run, "target")
    assert re.fullmatch(r"demand_W_target_[0-9a-f]{6}", name)
    assert backend._dataset_name(new_run(), "target") == name
    located = {**run, "schemas": {**SCHEMAS, "target": schema(("item_id", "string"), ("location", "string"))}}
    assert backend._dataset_name(located, "target") != name


def test_names_fit_forecasts_limits_for_the_longest_prefix():
    """Settings.prefix may have 31 characters: the dataset group then has 33, the stem 63 (the maximum)."""
    h = Harness()
    group = "p" * 31 + "_W"
    run = {**new_run(), "dataset_group": group, "dataset_group_arn": f"{ARN}:dataset-group/{group}"}
    h.stub.add_response("create_auto_predictor", {"PredictorArn": f"{ARN}:predictor/x"})
    with h.stub:
        h.backend.train_predictor(run)
    (op, params), *_ = h.calls
    assert len(params["PredictorName"]) == 63
    assert model_violations(op, params) == []
