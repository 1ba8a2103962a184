"""The Kinesis producer: JSON-lines records -> PutRecords batches, with retries and a rejected file.

Valid records are sent exactly as received (a DMS envelope stays an envelope; the Flink job decodes it
again). Records that cannot become events are written to the rejected file with the reason, so
`sent + rejected == read` always holds.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError

from core import aws
from core.settings import Settings
from streaming.events import Rejection
from streaming.records import parse_record

# Kinesis PutRecords limits: https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 5 * 1024 * 1024  # whole request: data + partition keys
MAX_RECORD_BYTES = 1024 * 1024  # one record: data + partition key
MAX_PARTITION_KEY_CHARS = 256

# Per-record ErrorCodes worth resending (the others, e.g. KMSAccessDeniedException, will not heal).
RETRYABLE_RECORD_ERRORS = frozenset(
    {"ProvisionedThroughputExceededException", "InternalFailure", "KMSThrottlingException", "ServiceUnavailable"}
)
# Whole-call errors worth retrying.
RETRYABLE_CALL_ERRORS = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "ThrottlingException",
        "KMSThrottlingException",
        "InternalFailure",
        "InternalFailureException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)


class PushError(RuntimeError):
    """A fatal error: the stream is missing, credentials are wrong, the endpoint is down."""


@dataclass
class PushSummary:
    stream: str
    read: int = 0
    sent: int = 0
    retried: int = 0  # record re-sends (a record resent twice counts twice)
    rejected: int = 0
    batches: int = 0  # PutRecords calls, retries included
    seconds: float = 0.0
    rejected_by_code: Counter = field(default_factory=Counter)
    rejected_path: str | None = None
    # Rejected records kept in memory when no rejected file was given (never dropped silently).
    rejections: list[dict] = field(default_factory=list, repr=False)

    @property
    def events_per_s(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        return self.sent + self.rejected == self.read

    def as_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "read": self.read,
            "sent": self.sent,
            "retried": self.retried,
            "rejected": self.rejected,
            "rejected_by_code": dict(sorted(self.rejected_by_code.items())),
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
            "events_per_s": round(self.events_per_s, 1),
            "rejected_path": self.rejected_path,
        }


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter")."""

    attempts: int = 8
    base: float = 0.05
    cap: float = 5.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.base * 2**attempt))


class TokenBucket:
    """At most `rate` events per second on average, bursts up to one second's worth."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic, sleep=time.sleep):
        if rate <= 0:
            raise ValueError(f"rate limit must be > 0 events/s, got {rate}")
        self.rate, self.capacity = rate, max(1.0, rate)
        self.tokens, self.clock, self.sleep = self.capacity, clock, sleep
        self.last = clock()

    def take(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            self.sleep((1 - self.tokens) / self.rate)
            self.last = self.clock()
            self.tokens = 0.0
        else:
            self.tokens -= 1


def partition_key(event: dict[str, Any]) -> str:
    """`store_id|item_id` keeps one item's sales in one store ordered on one shard; item_id for the rest."""
    if event.get("event_type") == "sale":
        key = f"{event['store_id']}|{event['item_id']}"
    else:
        key = str(event.get("item_id") or event["event_id"])
    return key[:MAX_PARTITION_KEY_CHARS]


@dataclass
class _Entry:
    data: bytes
    key: str

    @property
    def size(self) -> int:
        return len(self.data) + len(self.key.encode())


