# Same parameters as infra/cloudformation/pipeline.yaml (names in snake_case).

variable "region" {
  description = "AWS region of the stack."
  type        = string
  default     = "us-east-1"
}

variable "prefix" {
  description = "Prefix of every resource name (core.settings.Settings.prefix, DEMAND_PREFIX)."
  type        = string
  default     = "demand"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.prefix))
    error_message = "prefix must match ^[a-z][a-z0-9-]{1,30}$."
  }
}

variable "bucket_suffix" {
  description = "Optional suffix appended to every S3 bucket name for global uniqueness (e.g. -123456789012). Empty keeps ResourceNames.bucket(role)."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^(-[a-z0-9-]{1,20})?$", var.bucket_suffix))
    error_message = "bucket_suffix must be empty or start with '-'."
  }
}

variable "project" {
  description = "Value of the `project` tag on every resource."
  type        = string
  default     = "demand-pipeline"
}

variable "tenant" {
  description = "Value of the `tenant` tag on every resource (core.settings.Settings.tenant)."
  type        = string
  default     = "default"
}

variable "artefacts_bucket" {
  description = "Existing S3 bucket holding the code built by `make package` (scripts/deploy.sh creates and fills it)."
  type        = string
}

variable "artefacts_prefix" {
  description = "Key prefix of the artefacts in artefacts_bucket (one per release)."
  type        = string
  default     = "artefacts"
}

variable "orchestrator_handler" {
  description = "Python handler of the orchestrator Lambda (module.function inside the Lambda bundle)."
  type        = string
  default     = "forecast_orchestrator.handlers.handler"
}

variable "stream_mode" {
  description = "Capacity mode of the three Kinesis data streams: ON_DEMAND or PROVISIONED."
  type        = string
  default     = "ON_DEMAND"
  validation {
    condition     = contains(["ON_DEMAND", "PROVISIONED"], var.stream_mode)
    error_message = "stream_mode must be ON_DEMAND or PROVISIONED."
  }
}

variable "shard_count" {
  description = "Shards per stream when stream_mode is PROVISIONED (Settings.stream_shards)."
  type        = number
  default     = 2
}

variable "stream_retention_hours" {
  description = "Retention period of the Kinesis data streams in hours."
  type        = number
  default     = 24
}

variable "flink_parallelism" {
  description = "Initial parallelism of the outlier split Flink application (autoscaling is on)."
  type        = number
  default     = 1
}

variable "dedup_ttl_hours" {
  description = "Flink property dedup.ttl.hours."
  type        = number
  default     = 24
}

variable "out_of_orderness_seconds" {
  description = "Flink property out_of_orderness.seconds."
  type        = number
  default     = 60
}

variable "flink_batch_records" {
  description = "Flink property batch.records."
  type        = number
  default     = 1000
}

variable "flink_batch_ms" {
  description = "Flink property batch.ms."
  type        = number
  default     = 500
}

variable "dedup_max_ids" {
  description = "Flink property dedup.max.ids."
  type        = number
  default     = 200000
}

variable "future_slack_hours" {
  description = "Flink property future_slack.hours."
  type        = number
  default     = 24
}

variable "flink_batch_bytes" {
  description = "Flink property batch.bytes."
  type        = number
  default     = 4194304
}

variable "outlier_thresholds" {
  description = "Flink property outlier.thresholds: a JSON object overriding the outlier split's thresholds (core/settings.py OutlierSettings)."
  type        = string
  default     = "{}"
}

variable "firehose_buffer_seconds" {
  description = "Firehose buffering interval in seconds."
  type        = number
  default     = 300
}

variable "firehose_buffer_mb" {
  description = "Firehose buffer size in MiB (at least 64 with format conversion and dynamic partitioning)."
  type        = number
  default     = 128
}

variable "forecast_frequency" {
  description = "Forecast frequency passed to the Glue jobs and the orchestrator (D or W)."
  type        = string
  default     = "W"
}

variable "forecast_horizon" {
  description = "Forecast horizon in periods."
  type        = number
  default     = 8
}

variable "alert_rules" {
  description = "Key under the artefacts prefix of the alert rules JSON (README, Alerts); empty for the default rules."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^[A-Za-z0-9_./-]*$", var.alert_rules))
    error_message = "alert_rules is an S3 key under the artefacts prefix: letters, digits, _ . / - only."
  }
}

variable "build_inputs_schedule" {
  description = "Glue trigger schedule of build_forecast_inputs (Glue cron syntax, UTC)."
  type        = string
  default     = "cron(0 2 ? * MON *)"
}

variable "input_manifest_suffix" {
  description = "Key suffix of the object whose creation in the forecast-input bucket starts the state machine."
  type        = string
  default     = "manifest.json"
}

variable "export_manifest_suffix" {
  description = "Key suffix of the object whose creation in the forecast-export bucket starts enrich_forecast."
  type        = string
  default     = "manifest.json"
}

variable "log_retention_days" {
  description = "Retention of every CloudWatch log group of the stack."
  type        = number
  default     = 365
}

variable "iterator_age_threshold_ms" {
  description = "Alarm threshold on GetRecords.IteratorAgeMilliseconds of each stream."
  type        = number
  default     = 60000
}
