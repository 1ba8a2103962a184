"""One typed configuration object, built once at the edge (file, environment, CLI flags) and passed down.

Every resource name the code uses (streams, buckets, tables) is derived here from `prefix`, so the
infrastructure templates and the code are compared against one definition (see tests/unit/test_infra_names).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.holidays import DEFAULT_COUNTRY, check_country


@dataclass(frozen=True)
class ResourceNames:
    """Names of every AWS resource the pipeline reads or writes, derived from one prefix."""

    prefix: str
    bucket_suffix: str = ""  # S3 names are global: an optional suffix (e.g. "-123456789012") keeps them unique

    @property
    def sales_events_stream(self) -> str:
        return f"{self.prefix}-sales-events"

    @property
    def sales_clean_stream(self) -> str:
        return f"{self.prefix}-sales-clean"

    @property
    def sales_outliers_stream(self) -> str:
        return f"{self.prefix}-sales-outliers"

    @property
    def streams(self) -> tuple[str, ...]:
        return (self.sales_events_stream, self.sales_clean_stream, self.sales_outliers_stream)

    def bucket(self, role: str) -> str:
        if role not in BUCKET_ROLES:
            raise ValueError(f"unknown bucket role {role!r}; expected one of {', '.join(BUCKET_ROLES)}")
        return f"{self.prefix}-{role}{self.bucket_suffix}"

    @property
    def buckets(self) -> dict[str, str]:
        return {role: self.bucket(role) for role in BUCKET_ROLES}

    @property
    def champion_table(self) -> str:
        return f"{self.prefix}-champion-predictors"

    @property
    def api_cache_table(self) -> str:
        return f"{self.prefix}-forecast-cache"

    @property
    def run_table(self) -> str:
        return f"{self.prefix}-forecast-runs"

    @property
    def tables(self) -> tuple[str, ...]:
        return (self.champion_table, self.api_cache_table, self.run_table)

    @property
    def glue_database(self) -> str:
        return self.prefix.replace("-", "_")

    @property
    def athena_workgroup(self) -> str:
        return f"{self.prefix}-analytics"

    @property
    def notify_topic(self) -> str:
        return f"{self.prefix}-forecast-notifications"


# Bucket roles: where each stage lands its output (one bucket each).
BUCKET_ROLES: tuple[str, ...] = (
    "staged",
    "analysis",
    "rejected",
    "forecast-input",
    "forecast-export",
    "enriched",
    "athena-results",
)


class Settings(BaseSettings):
    """Pipeline configuration. Environment variables use the `DEMAND_` prefix (e.g. DEMAND_DATA_ROOT)."""

    model_config = SettingsConfigDict(env_prefix="DEMAND_", env_file=".env", extra="ignore")

    prefix: str = Field("demand", pattern=r"^[a-z][a-z0-9-]{1,30}$", description="resource name prefix")
    bucket_suffix: str = Field("", pattern=r"^[a-z0-9-]{0,20}$", description="appended to every bucket name")
    tenant: str = Field("default", description="tenant tag on every resource (ABAC isolation)")
    region: str = "us-east-1"
    endpoint_url: str | None = Field(
        None, description="AWS API endpoint (moto, LocalStack); falls back to AWS_ENDPOINT_URL"
    )
    runtime: str = Field("local", pattern=r"^(local|aws)$", description="object store: local dir or S3")
    data_root: Path = Field(Path(".demand"), description="local object store root: <data_root>/<bucket>/<key>")
    local_port: int = Field(4566, ge=1, le=65535, description="port of the local moto server")
    stream_shards: int = Field(2, ge=1, le=500)
    frequency: str = Field("W", pattern=r"^(D|W)$", description="forecast frequency")
    horizon: int = Field(8, ge=1, le=500, description="forecast horizon in periods")
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    country: str = Field(
        DEFAULT_COUNTRY, description="holiday calendar of the datasets: a country (GB) or country-subdivision (GB-SCT)"
    )
    forecast_models: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="candidate models of the open ensemble, comma-separated (empty: the default, LightGBM)"
    )
    backtest_windows: int = Field(3, ge=1, le=10, description="backtest windows of one horizon each")
    forecast_jobs: int = Field(
        0, ge=0, description="processes for the local models, threads for LightGBM; 0: every core"
    )
    global_trees: int = Field(150, ge=10, le=5000, description="boosting rounds of the global LightGBM model")
    global_learning_rate: float = Field(0.05, gt=0, le=1, description="learning rate of the global model")
    global_leaves: int = Field(31, ge=2, le=1024, description="leaves per tree of the global model")
    global_min_leaf: int = Field(10, ge=1, description="fewest rows a leaf of the global model holds")
    ensemble_shrink: float = Field(
        0.8, ge=0, le=1, description="how far a series' model weights are pulled to the models' pooled accuracy"
    )
    forecast_backend: str = Field("statsforecast", pattern=r"^(statsforecast|amazon-forecast)$")
    model_job: str | None = Field(
        None,
        description="Glue job that runs the statsforecast train/forecast steps (on AWS: the step Lambda cannot hold "
        "statsforecast); unset: they run in-process",
    )
    gate_tolerance: float = Field(
        0.02, ge=0, le=1, description="a challenger may be this much worse (relative wQL/WAPE) and still win"
    )
    forecast_role_arn: str | None = Field(None, description="IAM role Amazon Forecast assumes to read/write S3")
    notify_topic_arn: str | None = Field(None, description="SNS topic for run notifications (default: by name)")

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        return check_country(value)

    @field_validator("forecast_models", mode="before")
    @classmethod
    def _models(cls, value: object) -> object:
        """ "LightGBM,AutoETS" (environment, Glue arguments) or a sequence."""
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @property
    def names(self) -> ResourceNames:
        return ResourceNames(self.prefix, self.bucket_suffix)

    @property
    def local_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"
