CREATE EXTERNAL TABLE IF NOT EXISTS `demand`.`campaigns` (
  `event_type` string,
  `schema_version` bigint,
  `event_id` string,
  `event_time` timestamp,
  `promotion_id` string,
  `item_id` string,
  `store_id` string,
  `action` string,
  `discount_pct` double,
  `starts_at` timestamp,
  `ends_at` timestamp
)
PARTITIONED BY (`year` string, `month` string)
STORED AS PARQUET
LOCATION 's3://demand-staged/campaigns/';
