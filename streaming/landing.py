"""Local stand-in for Firehose: land the outlier split's outputs as parquet under the tables' layout.

Input is the split's output folder (`clean/`, `outliers/`, `rejected/`, `reference/`, JSON lines, one committed
part file each). The part files not landed yet are read in order and cut into batches of about BATCH_LINES lines;
each batch becomes one parquet object per table and month partition it touches, named by the digest of the batch's
part files (names and contents). A year of a busy table is a few dozen objects, not one per part file and hour.
`_landed.json` in the split folder lists the part files landed, written after each batch: a re-run lands only what
is new, and a run interrupted mid-batch re-lands that batch under the same keys, so rows are never doubled. A line
that does not fit its contract is landed in the rejected bucket with the reason, never dropped.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import defaultdict
from collections.abc import Callable
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


def table_for(output: str, event_type: str | None = None) -> Table:
    """The table a split output's records land in (reference records by their event_type)."""
    table = _SOURCES[output]
    return table if table is not None else _REFERENCE[event_type or ""]


LANDED_STATE = "_landed.json"
BATCH_LINES = 250_000  # lines per landing batch: one object per table and month partition each


@dataclass
class DeliverySummary:
    files_read: int = 0
    files_already_landed: int = 0
    batches: int = 0
    objects_written: int = 0
    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def as_dict(self) -> dict[str, Any]:
        return {
            "files_read": self.files_read,
            "files_already_landed": self.files_already_landed,
            "batches": self.batches,
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


def _route_part(source: str, part: Path, content: bytes, groups: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    """Every line of one part file into its (table, partition) group; a misfit into the rejected table."""
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


def _batches(parts: list[tuple[str, Path]]) -> list[list[tuple[str, Path]]]:
    """Consecutive part files of about BATCH_LINES lines (by bytes read: the same cuts on every run)."""
    out: list[list[tuple[str, Path]]] = [[]]
    lines = 0
    for source, part in parts:
        if out[-1] and lines >= BATCH_LINES:
            out.append([])
            lines = 0
        out[-1].append((source, part))
        lines += part.read_bytes().count(b"\n")
    return [b for b in out if b]


def deliver(
    split_output: Path,
    store: ObjectStore,
    buckets: dict[str, str],
    progress: Callable[[int, int], None] | None = None,
) -> DeliverySummary:
    """Land the committed part files of the split output not landed before; `buckets` maps bucket role -> bucket
    name; `progress(files done, files to do)` after each batch."""
    summary = DeliverySummary()
    state_path = split_output / LANDED_STATE
    landed: dict[str, str] = json.loads(state_path.read_text()) if state_path.is_file() else {}
    parts = [(s, p) for s in _SOURCES for p in part_files(split_output / s)]
    todo = [(s, p) for s, p in parts if p.relative_to(split_output).as_posix() not in landed]
    summary.files_already_landed = len(parts) - len(todo)
    for batch in _batches(todo):
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        names = hashlib.sha256()
        for source, part in batch:
            content = part.read_bytes()
            digest = hashlib.sha256(content).hexdigest()[:24]
            names.update(f"{part.relative_to(split_output).as_posix()}:{digest};".encode())
            _route_part(source, part, content, groups)
            landed[part.relative_to(split_output).as_posix()] = digest
        key = names.hexdigest()[:24]
        for (name, prefix), rows in sorted(groups.items()):
            landing = TABLES[name]
            buf = io.BytesIO()
            pq.write_table(_table(rows, landing), buf, compression="snappy")
            store.put(buckets[landing.bucket_role], f"{prefix}part-{key}.parquet", buf.getvalue())
            summary.objects_written += 1
            summary.rows[landing.name] += len(rows)
        summary.files_read += len(batch)
        summary.batches += 1
        tmp = state_path.with_name(state_path.name + ".tmp")
        tmp.write_text(json.dumps(landed, indent=0, sort_keys=True))
        tmp.replace(state_path)  # after the batch's objects: an interrupted batch is landed again, same keys
        if progress:
            progress(summary.files_read, len(todo))
    return summary
