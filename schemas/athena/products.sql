CREATE EXTERNAL TABLE IF NOT EXISTS `demand`.`products` (
  `event_type` string,
  `schema_version` bigint,
  `event_id` string,
  `event_time` timestamp,
  `item_id` string,
  `name` string,
  `category` string,
  `brand` string,
  `list_price` double,
  `status` string
)
PARTITIONED BY (`year` string, `month` string)
STORED AS PARQUET
LOCATION 's3://demand-staged/products/';
