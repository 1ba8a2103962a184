"""Runtime properties of the outlier split job, as Managed Service for Apache Flink passes them.

On AWS they come from the application's property groups (/etc/flink/application_properties.json) and map
onto outlier_split.JobConfig; locally JobConfig comes from the `demand flink run` flags. The
CloudFormation/Terraform application definitions are tested against these names.
"""

from __future__ import annotations

# Managed Flink starts a Python application from this group (its keys are fixed by the service).
RUN_OPTIONS_GROUP = "kinesis.analytics.flink.run.options"
RUN_OPTIONS = {
    "python": "flink_jobs/outlier_split.py",
    "jarfile": "lib/flink-sql-connector-kinesis.jar",
    "pyFiles": "site_packages/",  # the third-party packages the job imports, in the zip (scripts/vendor.py)
}
# The distributions the job imports (PyFlink itself is the runtime's); their requirements come with them.
FLINK_JOB_PACKAGES = ("pydantic", "pydantic-settings", "jsonschema", "orjson")

# Our own group: what the job reads.
PROPERTY_GROUP = "DemandPipeline"
PROPERTIES: dict[str, str] = {
    "aws.region": "AWS region of the streams",
    "input.stream": "Kinesis stream of raw sales/product/campaign events and DMS CDC records",
    "clean.stream": "Kinesis stream for clean sales (Firehose lands it in the staged bucket)",
    "outliers.stream": "Kinesis stream for outliers (Firehose lands it in the analysis bucket)",
    "rejected.stream": "Kinesis stream for rejected records, with reason (Firehose lands it in the rejected bucket)",
    "products.stream": "Kinesis stream for product events (Firehose lands it in the staged bucket)",
    "campaigns.stream": "Kinesis stream for campaign events (Firehose lands it in the staged bucket)",
    "dedup.ttl.hours": "how long an event_id is remembered for duplicate detection",
    "out_of_orderness.seconds": "bounded out-of-orderness of the event-time watermark",
    "batch.records": "lines a batch for the Python operator holds at most (per item bucket)",
    "batch.ms": "a batch goes to the Python operator at the latest this many ms after its first line",
    "dedup.max.ids": "the most event ids an item's duplicate map holds (the oldest go first)",
    "future_slack.hours": "an event time further than this past the processing time is rejected (event_time_in_future)",
    "batch.bytes": "bytes of lines a batch for the Python operator holds at most (per item bucket)",
    "outlier.thresholds": "JSON object overriding the outlier split's thresholds (core.settings.OutlierSettings)",
}

# Where each output of the split goes on AWS: property naming its Kinesis stream -> (split output, event_type of the
# reference events it carries or None for all, the landed table its Firehose writes). The local landing
# (streaming/landing.py) routes the same outputs to the same tables; tests/unit/test_infra_names.py checks both and the
# templates' streams, Firehose prefixes and schemas against this.
AWS_SINKS: dict[str, tuple[str, str | None, str]] = {
    "clean.stream": ("clean", None, "sales"),
    "outliers.stream": ("outliers", None, "outliers"),
    "rejected.stream": ("rejected", None, "rejected"),
    "products.stream": ("reference", "product", "products"),
    "campaigns.stream": ("reference", "campaign", "campaigns"),
}
