"""Local stand-in for Firehose: land the outlier split's outputs as parquet under the Firehose layout.

Input is the split's output folder (`clean/`, `outliers/`, `rejected/`, `reference/`, JSON lines, one
committed part file each). Every part file becomes one parquet object per hour partition, named by the
digest of the part file's content: re-running delivery over the same input rewrites the same keys, so
it never duplicates rows (exactly-once in effect). A line that does not fit its contract is landed in
the rejected bucket with the reason, never dropped.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.object_store import ObjectStore
from core.tables import CAMPAIGNS, OUTLIERS, PRODUCTS, REJECTED_RECORDS, SALES, TABLES, Table
from streaming.events import EventError, Rejection, format_time, validate_event

# Split output folder -> table; reference events are routed by their event_type.
_SOURCES: dict[str, Table | None] = {
    "clean": SALES,
    "outliers": OUTLIERS,
    "rejected": REJECTED_RECORDS,
    "reference": None,
}
_REFERENCE = {"product": PRODUCTS, "campaign": CAMPAIGNS}


@dataclass
class DeliverySummary:
    files_read: int = 0
    objects_written: int = 0
    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def as_dict(self) -> dict[str, Any]:
        return {
            "files_read": self.files_read,
            "objects_written": self.objects_written,
            "rows": dict(self.rows),
        }


def part_files(folder: Path) -> list[Path]:
    """Committed part files only: Flink's FileSink keeps in-progress files hidden (leading dot)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))


def _to_datetime(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _table(rows: list[dict[str, Any]], landing: Table) -> pa.Table:
    schema = landing.contract.arrow_schema()
    timestamps = [f.name for f in landing.contract.fields if f.type == "timestamp"]
    columns = {
        name: [(_to_datetime(r[name]) if r.get(name) and name in timestamps else r.get(name)) for r in rows]
        for name in schema.names
    }
    return pa.Table.from_pydict(columns, schema=schema)


def _check(record: Any, landing: Table) -> dict[str, Any]:
    """Validate a split output line against its contract (events by the event parser, others by field)."""
    if not isinstance(record, dict):
        raise EventError("landing_schema_mismatch", f"{landing.name}: line is not a JSON object")
    if landing.contract.name in ("sale", "product", "campaign"):
        return validate_event(record)
    missing = [f.name for f in landing.contract.fields if f.required and record.get(f.name) is None]
    extra = [k for k in record if k not in landing.contract.names]
    if missing or extra:
        raise EventError(
            "landing_schema_mismatch",
            f"{landing.name}: missing {missing or 'nothing'}, unexpected {extra or 'nothing'}",
        )
    return record


def _route(source: str, line: bytes) -> tuple[Table, dict[str, Any]] | Rejection:
    try:
        record = json.loads(line)
        landing = _SOURCES[source] or _REFERENCE.get(record.get("event_type"))
        if landing is None:
            raise EventError("landing_unknown_event", f"{source}: event_type {record.get('event_type')!r}")
        return landing, _check(record, landing)
    except (json.JSONDecodeError, AttributeError) as exc:
        return Rejection("landing_invalid_json", f"{source}: {exc}", line)
    except EventError as exc:
        return Rejection(exc.code, str(exc), line)


def deliver(split_output: Path, store: ObjectStore, buckets: dict[str, str]) -> DeliverySummary:
    """Land every committed part file of the split output; `buckets` maps bucket role -> bucket name."""
    summary = DeliverySummary()
    for source in _SOURCES:
        for part in part_files(split_output / source):
            content = part.read_bytes()
            digest = hashlib.sha256(content).hexdigest()[:24]
            groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
            for line in content.splitlines():
                if not line.strip():
                    continue
                routed = _route(source, line)
                if isinstance(routed, Rejection):
                    landing, record = REJECTED_RECORDS, routed.to_record(source=str(part))
                    # The part file's time, not now: a re-run must land the same row under the same key.
                    record["rejected_at"] = format_time(datetime.fromtimestamp(part.stat().st_mtime, UTC))
                else:
                    landing, record = routed
                ts = _to_datetime(record[landing.time_field])
                groups[(landing.name, landing.partition(ts))].append(record)
            for (name, prefix), rows in sorted(groups.items()):
                landing = TABLES[name]
                buf = io.BytesIO()
                pq.write_table(_table(rows, landing), buf, compression="snappy")
                store.put(buckets[landing.bucket_role], f"{prefix}{source}-{digest}.parquet", buf.getvalue())
                summary.objects_written += 1
                summary.rows[landing.name] += len(rows)
            summary.files_read += 1
    return summary
