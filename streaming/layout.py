"""Where each kind of record lands: bucket role, key prefix, contract and partition layout. Defined once.

Firehose (on AWS) and the local delivery (streaming/landing.py) write the same keys:
`<prefix>/year=YYYY/month=MM/day=DD/hour=HH/<file>.parquet`, partitioned by the record's event time
(Firehose dynamic partitioning on `event_time`), so a re-delivered record lands in the same partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from streaming.contracts import CAMPAIGN, OUTLIER, PRODUCT, REJECTED, SALE, Contract


@dataclass(frozen=True)
class Landing:
    name: str
    bucket_role: str
    prefix: str
    contract: Contract
    time_field: str

    def partition(self, ts: datetime) -> str:
        return f"{self.prefix}/year={ts.year:04d}/month={ts.month:02d}/day={ts.day:02d}/hour={ts.hour:02d}/"

    @property
    def firehose_prefix(self) -> str:
        """The same layout in Firehose dynamic-partitioning syntax (keys extracted from event time by JQ)."""
        keys = "/".join(f"{k}=!{{partitionKeyFromQuery:{k}}}" for k in ("year", "month", "day", "hour"))
        return f"{self.prefix}/{keys}/"


LANDINGS: dict[str, Landing] = {
    "clean": Landing("clean", "staged", "sales", SALE, "event_time"),
    "outliers": Landing("outliers", "analysis", "outliers", OUTLIER, "event_time"),
    "rejected": Landing("rejected", "rejected", "rejected", REJECTED, "rejected_at"),
    "products": Landing("products", "staged", "products", PRODUCT, "event_time"),
    "campaigns": Landing("campaigns", "staged", "campaigns", CAMPAIGN, "event_time"),
}
