# The pipeline stack; resource for resource the same as infra/cloudformation/pipeline.yaml.
# Names follow core.settings.ResourceNames (tests/unit/test_infra_names.py compares them).

locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.region

  # ResourceNames.glue_database
  glue_database = replace(var.prefix, "-", "_")

  # ResourceNames.streams
  streams = {
    "sales-events"   = "${var.prefix}-sales-events"
    "sales-clean"    = "${var.prefix}-sales-clean"
    "sales-outliers"  = "${var.prefix}-sales-outliers"
    "split-rejected"  = "${var.prefix}-split-rejected"
    "product-events"  = "${var.prefix}-product-events"
    "campaign-events" = "${var.prefix}-campaign-events"
  }

  # core.settings.BUCKET_ROLES -> ResourceNames.bucket(role); lifecycle per role.
  bucket_roles = ["staged", "analysis", "rejected", "forecast-input", "forecast-export", "enriched", "athena-results"]
  buckets      = { for role in local.bucket_roles : role => "${var.prefix}-${role}${var.bucket_suffix}" }
  bucket_lifecycle = {
    "staged"          = { expiration_days = null, ia_days = 90, noncurrent_days = 30 }
    "analysis"        = { expiration_days = null, ia_days = 90, noncurrent_days = 30 }
    "rejected"        = { expiration_days = 365, ia_days = null, noncurrent_days = 30 }
    "forecast-input"  = { expiration_days = 180, ia_days = null, noncurrent_days = 30 }
    "forecast-export" = { expiration_days = 365, ia_days = null, noncurrent_days = 30 }
    "enriched"        = { expiration_days = null, ia_days = null, noncurrent_days = 30 }
    "athena-results"  = { expiration_days = 30, ia_days = null, noncurrent_days = 7 }
  }

  # ResourceNames.tables -> hash key and TTL attribute
  dynamodb_tables = {
    "champion-predictors" = { hash_key = "dataset_group", ttl = null }
    "forecast-cache"      = { hash_key = "item_id", ttl = "expires_at" }
    "forecast-runs"       = { hash_key = "run_id", ttl = null }
    "stock-on-hand"       = { hash_key = "series_id", ttl = null }
  }

  # Glue tables = core/tables.py LANDED table names; columns from generated.tf.
  glue_tables = {
    sales     = { bucket = "staged", description = "Clean sales landed by Firehose (core.contracts.SALE)." }
    outliers  = { bucket = "analysis", description = "Outlier sales with the reason (core.contracts.OUTLIER)." }
    rejected  = { bucket = "rejected", description = "Records that could not become events (core.contracts.REJECTED)." }
    products  = { bucket = "staged", description = "Item metadata updates (core.contracts.PRODUCT)." }
    campaigns = { bucket = "staged", description = "Promotion start/end events (core.contracts.CAMPAIGN)." }
  }

  # Firehose landings: stream -> bucket, table and prefix (core/tables.py firehose_prefix).
  # The split writes one stream per landed table (flink_jobs/properties.py AWS_SINKS).
  landings = {
    "sales-clean"     = { bucket = "staged", table = "sales", prefix = "sales" }
    "sales-outliers"  = { bucket = "analysis", table = "outliers", prefix = "outliers" }
    "split-rejected"  = { bucket = "rejected", table = "rejected", prefix = "rejected" }
    "product-events"  = { bucket = "staged", table = "products", prefix = "products" }
    "campaign-events" = { bucket = "staged", table = "campaigns", prefix = "campaigns" }
  }
  error_layout   = "!{firehose:error-output-type}/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}"

  # Managed Flink property group (keys: flink_jobs/properties.py, checked by a precondition below).
  flink_properties = {
    "aws.region"               = local.region
    "input.stream"             = aws_kinesis_stream.this["sales-events"].name
    "clean.stream"             = aws_kinesis_stream.this["sales-clean"].name
    "outliers.stream"          = aws_kinesis_stream.this["sales-outliers"].name
    "rejected.stream"          = aws_kinesis_stream.this["split-rejected"].name
    "products.stream"          = aws_kinesis_stream.this["product-events"].name
    "campaigns.stream"         = aws_kinesis_stream.this["campaign-events"].name
    "dedup.ttl.hours"          = tostring(var.dedup_ttl_hours)
    "out_of_orderness.seconds" = tostring(var.out_of_orderness_seconds)
    "batch.records"            = tostring(var.flink_batch_records)
    "batch.ms"                 = tostring(var.flink_batch_ms)
    "dedup.max.ids"            = tostring(var.dedup_max_ids)
    "future_slack.hours"       = tostring(var.future_slack_hours)
    "batch.bytes"              = tostring(var.flink_batch_bytes)
    "outlier.thresholds"       = var.outlier_thresholds
  }

  glue_jobs = {
    build_forecast_inputs = { name = "build-forecast-inputs", max_concurrent_runs = 1, extra_arguments = {} }
    enrich_forecast       = { name = "enrich-forecast", max_concurrent_runs = 2, extra_arguments = { "--export_key" = "" } }
    # statsforecast train / forecast steps of the workflow, on Spark (the step Lambda cannot hold statsforecast)
    forecast_steps = { name = "forecast-steps", max_concurrent_runs = 2, extra_arguments = {
      "--step" = "train", "--request_key" = "", "--use_spark" = "true"
    } }
    # demand anomalies of each dataset build and their alerts (started by the trigger below)
    detect_demand_anomalies = { name = "detect-demand-anomalies", max_concurrent_runs = 1, extra_arguments = {
      "--input_manifest_key" = "", "--lookback" = "", "--alerts_topic_arn" = aws_sns_topic.alerts.arn,
      "--rules" = var.alert_rules == "" ? "" : "${local.artefacts}/${var.alert_rules}"
    } }
  }

  artefacts = "s3://${var.artefacts_bucket}/${var.artefacts_prefix}"
}

