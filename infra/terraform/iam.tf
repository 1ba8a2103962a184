# Key, topic and role policies: least privilege, scoped to the named resources (as in pipeline.yaml).

data "aws_iam_policy_document" "data_key" {
  # Standard key-administration statement; without it the key becomes unmanageable. Roles below get the
  # narrow kms: actions they need.
  #checkov:skip=CKV_AWS_109:Key policies must name the key as "*"; the root principal is the account itself.
  #checkov:skip=CKV_AWS_111:Same: "*" in a key policy means this key only.
  #checkov:skip=CKV_AWS_356:Same: "*" in a key policy means this key only.
  statement {
    sid       = "AccountAdministration"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
  }
  statement {
    sid       = "CloudWatchLogs"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account}:log-group:*"]
    }
  }
  statement {
    sid       = "AlarmsAndRulesPublishToEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

data "aws_iam_policy_document" "notifications_topic" {
  statement {
    sid       = "AlarmsAndRules"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.notifications.arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

data "aws_iam_policy_document" "assume" {
  for_each = {
    flink            = "kinesisanalytics.amazonaws.com"
    firehose         = "firehose.amazonaws.com"
    glue             = "glue.amazonaws.com"
    forecast_service = "forecast.amazonaws.com"
    lambda           = "lambda.amazonaws.com"
    state_machine    = "states.amazonaws.com"
    events           = "events.amazonaws.com"
  }
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = [each.value]
    }
    dynamic "condition" {
      for_each = each.key == "lambda" ? [] : [1]
      content {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account]
      }
    }
  }
}

locals {
  artefacts_objects = "arn:${local.partition}:s3:::${var.artefacts_bucket}/${var.artefacts_prefix}/*"
  glue_catalog      = "arn:${local.partition}:glue:${local.region}:${local.account}:catalog"
  glue_db_arn       = "arn:${local.partition}:glue:${local.region}:${local.account}:database/${local.glue_database}"
  glue_tables_arn   = "arn:${local.partition}:glue:${local.region}:${local.account}:table/${local.glue_database}"
  bucket_arn        = { for role, bucket in aws_s3_bucket.data : role => bucket.arn }
}

# ------------------------------------------------------------------ Flink
resource "aws_iam_role" "flink" {
  name               = "${var.prefix}-flink-outlier-split"
  description        = "Outlier split application - reads sales-events, writes one stream per landed table."
  assume_role_policy = data.aws_iam_policy_document.assume["flink"].json
}

data "aws_iam_policy_document" "flink" {
  statement {
    sid       = "ReadCode"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [local.artefacts_objects]
  }
  statement {
    sid = "ReadInput"
    actions = ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords", "kinesis:GetShardIterator",
      "kinesis:ListShards", "kinesis:SubscribeToShard", "kinesis:DescribeStreamConsumer", "kinesis:RegisterStreamConsumer",
    "kinesis:ListStreamConsumers"]
    resources = [aws_kinesis_stream.this["sales-events"].arn, "${aws_kinesis_stream.this["sales-events"].arn}/consumer/*"]
  }
  statement {
    sid       = "WriteOutputs"
    actions   = ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:ListShards", "kinesis:PutRecord", "kinesis:PutRecords"]
    resources = [for stream in keys(local.landings) : aws_kinesis_stream.this[stream].arn]
  }
  statement {
    sid       = "UseDataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.data.arn]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = [aws_cloudwatch_log_group.this["flink"].arn, "${aws_cloudwatch_log_group.this["flink"].arn}:*"]
  }
  statement {
    sid       = "DescribeLogGroups"
    actions   = ["logs:DescribeLogGroups"]
    resources = ["arn:${local.partition}:logs:${local.region}:${local.account}:log-group:*"]
  }
  # cloudwatch:PutMetricData has no resource-level permissions; scoped by namespace instead.
  statement {
    sid       = "Metrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = ["AWS/KinesisAnalytics"]
    }
  }
}

resource "aws_iam_role_policy" "flink" {
  name   = "outlier-split"
  role   = aws_iam_role.flink.id
  policy = data.aws_iam_policy_document.flink.json
}

# ------------------------------------------------------------------ Firehose
resource "aws_iam_role" "firehose" {
  name               = "${var.prefix}-firehose-landing"
  description        = "Firehose landing - reads the split's output streams, converts with the Glue schemas, writes staged/analysis/rejected."
  assume_role_policy = data.aws_iam_policy_document.assume["firehose"].json
}

