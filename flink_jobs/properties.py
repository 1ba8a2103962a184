"""Runtime properties of the outlier split job, as Managed Service for Apache Flink passes them.

On AWS they come from the application's property groups (/etc/flink/application_properties.json) and map
onto outlier_split.JobConfig; locally JobConfig comes from the `demand flink run` flags. The
CloudFormation/Terraform application definitions are tested against these names.
"""

from __future__ import annotations

# Managed Flink starts a Python application from this group (its keys are fixed by the service).
RUN_OPTIONS_GROUP = "kinesis.analytics.flink.run.options"
RUN_OPTIONS = {"python": "flink_jobs/outlier_split.py", "jarfile": "lib/flink-sql-connector-kinesis.jar"}

# Our own group: what the job reads.
PROPERTY_GROUP = "DemandPipeline"
PROPERTIES: dict[str, str] = {
    "aws.region": "AWS region of the streams",
    "input.stream": "Kinesis stream of raw sales/product/campaign events and DMS CDC records",
    "clean.stream": "Kinesis stream for clean sales (Firehose lands it in the staged bucket)",
    "outliers.stream": "Kinesis stream for outliers (Firehose lands it in the analysis bucket)",
    "rejected.path": "s3:// prefix for rejected records (JSON lines, with reason)",
    "reference.path": "s3:// prefix for product and campaign events (staged bucket)",
    "dedup.ttl.hours": "how long an event_id is remembered for duplicate detection",
    "out_of_orderness.seconds": "bounded out-of-orderness of the event-time watermark",
    "batch.records": "lines a batch for the Python operator holds at most (per item bucket)",
    "batch.ms": "a batch goes to the Python operator at the latest this many ms after its first line",
    "outlier.thresholds": "JSON object overriding the outlier split's thresholds (core.settings.OutlierSettings)",
}