# ------------------------------------------------------------------ encryption
resource "aws_kms_key" "data" {
  description         = "${var.prefix} pipeline data key (streams, buckets, tables, topic, logs)"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.data_key.json
}

resource "aws_kms_alias" "data" {
  name          = "alias/${var.prefix}-data"
  target_key_id = aws_kms_key.data.key_id
}

# ------------------------------------------------------------------ Kinesis data streams
resource "aws_kinesis_stream" "this" {
  for_each         = local.streams
  name             = each.value
  shard_count      = var.stream_mode == "PROVISIONED" ? var.shard_count : null
  retention_period = var.stream_retention_hours
  encryption_type  = "KMS"
  kms_key_id       = aws_kms_key.data.arn
  stream_mode_details {
    stream_mode = var.stream_mode
  }
}

# ------------------------------------------------------------------ S3
resource "aws_s3_bucket" "access_logs" {
  #checkov:skip=CKV_AWS_144:Access logs are not replicated; they are operational data, not pipeline data.
  #checkov:skip=CKV_AWS_145:S3 server access logging only delivers to SSE-S3 targets, not SSE-KMS.
  bucket = "${var.prefix}-access-logs${var.bucket_suffix}"
}

resource "aws_s3_bucket" "data" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery decision per deployment; the stack is single-region.
  for_each = local.buckets
  bucket   = each.value
}

resource "aws_s3_bucket_server_side_encryption_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "data" {
  for_each = aws_s3_bucket.data
  bucket   = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.data.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "access_logs" {
  bucket                  = aws_s3_bucket.access_logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_public_access_block" "data" {
  for_each                = aws_s3_bucket.data
  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_ownership_controls" "data" {
  for_each = aws_s3_bucket.data
  bucket   = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_versioning" "data" {
  for_each = aws_s3_bucket.data
  bucket   = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_logging" "data" {
  for_each      = aws_s3_bucket.data
  bucket        = each.value.id
  target_bucket = aws_s3_bucket.access_logs.id
  target_prefix = "${each.key}/"
}