data "aws_iam_policy_document" "firehose" {
  statement {
    sid       = "ReadStreams"
    actions   = ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards"]
    resources = [for stream in keys(local.landings) : aws_kinesis_stream.this[stream].arn]
  }
  statement {
    sid       = "WriteObjects"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"]
    resources = ["${local.bucket_arn["staged"]}/*", "${local.bucket_arn["analysis"]}/*", "${local.bucket_arn["rejected"]}/*"]
  }
  statement {
    sid       = "ListBuckets"
    actions   = ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"]
    resources = [local.bucket_arn["staged"], local.bucket_arn["analysis"], local.bucket_arn["rejected"]]
  }
  statement {
    sid       = "ReadSchema"
    actions   = ["glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"]
    resources = concat([local.glue_catalog, local.glue_db_arn], [for l in values(local.landings) : "${local.glue_tables_arn}/${l.table}"])
  }
  statement {
    sid       = "UseDataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.data.arn]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:PutLogEvents"]
    resources = [aws_cloudwatch_log_group.this["firehose"].arn, "${aws_cloudwatch_log_group.this["firehose"].arn}:*"]
  }
}

resource "aws_iam_role_policy" "firehose" {
  name   = "landing"
  role   = aws_iam_role.firehose.id
  policy = data.aws_iam_policy_document.firehose.json
}

# ------------------------------------------------------------------ Glue jobs
resource "aws_iam_role" "glue" {
  name               = "${var.prefix}-glue-jobs"
  description        = "build_forecast_inputs, enrich_forecast, forecast_steps and detect_demand_anomalies Glue jobs."
  assume_role_policy = data.aws_iam_policy_document.assume["glue"].json
}

data "aws_iam_policy_document" "glue" {
  statement {
    sid       = "ReadScripts"
    actions   = ["s3:GetObject"]
    resources = [local.artefacts_objects]
  }
  statement {
    sid       = "ReadInputs"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arn["staged"]}/*", "${local.bucket_arn["analysis"]}/*", "${local.bucket_arn["forecast-export"]}/*"]
  }
  statement {
    sid       = "WriteOutputs"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["${local.bucket_arn["forecast-input"]}/*", "${local.bucket_arn["enriched"]}/*"]
  }
  statement {
    sid     = "ListBuckets"
    actions = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [local.bucket_arn["staged"], local.bucket_arn["analysis"], local.bucket_arn["forecast-export"],
    local.bucket_arn["forecast-input"], local.bucket_arn["enriched"]]
  }
  statement {
    sid = "Catalog"
    actions = ["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:GetPartition", "glue:GetPartitions",
      "glue:CreateTable", "glue:UpdateTable", "glue:CreatePartition", "glue:BatchCreatePartition",
    "glue:UpdatePartition"]
    resources = [local.glue_catalog, local.glue_db_arn, "${local.glue_tables_arn}/*"]
  }
  statement {
    sid       = "WriteAnomaliesAndAlerts"
    actions   = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [for p in ["demand-anomalies", "alerts"] : "${local.bucket_arn["analysis"]}/${p}/*"]
  }
  statement {
    sid       = "PublishAlerts"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
  }
  statement {
    sid       = "RecordEnrichedRun"
    actions   = ["dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.this["forecast-cache"].arn]
  }
  statement {
    sid       = "WriteModelArtefacts"
    actions   = ["s3:PutObject"]
    resources = [for p in ["predictors", "runs", "exports"] : "${aws_s3_bucket.data["forecast-export"].arn}/${p}/*"]
  }
  statement {
    sid       = "UseDataKey"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.data.arn]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:AssociateKmsKey"]
    resources = ["arn:${local.partition}:logs:${local.region}:${local.account}:log-group:/aws-glue/*"]
  }
  statement {
    sid       = "Metrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = ["Glue"]
    }
  }
}

resource "aws_iam_role_policy" "glue" {
  name   = "glue-jobs"
  role   = aws_iam_role.glue.id
  policy = data.aws_iam_policy_document.glue.json
}

# ------------------------------------------------------------------ forecast orchestrator
resource "aws_iam_role" "forecast_service" {
  name               = "${var.prefix}-forecast-service"
  description        = "Role Amazon Forecast assumes (amazon-forecast backend) to import inputs and write exports."
  assume_role_policy = data.aws_iam_policy_document.assume["forecast_service"].json
}

data "aws_iam_policy_document" "forecast_service" {
  statement {
    sid       = "ReadInputs"
    actions   = ["s3:GetObject", "s3:ListBucket"]
    resources = [local.bucket_arn["forecast-input"], "${local.bucket_arn["forecast-input"]}/*"]
  }
  statement {
    sid       = "WriteExports"
    actions   = ["s3:PutObject", "s3:ListBucket"]
    resources = [local.bucket_arn["forecast-export"], "${local.bucket_arn["forecast-export"]}/*"]
  }
  statement {
    sid       = "UseDataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.data.arn]
  }
}

resource "aws_iam_role_policy" "forecast_service" {
  name   = "forecast-data"
  role   = aws_iam_role.forecast_service.id
  policy = data.aws_iam_policy_document.forecast_service.json
}

resource "aws_iam_role" "orchestrator_fn" {
  name               = "${var.prefix}-forecast-orchestrator-fn"
  description        = "Orchestrator Lambda - reads forecast inputs, writes exports, champion/run tables, notifications."
  assume_role_policy = data.aws_iam_policy_document.assume["lambda"].json
}

data "aws_iam_policy_document" "orchestrator_fn" {
  statement {
    sid       = "ReadInputs"
    actions   = ["s3:GetObject", "s3:ListBucket"]
    resources = [local.bucket_arn["forecast-input"], "${local.bucket_arn["forecast-input"]}/*"]
  }
  statement {
    sid       = "WriteExports"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:ListBucket"]
    resources = [local.bucket_arn["forecast-export"], "${local.bucket_arn["forecast-export"]}/*"]
  }
  statement {
    sid       = "Tables"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:BatchWriteItem"]
    resources = [for table in aws_dynamodb_table.this : table.arn]
  }
  statement {
    sid       = "Notify"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.notifications.arn]
  }
  statement {
    sid       = "UseDataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.data.arn]
  }
  statement {
    sid       = "ModelJob"
    actions   = ["glue:StartJobRun", "glue:GetJobRun"]
    resources = [aws_glue_job.this["forecast_steps"].arn]
  }
  statement {
    sid       = "AmazonForecast"
    actions   = ["forecast:Create*", "forecast:Describe*", "forecast:List*", "forecast:Delete*", "forecast:TagResource"]
    resources = ["arn:${local.partition}:forecast:${local.region}:${local.account}:*/${local.glue_database}*"]
  }
  statement {
    sid       = "PassForecastRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.forecast_service.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["forecast.amazonaws.com"]
    }
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [aws_cloudwatch_log_group.this["orchestrator"].arn, "${aws_cloudwatch_log_group.this["orchestrator"].arn}:*"]
  }
  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.lambda_dlq.arn]
  }
}

