CREATE EXTERNAL TABLE IF NOT EXISTS `demand`.`outliers` (
  `event_type` string,
  `schema_version` bigint,
  `event_id` string,
  `event_time` timestamp,
  `store_id` string,
  `item_id` string,
  `quantity` double,
  `unit_price` double,
  `currency` string,
  `channel` string,
  `customer_id` string,
  `order_id` string,
  `promotion_id` string,
  `source_operation` string,
  `outlier_score` double,
  `outlier_code` string,
  `outlier_reason` string,
  `detector` string,
  `detector_version` string,
  `baseline_quantity` double,
  `baseline_price` double,
  `baseline_count` bigint,
  `demand_units` double
)
PARTITIONED BY (`year` string, `month` string)
STORED AS PARQUET
LOCATION 's3://demand-analysis/outliers/';
