CREATE EXTERNAL TABLE IF NOT EXISTS `demand`.`rejected` (
  `raw` string,
  `raw_encoding` string,
  `error_code` string,
  `error` string,
  `source` string,
  `shard_id` string,
  `sequence_number` string,
  `rejected_at` timestamp
)
PARTITIONED BY (`year` string, `month` string)
STORED AS PARQUET
LOCATION 's3://demand-rejected/rejected/';