resource "aws_iam_role_policy" "orchestrator_fn" {
  name   = "orchestrator"
  role   = aws_iam_role.orchestrator_fn.id
  policy = data.aws_iam_policy_document.orchestrator_fn.json
}

resource "aws_iam_role" "state_machine" {
  name               = "${var.prefix}-forecast-orchestrator-sfn"
  description        = "Forecast orchestrator state machine - invokes the orchestrator Lambda."
  assume_role_policy = data.aws_iam_policy_document.assume["state_machine"].json
}

data "aws_iam_policy_document" "state_machine" {
  # CloudWatch Logs vended delivery and X-Ray actions do not support resource-level permissions
  # (https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html).
  statement {
    sid       = "InvokeSteps"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.orchestrator.arn, "${aws_lambda_function.orchestrator.arn}:*"]
  }
  statement {
    sid = "LogDeliveryAndTracing"
    actions = ["logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
      "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "state_machine" {
  name   = "orchestrator"
  role   = aws_iam_role.state_machine.id
  policy = data.aws_iam_policy_document.state_machine.json
}

resource "aws_iam_role" "events" {
  name               = "${var.prefix}-events-start-orchestrator"
  description        = "EventBridge - starts the forecast orchestrator when a forecast-input manifest lands."
  assume_role_policy = data.aws_iam_policy_document.assume["events"].json
}

data "aws_iam_policy_document" "events" {
  statement {
    actions   = ["states:StartExecution"]
    resources = [aws_sfn_state_machine.forecast.arn]
  }
}

resource "aws_iam_role_policy" "events" {
  name   = "start-orchestrator"
  role   = aws_iam_role.events.id
  policy = data.aws_iam_policy_document.events.json
}

resource "aws_iam_role" "start_enrich_fn" {
  name               = "${var.prefix}-start-enrich-fn"
  description        = "Starts the enrich_forecast Glue job for a new forecast export."
  assume_role_policy = data.aws_iam_policy_document.assume["lambda"].json
}

data "aws_iam_policy_document" "start_enrich_fn" {
  statement {
    sid       = "StartJob"
    actions   = ["glue:StartJobRun"]
    resources = [aws_glue_job.this["enrich_forecast"].arn]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [aws_cloudwatch_log_group.this["start_enrich"].arn, "${aws_cloudwatch_log_group.this["start_enrich"].arn}:*"]
  }
  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.lambda_dlq.arn]
  }
  statement {
    sid       = "UseDataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.data.arn]
  }
}

resource "aws_iam_role_policy" "start_enrich_fn" {
  name   = "start-enrich"
  role   = aws_iam_role.start_enrich_fn.id
  policy = data.aws_iam_policy_document.start_enrich_fn.json
}