resource "aws_s3_bucket_lifecycle_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  rule {
    id     = "expire-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = 365
    }
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "data" {
  for_each = aws_s3_bucket.data
  bucket   = each.value.id
  rule {
    id     = "retention"
    status = "Enabled"
    filter {}
    dynamic "expiration" {
      for_each = local.bucket_lifecycle[each.key].expiration_days == null ? [] : [local.bucket_lifecycle[each.key].expiration_days]
      content {
        days = expiration.value
      }
    }
    dynamic "transition" {
      for_each = local.bucket_lifecycle[each.key].ia_days == null ? [] : [local.bucket_lifecycle[each.key].ia_days]
      content {
        days          = transition.value
        storage_class = "STANDARD_IA"
      }
    }
    noncurrent_version_expiration {
      noncurrent_days = local.bucket_lifecycle[each.key].noncurrent_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

# EventBridge notifications: the forecast-input and forecast-export triggers need them; on for every bucket
# so object-level events are available to audit rules too.
resource "aws_s3_bucket_notification" "access_logs" {
  bucket      = aws_s3_bucket.access_logs.id
  eventbridge = true
}

resource "aws_s3_bucket_notification" "data" {
  for_each    = aws_s3_bucket.data
  bucket      = each.value.id
  eventbridge = true
}

data "aws_iam_policy_document" "tls_only" {
  for_each = merge(local.buckets, { "access-logs" = aws_s3_bucket.access_logs.bucket })
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = ["arn:${local.partition}:s3:::${each.value}", "arn:${local.partition}:s3:::${each.value}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
  dynamic "statement" {
    for_each = each.key == "access-logs" ? [1] : []
    content {
      sid       = "S3ServerAccessLogsDelivery"
      actions   = ["s3:PutObject"]
      resources = ["arn:${local.partition}:s3:::${each.value}/*"]
      principals {
        type        = "Service"
        identifiers = ["logging.s3.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account]
      }
    }
  }
}

resource "aws_s3_bucket_policy" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  policy = data.aws_iam_policy_document.tls_only["access-logs"].json
}

resource "aws_s3_bucket_policy" "data" {
  for_each = aws_s3_bucket.data
  bucket   = each.value.id
  policy   = data.aws_iam_policy_document.tls_only[each.key].json
}

# ------------------------------------------------------------------ Glue catalog
resource "aws_glue_catalog_database" "this" {
  name        = local.glue_database
  description = "Landing tables (sales, outliers, rejected, products, campaigns) and enriched forecasts."
}

resource "aws_glue_catalog_table" "landing" {
  for_each      = local.glue_tables
  name          = each.key
  database_name = aws_glue_catalog_database.this.name
  description   = each.value.description
  table_type    = "EXTERNAL_TABLE"
  # Partition projection: Athena sees new partitions without a crawler or MSCK REPAIR (keys: generated.tf).
  parameters = merge({
    classification              = "parquet"
    EXTERNAL                    = "TRUE"
    "storage.location.template" = "s3://${aws_s3_bucket.data[each.value.bucket].bucket}/${each.key}/${local.partition_path}/"
  }, local.partition_projection)
  dynamic "partition_keys" {
    for_each = local.partition_keys_list
    content {
      name = partition_keys.value
      type = "string"
    }
  }
  storage_descriptor {
    location      = "s3://${aws_s3_bucket.data[each.value.bucket].bucket}/${each.key}/"
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
    ser_de_info {
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    }
    dynamic "columns" {
      for_each = local.glue_table_columns[each.key]
      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = columns.value.comment
      }
    }
  }
}

# ------------------------------------------------------------------ log groups
resource "aws_cloudwatch_log_group" "this" {
  for_each = {
    flink         = "/aws/kinesis-analytics/${var.prefix}-outlier-split"
    firehose      = "/aws/kinesisfirehose/${var.prefix}"
    state_machine = "/aws/vendedlogs/states/${var.prefix}-forecast-orchestrator"
    orchestrator  = "/aws/lambda/${var.prefix}-forecast-orchestrator"
    start_enrich  = "/aws/lambda/${var.prefix}-start-enrich"
  }
  name              = each.value
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.data.arn
}

resource "aws_cloudwatch_log_stream" "flink" {
  name           = "application"
  log_group_name = aws_cloudwatch_log_group.this["flink"].name
}

resource "aws_cloudwatch_log_stream" "firehose" {
  for_each       = local.landings
  name           = each.key
  log_group_name = aws_cloudwatch_log_group.this["firehose"].name
}

# ------------------------------------------------------------------ Managed Service for Apache Flink
resource "aws_kinesisanalyticsv2_application" "outlier_split" {
  name                   = "${var.prefix}-outlier-split"
  description            = "PyFlink outlier split (flink_jobs/outlier_split.py)."
  runtime_environment    = "FLINK-2_3" # apache-flink==2.3.0 in pyproject.toml
  service_execution_role = aws_iam_role.flink.arn

  application_configuration {
    application_code_configuration {
      code_content_type = "ZIPFILE"
      code_content {
        s3_content_location {
          bucket_arn = "arn:${local.partition}:s3:::${var.artefacts_bucket}"
          file_key   = "${var.artefacts_prefix}/flink/outlier-split.zip"
        }
      }
    }
    application_snapshot_configuration {
      snapshots_enabled = true
    }
    environment_properties {
      property_group {
        property_group_id = local.flink_run_options_group
        property_map      = local.flink_run_options
      }
      property_group {
        property_group_id = local.flink_property_group
        property_map      = local.flink_properties
      }
    }
    flink_application_configuration {
      checkpoint_configuration {
        configuration_type = "DEFAULT"
      }
      monitoring_configuration {
        configuration_type = "CUSTOM"
        log_level          = "INFO"
        metrics_level      = "APPLICATION"
      }
      parallelism_configuration {
        configuration_type   = "CUSTOM"
        parallelism          = var.flink_parallelism
        parallelism_per_kpu  = 1
        auto_scaling_enabled = true
      }
    }
  }

  cloudwatch_logging_options {
    log_stream_arn = aws_cloudwatch_log_stream.flink.arn
  }

  lifecycle {
    precondition {
      condition     = toset(keys(local.flink_properties)) == toset(local.flink_property_keys)
      error_message = "The DemandPipeline property keys differ from flink_jobs/properties.py (run python infra/generate.py)."
    }
  }
}

# ------------------------------------------------------------------ Firehose landing
resource "aws_kinesis_firehose_delivery_stream" "landing" {
  # No server_side_encryption block: Firehose SSE applies to DirectPut only; the source stream and the
  # destination bucket are encrypted with the data key.
  for_each    = local.landings
  name        = "${var.prefix}-${each.key}"
  destination = "extended_s3"

  kinesis_source_configuration {
    kinesis_stream_arn = aws_kinesis_stream.this[each.key].arn
    role_arn           = aws_iam_role.firehose.arn
  }

  extended_s3_configuration {
    role_arn            = aws_iam_role.firehose.arn
    bucket_arn          = aws_s3_bucket.data[each.value.bucket].arn
    prefix              = "${each.value.prefix}/${local.partition_keys}/"
    error_output_prefix = "errors/${each.value.prefix}/${local.error_layout}/"
    buffering_interval  = var.firehose_buffer_seconds
    buffering_size      = var.firehose_buffer_mb
    compression_format  = "UNCOMPRESSED" # parquet pages are SNAPPY-compressed by the serializer
    kms_key_arn         = aws_kms_key.data.arn

    cloudwatch_logging_options {
      enabled         = true
      log_group_name  = aws_cloudwatch_log_group.this["firehose"].name
      log_stream_name = aws_cloudwatch_log_stream.firehose[each.key].name
    }

    dynamic_partitioning_configuration {
      enabled        = true
      retry_duration = 300
    }

    processing_configuration {
      enabled = true
      processors {
        type = "MetadataExtraction"
        parameters {
          parameter_name  = "MetadataExtractionQuery"
          parameter_value = local.landing_jq[each.value.table]
        }
        parameters {
          parameter_name  = "JsonParsingEngine"
          parameter_value = "JQ-1.6"
        }
      }
    }

    data_format_conversion_configuration {
      enabled = true
      # Timestamps are written as yyyy-MM-ddTHH:mm:ss.SSSZ (streaming/events.py); Joda pattern for Hive JSON SerDe.
      input_format_configuration {
        deserializer {
          hive_json_ser_de {
            timestamp_formats = ["yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"]
          }
        }
      }
      output_format_configuration {
        serializer {
          parquet_ser_de {
            compression = "SNAPPY"
          }
        }
      }
      schema_configuration {
        catalog_id    = local.account
        database_name = aws_glue_catalog_database.this.name
        table_name    = aws_glue_catalog_table.landing[each.value.table].name
        region        = local.region
        role_arn      = aws_iam_role.firehose.arn
        version_id    = "LATEST"
      }
    }
  }
}

# ------------------------------------------------------------------ Glue jobs
resource "aws_glue_security_configuration" "this" {
  name = "${var.prefix}-glue"
  encryption_configuration {
    cloudwatch_encryption {
      cloudwatch_encryption_mode = "SSE-KMS"
      kms_key_arn                = aws_kms_key.data.arn
    }
    job_bookmarks_encryption {
      job_bookmarks_encryption_mode = "CSE-KMS"
      kms_key_arn                   = aws_kms_key.data.arn
    }
    s3_encryption {
      s3_encryption_mode = "SSE-KMS"
      kms_key_arn        = aws_kms_key.data.arn
    }
  }
}

resource "aws_glue_job" "this" {
  for_each               = local.glue_jobs
  name                   = "${var.prefix}-${each.value.name}"
  description            = "glue_jobs/${each.key}.py"
  role_arn               = aws_iam_role.glue.arn
  glue_version           = "5.0"
  worker_type            = "G.1X"
  number_of_workers      = 2
  timeout                = 120
  max_retries            = 0
  security_configuration = aws_glue_security_configuration.this.name

  execution_property {
    max_concurrent_runs = each.value.max_concurrent_runs
  }

  command {
    name            = "glueetl"
    python_version  = "3"
    script_location = "${local.artefacts}/glue/${each.key}.py"
  }

  default_arguments = merge({
    "--JOB_NAME"                         = "${var.prefix}-${each.value.name}"
    "--prefix"                           = var.prefix
    "--tenant"                           = var.tenant
    "--runtime"                          = "aws"
    "--region"                           = local.region
    "--frequency"                        = var.forecast_frequency
    "--horizon"                          = tostring(var.forecast_horizon)
    "--bucket_suffix"                    = var.bucket_suffix
    "--extra-py-files"                   = "${local.artefacts}/glue/demand_pipeline.zip"
    "--TempDir"                          = "s3://${aws_s3_bucket.data["enriched"].bucket}/_glue_temp/"
    "--job-language"                     = "python"
    "--enable-metrics"                   = "true"
    "--enable-continuous-cloudwatch-log" = "true"
    "--enable-glue-datacatalog"          = "true"
    "--job-bookmark-option"              = "job-bookmark-disable"
    # the job's wheels (generated.tf, from glue_jobs/packages.py), uploaded by deploy.sh; no package index at start
    "--additional-python-modules"        = join(",", [for w in local.glue_wheels[each.key] : "${local.artefacts}/glue/wheels/${w}"])
    "--python-modules-installer-option" = local.glue_installer_option
  }, each.value.extra_arguments)
}

resource "aws_glue_trigger" "build_forecast_inputs" {
  name              = "${var.prefix}-build-forecast-inputs-schedule"
  description       = "Runs build_forecast_inputs on build_inputs_schedule."
  type              = "SCHEDULED"
  schedule          = var.build_inputs_schedule
  start_on_creation = true
  actions {
    job_name = aws_glue_job.this["build_forecast_inputs"].name
  }
}

# Each dataset build is judged for demand anomalies as soon as it is written (the newest build by default).
resource "aws_glue_trigger" "detect_demand_anomalies" {
  name              = "${var.prefix}-detect-demand-anomalies-after-build"
  description       = "Runs detect_demand_anomalies when build_forecast_inputs succeeds."
  type              = "CONDITIONAL"
  start_on_creation = true
  predicate {
    conditions {
      job_name = aws_glue_job.this["build_forecast_inputs"].name
      state    = "SUCCEEDED"
    }
  }
  actions {
    job_name = aws_glue_job.this["detect_demand_anomalies"].name
  }
}

# ------------------------------------------------------------------ DynamoDB
resource "aws_dynamodb_table" "this" {
  for_each     = local.dynamodb_tables
  name         = "${var.prefix}-${each.key}"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = each.value.hash_key

  attribute {
    name = each.value.hash_key
    type = "S"
  }

  dynamic "ttl" {
    for_each = each.value.ttl == null ? [] : [each.value.ttl]
    content {
      attribute_name = ttl.value
      enabled        = true
    }
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.data.arn
  }

  point_in_time_recovery {
    enabled = true
  }
}

# ------------------------------------------------------------------ notifications
resource "aws_sns_topic" "notifications" {
  name              = "${var.prefix}-forecast-notifications"
  display_name      = "Demand forecast notifications and pipeline alarms"
  kms_master_key_id = aws_kms_key.data.id
}

resource "aws_sns_topic_policy" "notifications" {
  arn    = aws_sns_topic.notifications.arn
  policy = data.aws_iam_policy_document.notifications_topic.json
}

resource "aws_sns_topic" "alerts" {
  name              = "${var.prefix}-demand-alerts"
  display_name      = "Demand anomaly and outlier-rate alerts"
  kms_master_key_id = aws_kms_key.data.id
}

# Dead-letter queue of the asynchronously invoked Lambda functions.
resource "aws_sqs_queue" "lambda_dlq" {
  name                      = "${var.prefix}-lambda-dlq"
  kms_master_key_id         = aws_kms_key.data.id
  message_retention_seconds = 1209600
}

# ------------------------------------------------------------------ forecast orchestrator
resource "aws_lambda_function" "orchestrator" {
  #checkov:skip=CKV_AWS_117:The function only calls AWS APIs; a VPC would need NAT or endpoints for S3, DynamoDB, SNS, Forecast and adds nothing here.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile and a signing step in scripts/deploy.sh; follow-up in infra/README.md.
  function_name                  = "${var.prefix}-forecast-orchestrator"
  description                    = "Forecast orchestrator steps (create datasets, import, train, accuracy gate, forecast, export, notify)."
  runtime                        = "python3.11"
  architectures                  = ["x86_64"]
  handler                        = var.orchestrator_handler
  role                           = aws_iam_role.orchestrator_fn.arn
  memory_size                    = 1024
  timeout                        = 900
  reserved_concurrent_executions = 5
  kms_key_arn                    = aws_kms_key.data.arn
  s3_bucket                      = var.artefacts_bucket
  s3_key                         = "${var.artefacts_prefix}/lambda/orchestrator.zip"

  dead_letter_config {
    target_arn = aws_sqs_queue.lambda_dlq.arn
  }
  tracing_config {
    mode = "Active"
  }
  logging_config {
    log_group  = aws_cloudwatch_log_group.this["orchestrator"].name
    log_format = "JSON"
  }
  environment {
    variables = {
      DEMAND_PREFIX            = var.prefix
      DEMAND_TENANT            = var.tenant
      DEMAND_RUNTIME           = "aws"
      DEMAND_REGION            = local.region
      DEMAND_FREQUENCY         = var.forecast_frequency
      DEMAND_HORIZON           = tostring(var.forecast_horizon)
      DEMAND_BUCKET_SUFFIX     = var.bucket_suffix
      DEMAND_FORECAST_ROLE_ARN = aws_iam_role.forecast_service.arn
      DEMAND_NOTIFY_TOPIC_ARN  = aws_sns_topic.notifications.arn
      DEMAND_MODEL_JOB         = aws_glue_job.this["forecast_steps"].name
    }
  }
}

# local.sfn_definition (generated.tf) is forecast_orchestrator/state_machine.py definition(); its Tasks name the
# step Lambda as ${ForecastStepFunctionArn} (CloudFormation: DefinitionSubstitutions), replaced here by its ARN.
resource "aws_sfn_state_machine" "forecast" {
  name       = "${var.prefix}-forecast-orchestrator"
  type       = "STANDARD"
  role_arn   = aws_iam_role.state_machine.arn
  definition = replace(jsonencode(local.sfn_definition), "$${ForecastStepFunctionArn}", aws_lambda_function.orchestrator.arn)

  logging_configuration {
    level                  = "ERROR"
    include_execution_data = true
    log_destination        = "${aws_cloudwatch_log_group.this["state_machine"].arn}:*"
  }
  tracing_configuration {
    enabled = true
  }
}

# ------------------------------------------------------------------ S3 triggers (EventBridge)
resource "aws_cloudwatch_event_rule" "forecast_input_ready" {
  name        = "${var.prefix}-forecast-input-ready"
  description = "A forecast-input manifest was written -> start the forecast orchestrator."
  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created"]
    detail = {
      bucket = { name = [aws_s3_bucket.data["forecast-input"].bucket] }
      object = { key = [{ suffix = var.input_manifest_suffix }] }
    }
  })
}

resource "aws_cloudwatch_event_target" "forecast_input_ready" {
  rule      = aws_cloudwatch_event_rule.forecast_input_ready.name
  target_id = "orchestrator"
  arn       = aws_sfn_state_machine.forecast.arn
  role_arn  = aws_iam_role.events.arn
  # The run input start_run expects: {"bucket": ..., "manifest_key": ...} (it also accepts the raw event).
  input_transformer {
    input_paths = {
      bucket       = "$.detail.bucket.name"
      manifest_key = "$.detail.object.key"
    }
    input_template = "{\"bucket\": <bucket>, \"manifest_key\": <manifest_key>}"
  }
}

# EventBridge has no Glue-job target (only Glue workflows): a ten-line Lambda starts enrich_forecast.
data "archive_file" "start_enrich" {
  type                    = "zip"
  output_path             = "${path.module}/.build/start_enrich.zip"
  source_content_filename = "index.py"
  source_content          = <<-PY
    import json, os
    import boto3

    def handler(event, context):
        detail = event["detail"]
        key = f"s3://{detail['bucket']['name']}/{detail['object']['key']}"
        run = boto3.client("glue").start_job_run(JobName=os.environ["JOB_NAME"], Arguments={"--export_key": key})
        print(json.dumps({"event": "enrich_started", "export": key, "job_run_id": run["JobRunId"]}))
        return {"job_run_id": run["JobRunId"]}
  PY
}

resource "aws_lambda_function" "start_enrich" {
  #checkov:skip=CKV_AWS_117:Only calls glue:StartJobRun; a VPC would need a Glue endpoint or NAT and adds nothing here.
  #checkov:skip=CKV_AWS_272:Ten lines of inline code reviewed in this file; signing needs an AWS Signer profile (follow-up in infra/README.md).
  function_name                  = "${var.prefix}-start-enrich"
  description                    = "EventBridge forecast-export object -> glue StartJobRun enrich_forecast."
  runtime                        = "python3.11"
  handler                        = "index.handler"
  role                           = aws_iam_role.start_enrich_fn.arn
  memory_size                    = 128
  timeout                        = 30
  reserved_concurrent_executions = 2
  kms_key_arn                    = aws_kms_key.data.arn
  filename                       = data.archive_file.start_enrich.output_path
  source_code_hash               = data.archive_file.start_enrich.output_base64sha256

  dead_letter_config {
    target_arn = aws_sqs_queue.lambda_dlq.arn
  }
  tracing_config {
    mode = "Active"
  }
  logging_config {
    log_group  = aws_cloudwatch_log_group.this["start_enrich"].name
    log_format = "JSON"
  }
  environment {
    variables = {
      JOB_NAME = aws_glue_job.this["enrich_forecast"].name
    }
  }
}

resource "aws_cloudwatch_event_rule" "forecast_export_ready" {
  name        = "${var.prefix}-forecast-export-ready"
  description = "A forecast export manifest was written -> start the enrich_forecast Glue job."
  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created"]
    detail = {
      bucket = { name = [aws_s3_bucket.data["forecast-export"].bucket] }
      object = { key = [{ suffix = var.export_manifest_suffix }] }
    }
  })
}

