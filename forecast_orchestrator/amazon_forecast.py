"""The `amazon-forecast` backend: the workflow steps as Amazon Forecast API calls (boto3).

Every start step creates resources and returns IN_PROGRESS; the matching check step polls the one
resource it waits for. Names are deterministic (dataset group, run id, run start), so a Step Functions
retry of a step meets the resource its first attempt created (ResourceAlreadyExistsException) and reuses
it. Throttling and every other API error propagate to the state machine's Retry/Catch.

Note: Amazon Forecast is closed to new customers; existing accounts keep working.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any

from botocore.exceptions import ClientError

from core.object_store import ObjectStore
from core.settings import Settings
from forecast_orchestrator.backends import DONE, FAILED, IN_PROGRESS, Clients, backoff, register

log = logging.getLogger("demand.orchestrator")

DOMAIN = "RETAIL"
DATASETS = ("target", "related", "metadata")  # manifest keys, in creation order
METADATA_TYPE = "ITEM_METADATA"
RUNNING = {"CREATE_PENDING", "CREATE_IN_PROGRESS", "UPDATE_PENDING", "UPDATE_IN_PROGRESS"}
ALREADY_EXISTS = "ResourceAlreadyExistsException"


def forecast_types(quantiles: tuple[float, ...]) -> list[str]:
    """Settings.quantiles -> ForecastTypes ("0.1", "0.5", ...); Forecast accepts 0.01..0.99 in steps of 0.01."""
    bad = [q for q in quantiles if not 0 < q < 1 or abs(round(q, 2) - q) > 1e-9]
    if bad:
        raise ValueError(f"quantiles {bad} are not Amazon Forecast types (0.01..0.99, two decimals)")
    return [_quantile_type(q) for q in quantiles]


def _quantile_type(quantile: float) -> str:
    return f"{quantile:.2f}".rstrip("0")


def accuracy_summary(response: dict[str, Any]) -> dict[str, Any]:
    """GetAccuracyMetrics -> {avg_wQL, wQL: {quantile: loss}, WAPE, RMSE, MAPE, MASE, windows}.

    An AutoPredictor has one evaluation result; its SUMMARY window averages the COMPUTED backtest windows.
    Point metrics (WAPE, ...) come from the `mean` forecast type if the predictor has one, else the median.
    """
    results = response.get("PredictorEvaluationResults") or []
    windows = results[0].get("TestWindows", []) if results else []
    computed = [w for w in windows if w.get("EvaluationType") != "SUMMARY"]
    summary = next((w for w in windows if w.get("EvaluationType") == "SUMMARY"), None)
    metrics = (summary or (computed[0] if computed else {})).get("Metrics", {})
    accuracy: dict[str, Any] = {"windows": len(computed)}
    if "AverageWeightedQuantileLoss" in metrics:
        accuracy["avg_wQL"] = metrics["AverageWeightedQuantileLoss"]
    accuracy["wQL"] = {
        _quantile_type(w["Quantile"]): w["LossValue"]
        for w in metrics.get("WeightedQuantileLosses", [])
        if "Quantile" in w and "LossValue" in w
    }
    errors: dict[str, dict[str, Any]] = {e.get("ForecastType"): e for e in metrics.get("ErrorMetrics", [])}
    point = errors.get("mean") or errors.get("0.5") or next(iter(errors.values()), {})
    for key in ("WAPE", "RMSE", "MAPE", "MASE"):
        if key in point:
            accuracy[key] = point[key]
    if "RMSE" not in accuracy and "RMSE" in metrics:
        accuracy["RMSE"] = metrics["RMSE"]
    return accuracy


class AmazonForecastBackend:
    name = "amazon-forecast"

    def __init__(self, settings: Settings, forecast_client):
        if not settings.forecast_role_arn:
            raise ValueError("forecast_backend amazon-forecast needs forecast_role_arn (DEMAND_FORECAST_ROLE_ARN)")
        self.settings = settings
        self.client = forecast_client
        self.role_arn = settings.forecast_role_arn
        # The role Forecast assumes lives in the account that owns the resources: its ARN gives the account
        # id needed to rebuild a resource ARN on ResourceAlreadyExistsException, with no STS call.
        self.account = self.role_arn.split(":")[4]
        self.types = forecast_types(tuple(settings.quantiles))
        self.tags = [{"Key": "project", "Value": settings.prefix}, {"Key": "tenant", "Value": settings.tenant}]
        self.export_bucket = settings.names.bucket("forecast-export")

    # --- names and ARNs -------------------------------------------------------------------------------

    @staticmethod
    def _attempt(run: dict[str, Any]) -> str:
        """`run_id[_yymmddHHMMSS of started_at]`. A restart of a failed run (same run_id, new started_at)
        must not reuse the failed run's resources, nor an import of the data it replaced; a retry within
        one execution (same started_at) must."""
        started = re.sub(r"\D", "", str(run.get("started_at") or ""))[2:14]
        return f"{run['run_id']}_{started}" if started else run["run_id"]

    def _stem(self, run: dict[str, Any]) -> str:
        # dataset_group <= 33 chars (prefix 31 + _W), so the stem fits Forecast's 63-character names.
        return f"{run['dataset_group']}_{self._attempt(run)}"

    @staticmethod
    def _dataset_name(run: dict[str, Any], dataset: str) -> str:
        # The dataset group is shared by runs of one frequency; a schema change (e.g. with_location)
        # gets a new dataset rather than an import into one with the old schema.
        digest = hashlib.sha256(json.dumps(run["schemas"][dataset], sort_keys=True).encode()).hexdigest()[:6]
        return f"{run['dataset_group']}_{dataset}_{digest}"

    def _arn(self, kind: str, name: str) -> str:
        meta = self.client.meta
        return f"arn:{meta.partition}:forecast:{meta.region_name}:{self.account}:{kind}/{name}"

    def _create(self, operation: str, arn_key: str, existing_arn: str, **params: Any) -> str:
        """Call a Create* operation (tagged); an existing resource of the same name is reused."""
        try:
            return getattr(self.client, operation)(**params, Tags=self.tags)[arn_key]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != ALREADY_EXISTS:
                raise
            log.info("forecast %s: %s exists, reused", operation, existing_arn)
            return existing_arn

    # --- polling ----------------------------------------------------------------------------------------

    @staticmethod
    def _poll(run: dict[str, Any], step: str, described: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        """Describe* responses -> DONE when all are ACTIVE, FAILED on the first failed one, else IN_PROGRESS."""
        for arn, response in described:
            status = response.get("Status", "")
            if status != "ACTIVE" and status not in RUNNING:
                message = response.get("Message") or f"status {status}"
                log.warning(
                    "run=%s step=%s resource=%s status=%s message=%s", run["run_id"], step, arn, status, message
                )
                return {
                    "status": FAILED,
                    "failure": {"step": step, "resource": arn, "resource_status": status, "message": message},
                }
        if all(response.get("Status") == "ACTIVE" for _, response in described):
            return {"status": DONE}
        return {"status": IN_PROGRESS, "wait_seconds": backoff(run)}

    @staticmethod
    def _started(**fields: Any) -> dict[str, Any]:
        """A start step's result: back-off restarts from its first interval for the new resource."""
        return {"status": IN_PROGRESS, "wait_seconds": backoff({}), **fields}

    # --- steps ------------------------------------------------------------------------------------------

    def import_datasets(self, run: dict[str, Any]) -> dict[str, Any]:
        """Dataset group, one dataset per manifest dataset, attach them, and one FULL import job each."""
        manifest = run["manifest"]
        group = run["dataset_group"]
        group_arn = self._create(
            "create_dataset_group",
            "DatasetGroupArn",
            self._arn("dataset-group", group),
            DatasetGroupName=group,
            Domain=DOMAIN,
        )
        names = [d for d in DATASETS if d in manifest["datasets"]]
        dataset_arns: dict[str, str] = {}
        for dataset in names:
            spec, name = manifest["datasets"][dataset], self._dataset_name(run, dataset)
            frequency = {} if spec["dataset_type"] == METADATA_TYPE else {"DataFrequency": manifest["frequency"]}
            dataset_arns[dataset] = self._create(
                "create_dataset",
                "DatasetArn",
                self._arn("dataset", name),
                DatasetName=name,
                Domain=DOMAIN,
                DatasetType=spec["dataset_type"],
                Schema=run["schemas"][dataset],
                **frequency,
            )
        self.client.update_dataset_group(DatasetGroupArn=group_arn, DatasetArns=[dataset_arns[d] for d in names])
        import_arns: dict[str, str] = {}
        for dataset in names:
            spec, job = manifest["datasets"][dataset], f"{dataset}_{self._attempt(run)}"
            timestamps = (
                {}
                if spec["dataset_type"] == METADATA_TYPE
                else {"TimestampFormat": manifest.get("timestamp_format", "yyyy-MM-dd")}
            )
            import_arns[dataset] = self._create(
                "create_dataset_import_job",
                "DatasetImportJobArn",
                self._arn("dataset-import-job", f"{self._dataset_name(run, dataset)}/{job}"),
                DatasetImportJobName=job,
                DatasetArn=dataset_arns[dataset],
                DataSource={"S3Config": {"Path": f"s3://{run['bucket']}/{spec['path']}", "RoleArn": self.role_arn}},
                Format="CSV",
                # Forecast trains on a dataset's latest import only: each manifest is the full window.
                ImportMode="FULL",
                **timestamps,
            )
        return self._started(dataset_group_arn=group_arn, dataset_arns=dataset_arns, import_job_arns=import_arns)

    def check_import(self, run: dict[str, Any]) -> dict[str, Any]:
        described = [
            (arn, self.client.describe_dataset_import_job(DatasetImportJobArn=arn))
            for arn in run["import_job_arns"].values()
        ]
        return self._poll(run, "check_import", described)

    def train_predictor(self, run: dict[str, Any]) -> dict[str, Any]:
        manifest = run["manifest"]
        name = self._stem(run)
        data_config: dict[str, Any] = {"DatasetGroupArn": run["dataset_group_arn"]}
        if manifest.get("country"):
            data_config["AdditionalDatasets"] = [
                {"Name": "holiday", "Configuration": {"CountryCode": [manifest["country"]]}}
            ]
        dimensions = {"ForecastDimensions": ["location"]} if manifest.get("with_location") else {}
        predictor_arn = self._create(
            "create_auto_predictor",
            "PredictorArn",
            self._arn("predictor", name),
            PredictorName=name,
            ForecastHorizon=int(manifest["horizon"]),
            ForecastTypes=self.types,
            ForecastFrequency=manifest["frequency"],
            DataConfig=data_config,
            # The accuracy gate ranks predictors by avg wQL first.
            OptimizationMetric="AverageWeightedQuantileLoss",
            ExplainPredictor=False,
            **dimensions,
        )
        return self._started(predictor_id=predictor_arn)

    def check_training(self, run: dict[str, Any]) -> dict[str, Any]:
        arn = run["predictor_id"]
        return self._poll(run, "check_training", [(arn, self.client.describe_auto_predictor(PredictorArn=arn))])

    def get_accuracy(self, run: dict[str, Any]) -> dict[str, Any]:
        response = self.client.get_accuracy_metrics(PredictorArn=run["predictor_id"])
        return {"status": DONE, "accuracy": accuracy_summary(response)}

    def create_forecast(self, run: dict[str, Any]) -> dict[str, Any]:
        name = self._stem(run)
        forecast_arn = self._create(
            "create_forecast",
            "ForecastArn",
            self._arn("forecast", name),
            ForecastName=name,
            PredictorArn=run["forecast_predictor"],
            ForecastTypes=self.types,
        )
        return self._started(forecast_arn=forecast_arn)

    def check_forecast(self, run: dict[str, Any]) -> dict[str, Any]:
        arn = run["forecast_arn"]
        return self._poll(run, "check_forecast", [(arn, self.client.describe_forecast(ForecastArn=arn))])

    def _export_prefix(self, run: dict[str, Any]) -> str:
        return f"exports/{run['run_id']}/forecast/"

    def export_forecast(self, run: dict[str, Any]) -> dict[str, Any]:
        forecast_arn = run["forecast_arn"]
        job = f"export_{self._attempt(run)}"
        export_job_arn = self._create(
            "create_forecast_export_job",
            "ForecastExportJobArn",
            # Export job ARNs are scoped by the forecast: forecast-export-job/<forecast name>/<job name>.
            self._arn("forecast-export-job", f"{forecast_arn.split('/', 1)[1]}/{job}"),
            ForecastExportJobName=job,
            ForecastArn=forecast_arn,
            Destination={
                "S3Config": {"Path": f"s3://{self.export_bucket}/{self._export_prefix(run)}", "RoleArn": self.role_arn}
            },
            Format="CSV",
        )
        return self._started(export_job_arn=export_job_arn)

    def check_export(self, run: dict[str, Any]) -> dict[str, Any]:
        arn = run["export_job_arn"]
        result = self._poll(
            run, "check_export", [(arn, self.client.describe_forecast_export_job(ForecastExportJobArn=arn))]
        )
        if result["status"] == DONE:
            result["export"] = {"bucket": self.export_bucket, "prefix": self._export_prefix(run)}
        return result


@register("amazon-forecast")
def _amazon_forecast(settings: Settings, store: ObjectStore, clients: Clients) -> AmazonForecastBackend:
    return AmazonForecastBackend(settings, clients("forecast"))
