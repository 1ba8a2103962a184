"""One typed configuration object, built once at the edge (file, environment, CLI flags) and passed down.

Every resource name the code uses (streams, buckets, tables) is derived here from `prefix`, so the
infrastructure templates and the code are compared against one definition (see tests/unit/test_infra_names).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.holidays import DEFAULT_COUNTRY, check_country

# Landed table (core/tables.py) -> the suffix of the Kinesis stream that carries its rows from the split to Firehose.
LANDING_STREAMS = {
    "sales": "sales-clean",
    "outliers": "sales-outliers",
    "rejected": "split-rejected",
    "products": "product-events",
    "campaigns": "campaign-events",
}


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
        return self.landing_stream("sales")

    @property
    def sales_outliers_stream(self) -> str:
        return self.landing_stream("outliers")

    def landing_stream(self, table: str) -> str:
        """The Kinesis stream the split writes a landed table's rows to on AWS (its Firehose lands them)."""
        return f"{self.prefix}-{LANDING_STREAMS[table]}"

    @property
    def streams(self) -> tuple[str, ...]:
        return (self.sales_events_stream, *(self.landing_stream(t) for t in LANDING_STREAMS))

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
    def stock_table(self) -> str:
        """Stock on hand per item (and store): what `demand stock --save` writes and GET /items/{id}/stock reads."""
        return f"{self.prefix}-stock-on-hand"

    @property
    def table_keys(self) -> dict[str, str]:
        """Every DynamoDB table and its hash key."""
        return {self.champion_table: "dataset_group", self.api_cache_table: "item_id", self.run_table: "run_id",
                self.stock_table: "series_id"}  # fmt: skip

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(self.table_keys)

    @property
    def glue_database(self) -> str:
        return self.prefix.replace("-", "_")

    @property
    def athena_workgroup(self) -> str:
        return f"{self.prefix}-analytics"

    @property
    def notify_topic(self) -> str:
        return f"{self.prefix}-forecast-notifications"

    @property
    def alerts_topic(self) -> str:
        return f"{self.prefix}-demand-alerts"


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


class OutlierSettings(BaseModel):
    """The outlier split's thresholds; flink_jobs/detector.py explains the rules they set. Environment:
    DEMAND_OUTLIER__<NAME> (DEMAND_OUTLIER__SPIKE_VS_DAY=4); Managed Flink: the `outlier.thresholds` property, a JSON
    object of the same names. Chosen on the first half of the Online Retail year and generator seed 3 (README)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: int = Field(64, ge=8, description="recent clean lines of an item behind its line and price references")
    min_history: int = Field(8, ge=1, description="lines an item needs before its own references judge its lines")
    day_window: int = Field(28, ge=1, description="selling days behind an item's typical daily demand")
    min_days: int = Field(5, ge=1, description="selling days the daily reference needs")
    customer_lines: int = Field(8, ge=2, description="lines remembered per customer and item")
    customers: int = Field(256, ge=1, description="customers remembered per item (the first seen goes first)")
    spike_vs_day: float = Field(4.0, gt=0, description="a quantity spike is this many times the item's typical day")
    spike_vs_lines: float = Field(6.0, gt=0, description="... and this many times its 90th-percentile line ...")
    no_discount: float = Field(
        0.95, gt=0, le=1, description="... at no quantity discount: at least this share of the usual small-line price"
    )
    spike_vs_customer: float = Field(
        8.0, gt=1, description="a known customer's line this many times their usual one is beyond their habit"
    )
    customer_vs_lines: float = Field(
        1.5, gt=0, description="a customer spike is also this many times the item's 90th-percentile line"
    )
    price_ratio: float = Field(2.5, gt=1, description="a price this far, either way, from the price for its quantity")
    price_band_lines: int = Field(3, ge=1, description="lines a quantity band needs before its median price counts")
    promo_lift: float = Field(5.0, ge=1, description="how much wider the quantity references are during a campaign")
    max_price: float = Field(100_000.0, gt=0, description="unit prices above this are outliers (price_limit)")
    recent_orders: int = Field(1024, ge=1, description="orders remembered per item, to match cancellations")


class AnomalySettings(BaseModel):
    """Demand anomalies (glue_jobs/demand_anomalies.py) and their alerts (alerts/). Environment:
    DEMAND_ANOMALY__<NAME> (DEMAND_ANOMALY__WEBHOOK_URL=https://...); Glue: the detect job's arguments."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: float = Field(4.0, gt=0, description="score (normal quantile of the tail) beyond which a period is one")
    lookback: int = Field(
        0, ge=0, description="periods back whose anomalies a run reports and alerts on; 0: 28 days or 8 weeks"
    )
    rules: str | None = Field(
        None, description="alert rules: a JSON file (path or s3://bucket/key); unset: the default rules (README)"
    )
    webhook_url: str | None = Field(None, description="also POST every alert as JSON to this URL")
    alert_file: Path | None = Field(
        None, description="JSON-lines file every alert is appended to; unset: <data_root>/alerts.jsonl locally"
    )
    topic_arn: str | None = Field(None, description="SNS topic of the alerts (default: <prefix>-demand-alerts)")


class Settings(BaseSettings):
    """Pipeline configuration. Environment variables use the `DEMAND_` prefix (e.g. DEMAND_DATA_ROOT)."""

    model_config = SettingsConfigDict(env_prefix="DEMAND_", env_file=".env", extra="ignore", env_nested_delimiter="__")

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
    coherent_totals: bool = Field(
        True, description="also forecast every category, store and the total, reconciled with the items' forecasts"
    )
    totals_models: Annotated[tuple[str, ...], NoDecode] = Field(
        ("LightGBM", "AutoTheta"),
        description="candidate models of the aggregates' ensemble (coherent totals), comma-separated",
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
    outlier: OutlierSettings = Field(default_factory=OutlierSettings, description="the outlier split's thresholds")
    anomaly: AnomalySettings = Field(default_factory=AnomalySettings, description="demand anomalies and their alerts")
    forecast_role_arn: str | None = Field(None, description="IAM role Amazon Forecast assumes to read/write S3")
    notify_topic_arn: str | None = Field(None, description="SNS topic for run notifications (default: by name)")

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        return check_country(value)

    @field_validator("forecast_models", "totals_models", mode="before")
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