resource "aws_cloudwatch_event_target" "forecast_export_ready" {
  rule      = aws_cloudwatch_event_rule.forecast_export_ready.name
  target_id = "start-enrich"
  arn       = aws_lambda_function.start_enrich.arn
}

resource "aws_lambda_permission" "start_enrich" {
  statement_id  = "AllowForecastExportRule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.start_enrich.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.forecast_export_ready.arn
}

resource "aws_cloudwatch_event_rule" "glue_job_failed" {
  name        = "${var.prefix}-glue-job-failed"
  description = "A pipeline Glue job run failed, timed out or stopped -> notify."
  event_pattern = jsonencode({
    source        = ["aws.glue"]
    "detail-type" = ["Glue Job State Change"]
    detail = {
      jobName = [for job in aws_glue_job.this : job.name]
      state   = ["FAILED", "TIMEOUT", "ERROR"]
    }
  })
}

resource "aws_cloudwatch_event_target" "glue_job_failed" {
  rule      = aws_cloudwatch_event_rule.glue_job_failed.name
  target_id = "notify"
  arn       = aws_sns_topic.notifications.arn
}

# ------------------------------------------------------------------ Athena
resource "aws_athena_workgroup" "analytics" {
  name        = "${var.prefix}-analytics"
  description = "Forecasts, outliers and sales over the Glue catalog; results forced into the athena-results bucket."
  state       = "ENABLED"
  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = 10737418240
    result_configuration {
      output_location = "s3://${aws_s3_bucket.data["athena-results"].bucket}/results/"
      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = aws_kms_key.data.arn
      }
    }
  }
}

