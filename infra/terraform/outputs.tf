# Same outputs as infra/cloudformation/pipeline.yaml.

output "sales_events_stream_name" {
  description = "Kinesis stream the producers (web shop, DMS) write to."
  value       = aws_kinesis_stream.this["sales-events"].name
}

output "sales_clean_stream_name" {
  description = "Kinesis stream of clean sales (Flink output, Firehose input)."
  value       = aws_kinesis_stream.this["sales-clean"].name
}

output "sales_outliers_stream_name" {
  description = "Kinesis stream of outliers (Flink output, Firehose input)."
  value       = aws_kinesis_stream.this["sales-outliers"].name
}

output "bucket_names" {
  description = "Bucket name per role (core.settings.BUCKET_ROLES)."
  value       = { for role, bucket in aws_s3_bucket.data : role => bucket.bucket }
}

output "glue_database_name" {
  description = "Glue database of the landing tables and enriched forecasts."
  value       = aws_glue_catalog_database.this.name
}

output "flink_application_name" {
  description = "Managed Flink application of the outlier split (start it with `aws kinesisanalyticsv2 start-application`)."
  value       = aws_kinesisanalyticsv2_application.outlier_split.name
}

output "state_machine_arn" {
  description = "Forecast orchestrator state machine."
  value       = aws_sfn_state_machine.forecast.arn
}

output "notifications_topic_arn" {
  description = "SNS topic of forecast notifications and alarms."
  value       = aws_sns_topic.notifications.arn
}

output "alerts_topic_arn" {
  description = "SNS topic of demand-anomaly and outlier-rate alerts (subscribe an email, chat or Lambda endpoint)."
  value       = aws_sns_topic.alerts.arn
}

output "dynamodb_table_names" {
  description = "DynamoDB tables: champion predictors, forecast cache (TTL expires_at), forecast runs, stock on hand."
  value       = { for key, table in aws_dynamodb_table.this : key => table.name }
}

output "athena_workgroup_name" {
  description = "Athena workgroup to query forecasts, sales and outliers."
  value       = aws_athena_workgroup.analytics.name
}

output "data_key_arn" {
  description = "KMS key encrypting the pipeline's data."
  value       = aws_kms_key.data.arn
}