class _Rejects:
    """The rejected sink: REJECTED contract rows, one JSON object a line, opened on first use."""

    def __init__(self, summary: PushSummary, path: Path | None, source: str):
        self.summary, self.path, self.source = summary, path, source
        self._fh: IO[str] | None = None

    def add(self, rejection: Rejection) -> None:
        row = rejection.to_record(source=self.source)
        self.summary.rejected += 1
        self.summary.rejected_by_code[rejection.error_code] += 1
        if self.path is None:
            self.summary.rejections.append(row)
            return
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("w", encoding="utf-8")
        self._fh.write(json.dumps(row) + "\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def _batches(entries: Iterable[_Entry]) -> Iterator[list[_Entry]]:
    batch: list[_Entry] = []
    size = 0
    for entry in entries:
        if batch and (len(batch) == MAX_BATCH_RECORDS or size + entry.size > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry.size
    if batch:
        yield batch


def _send(kinesis, stream: str, batch: list[_Entry], summary: PushSummary, rejects: _Rejects, backoff: Backoff):
    """One batch until every entry is delivered or rejected; only failed entries are resent."""
    pending = batch
    for attempt in range(backoff.attempts):
        if attempt:
            summary.retried += len(pending)
            time.sleep(backoff.delay(attempt))
        summary.batches += 1
        try:
            resp = kinesis.put_records(
                StreamName=stream, Records=[{"Data": e.data, "PartitionKey": e.key} for e in pending]
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in RETRYABLE_CALL_ERRORS and attempt + 1 < backoff.attempts:
                continue
            if code in RETRYABLE_CALL_ERRORS:
                failed = [(e, code, str(exc)) for e in pending]
                break
            raise PushError(f"PutRecords to stream {stream!r} failed: {exc}") from exc
        failed = []
        for entry, result in zip(pending, resp["Records"], strict=True):
            if "ErrorCode" not in result:
                summary.sent += 1
            elif result["ErrorCode"] in RETRYABLE_RECORD_ERRORS:
                failed.append((entry, result["ErrorCode"], result.get("ErrorMessage", "")))
            else:
                rejects.add(
                    Rejection("put_failed", f"{result['ErrorCode']}: {result.get('ErrorMessage', '')}", entry.data)
                )
        pending = [e for e, _, _ in failed]
        if not pending:
            return
    for entry, code, message in failed:
        rejects.add(
            Rejection("put_failed", f"still failing after {backoff.attempts} attempts: {code}: {message}", entry.data)
        )


def push_events(
    records: Iterable[bytes],
    settings: Settings,
    stream: str | None = None,
    rate_limit: float | None = None,
    rejected_path: Path | None = None,
    progress: Callable[[int], None] | None = None,
    *,
    source: str = "push",
    kinesis=None,
    backoff: Backoff = Backoff(),
) -> PushSummary:
    """Validate and send raw records to a Kinesis stream (default: the sales-events stream).

    `progress(n)` is called with the number of records read so far as batches go out.
    Raises PushError on a fatal error (missing stream, access denied, endpoint down).
    """
    stream = stream or settings.names.sales_events_stream
    kinesis = kinesis or aws.client("kinesis", settings)
    summary = PushSummary(stream=stream, rejected_path=str(rejected_path) if rejected_path else None)
    rejects = _Rejects(summary, rejected_path, source)
    bucket = TokenBucket(rate_limit) if rate_limit else None
    started = time.perf_counter()

    def accepted() -> Iterator[_Entry]:
        for raw in records:
            summary.read += 1
            parsed = parse_record(raw)
            if isinstance(parsed, Rejection):
                rejects.add(parsed)
                continue
            entry = _Entry(raw, partition_key(parsed))
            if entry.size > MAX_RECORD_BYTES:
                rejects.add(
                    Rejection(
                        "record_too_large",
                        f"record of {entry.size} bytes (data + partition key) is over the Kinesis limit of "
                        f"{MAX_RECORD_BYTES} bytes (event_id {parsed['event_id']!r})",
                        raw,
                    )
                )
                continue
            if bucket:
                bucket.take()
            yield entry

    try:
        for batch in _batches(accepted()):
            _send(kinesis, stream, batch, summary, rejects, backoff)
            if progress:
                progress(summary.read)
    except BotoCoreError as exc:
        raise PushError(f"cannot reach Kinesis at {aws.endpoint(settings) or 'AWS'}: {exc}") from exc
    finally:
        rejects.close()
        summary.seconds = time.perf_counter() - started
    if progress:
        progress(summary.read)
    return summary


def read_lines(path: Path) -> Iterator[bytes]:
    """The records of a JSON-lines file as raw bytes, line ends stripped; blank lines are not records."""
    with Path(path).open("rb") as fh:
        for line in fh:
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield line


def push_file(path: Path, settings: Settings, rejected_path: Path | None = None, **kwargs) -> PushSummary:
    """push_events over a JSON-lines file; rejected rows go to `<file stem>.rejected.jsonl` by default."""
    path = Path(path)
    if rejected_path is None:
        rejected_path = path.with_name(f"{path.stem}.rejected.jsonl")
    return push_events(read_lines(path), settings, rejected_path=rejected_path, source=str(path), **kwargs)