resource "aws_athena_named_query" "outliers_per_day" {
  name        = "outliers-per-day"
  description = "Outliers per day and reason code over the last 30 days."
  database    = aws_glue_catalog_database.this.name
  workgroup   = aws_athena_workgroup.analytics.id
  query       = <<-SQL
    SELECT date(event_time) AS day, outlier_code, count(*) AS outliers, sum(quantity) AS quantity
    FROM outliers
    WHERE event_time >= current_timestamp - INTERVAL '30' DAY
    GROUP BY 1, 2
    ORDER BY 1 DESC, 3 DESC
  SQL
}

resource "aws_athena_named_query" "top_items_last_7_days" {
  name        = "top-items-last-7-days"
  description = "Best-selling items of the last 7 days (clean sales only)."
  database    = aws_glue_catalog_database.this.name
  workgroup   = aws_athena_workgroup.analytics.id
  query       = <<-SQL
    SELECT item_id, sum(quantity) AS units, sum(quantity * unit_price) AS revenue
    FROM sales
    WHERE event_time >= current_timestamp - INTERVAL '7' DAY
    GROUP BY item_id
    ORDER BY units DESC
    LIMIT 50
  SQL
}

# ------------------------------------------------------------------ alarms
resource "aws_cloudwatch_metric_alarm" "iterator_age" {
  for_each            = aws_kinesis_stream.this
  alarm_name          = "${each.value.name}-iterator-age"
  alarm_description   = "A consumer of ${each.value.name} falls behind (GetRecords.IteratorAgeMilliseconds)."
  namespace           = "AWS/Kinesis"
  metric_name         = "GetRecords.IteratorAgeMilliseconds"
  dimensions          = { StreamName = each.value.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.iterator_age_threshold_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.notifications.arn]
  ok_actions          = [aws_sns_topic.notifications.arn]
}

# Glue publishes job metrics with --enable-metrics (namespace Glue, JobRunId=ALL aggregates all runs).
resource "aws_cloudwatch_metric_alarm" "glue_failed_tasks" {
  for_each            = aws_glue_job.this
  alarm_name          = "${each.value.name}-failed-tasks"
  alarm_description   = "${each.key} had failed Spark tasks (job failures also notify via the glue-job-failed rule)."
  namespace           = "Glue"
  metric_name         = "glue.driver.aggregate.numFailedTasks"
  dimensions          = { JobName = each.value.name, JobRunId = "ALL", Type = "count" }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.notifications.arn]
}

resource "aws_cloudwatch_metric_alarm" "outlier_split_downtime" {
  alarm_name          = "${var.prefix}-outlier-split-downtime"
  alarm_description   = "The outlier split Flink application is restarting or down."
  namespace           = "AWS/KinesisAnalytics"
  metric_name         = "downtime"
  dimensions          = { Application = aws_kinesisanalyticsv2_application.outlier_split.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.notifications.arn]
}
