"""Validate event objects against their contracts: the normalised event, or EventError with a code and a reason.

The checks are driven by the field specs in core/contracts.py (the same ones the JSON Schema is derived from),
hand-rolled for speed because this runs once per event in the Flink job (docs/decisions.md). Raw bytes become
objects in streaming/records.py.
"""

from __future__ import annotations

import base64
import math
import re
import reprlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.contracts import EVENTS, Contract, Field

# RFC 3339 date-time (what JSON Schema's "date-time" format means): a 'T', and a zone (Z or an offset).
# ASCII digits only and no trailing newline (fullmatch), as RFC 3339 says.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)

# Error messages quote the offending value, shortened: a record can hold a megabyte string or nesting
# deep enough to make repr() recurse out.
_REPR = reprlib.Repr()
_REPR.maxstring = 80
_REPR.maxother = 80
_REPR.maxlevel = 3


def show(value: Any) -> str:
    """A short, safe repr of a value for error messages."""
    try:
        return _REPR.repr(value)
    except (ValueError, RecursionError):  # int too large to print (sys.set_int_max_str_digits)
        return f"<{type(value).__name__}>"


class EventError(ValueError):
    """A record that cannot become an event; `code` is machine-readable, the message says what and where."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


MAX_REJECTED_RAW = 128 * 1024  # bytes of a rejected record's raw text kept in its REJECTED row


@dataclass(frozen=True)
class Rejection:
    error_code: str
    error: str
    raw: bytes

    def to_record(self, source: str, shard_id: str | None = None, sequence_number: str | None = None) -> dict:
        """The REJECTED contract row: raw kept as text when it is UTF-8, else base64. A raw record longer than
        MAX_REJECTED_RAW bytes keeps its first MAX_REJECTED_RAW (the error says so): the row must fit in one Kinesis
        record (1 MiB) on its way to Firehose, even when every character needs a JSON escape."""
        try:
            raw, encoding = self.raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            raw, encoding = base64.b64encode(self.raw[:MAX_REJECTED_RAW]).decode("ascii"), "base64"
        error = self.error
        if len(self.raw) > MAX_REJECTED_RAW:
            raw = raw[:MAX_REJECTED_RAW] if encoding == "utf-8" else raw
            error = f"{error} (raw: the first {MAX_REJECTED_RAW:,} characters of {len(self.raw):,} bytes)"
        return {
            "raw": raw,
            "raw_encoding": encoding,
            "error_code": self.error_code,
            "error": error,
            "source": source,
            "shard_id": shard_id,
            "sequence_number": sequence_number,
            "rejected_at": format_time(datetime.now(UTC)),
        }


def format_time(ts: datetime) -> str:
    """The one wire format for timestamps: UTC, millisecond precision, 'Z'."""
    t = ts.astimezone(UTC)
    # Not strftime("%Y"): glibc writes year 999 as "999", which is not RFC 3339.
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t:%H:%M:%S}.{t.microsecond // 1000:03d}Z"


# The wire format itself: parse_time only has to check the calendar (day 31 of April) and can return it as is.
_WIRE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", re.ASCII)


def parse_time(value: Any, field: str) -> str:
    """An RFC 3339 date-time with a zone -> the wire format (UTC, milliseconds, 'Z'), or EventError."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise EventError("bad_timestamp", f"{field}={show(value)} is not an ISO-8601 date-time with a UTC offset")
    try:
        ts = datetime.fromisoformat(value.upper())
        return value if _WIRE.fullmatch(value) else format_time(ts)
    except (ValueError, OverflowError) as exc:  # day 31 of April; 0001-01-01T00:00:00+01:00 is before year 1 UTC
        raise EventError("bad_timestamp", f"{field}={show(value)}: {exc}") from None


Check = Callable[[Any], Any]


def _field_check(contract: Contract, spec: Field) -> Check:
    """One field's rules (the same ones json_schema() writes down) as a function: value -> normalised value,
    or EventError. Built once per field: validation runs once per event in the Flink job."""
    where = f"{contract.name}.{spec.name}"
    kind = spec.type
    check: Check
    if kind == "string":
        pattern = re.compile(spec.pattern) if spec.pattern is not None else None
        longest, shortest = spec.max_length, spec.min_length

        def check(value: Any) -> Any:
            if not isinstance(value, str):
                raise EventError("bad_type", f"{where}={show(value)} must be a string")
            if longest is not None and len(value) > longest:
                raise EventError("too_long", f"{where} is {len(value)} chars, at most {longest}")
            if shortest is not None and len(value) < shortest:
                raise EventError("bad_value", f"{where} must have at least {shortest} char(s)")
            if pattern is not None and not pattern.search(value):
                raise EventError("bad_value", f"{where}={show(value)} must match {spec.pattern}")
            return value

    elif kind == "timestamp":

        def check(value: Any) -> Any:
            return parse_time(value, where)

    elif kind in ("double", "long"):

        def check(value: Any) -> Any:
            return _check_number(spec, where, value)

    elif kind == "boolean":

        def check(value: Any) -> Any:
            if not isinstance(value, bool):
                raise EventError("bad_type", f"{where}={show(value)} must be true or false")
            return value

    else:

        def check(value: Any) -> Any:
            return value

    if spec.enum is None:
        return check
    enum, base = spec.enum, check

    def check_enum(value: Any) -> Any:
        value = base(value)
        if value not in enum:
            raise EventError("bad_value", f"{where}={show(value)} must be one of {', '.join(enum)}")
        return value

    return check_enum


def _check_number(spec: Field, where: str, value: Any) -> float | int:
    # JSON Schema semantics: booleans are not numbers, 2.0 is an integer, bounds compare exactly.
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "an integer" if spec.type == "long" else "a number"
        raise EventError("bad_type", f"{where}={show(value)} must be {kind}")
    if isinstance(value, float) and not math.isfinite(value):  # NaN, Infinity: Python's json reads them
        raise EventError("bad_number", f"{where}={value!r} must be a finite number")
    if spec.type == "long" and isinstance(value, float) and not value.is_integer():
        raise EventError("bad_type", f"{where}={show(value)} must be an integer")
    low, high = spec.bounds
    if low is not None and value < low:
        raise EventError("bad_value", f"{where}={show(value)} must be >= {low:g}")
    if high is not None and value > high:
        code = "unsupported_version" if spec.name == "schema_version" else "bad_value"
        raise EventError(code, f"{where}={show(value)} must be <= {high:g}")
    return int(value) if spec.type == "long" else float(value)


# event_type -> (the contract, its field names, (name, required, check) per field)
_VALIDATORS = {
    event_type: (
        contract,
        frozenset(contract.names),
        tuple((f.name, f.required, _field_check(contract, f)) for f in contract.fields),
    )
    for event_type, contract in EVENTS.items()
}

_EXACT_FLOAT = 2**53  # ints within this convert to float exactly (and never overflow)


def _fast_validator(contract: Contract) -> Callable[[dict], dict[str, Any] | None]:
    """The common case as straight-line code (generated once per contract): the normalised event when every
    field is plainly valid (wire-format timestamps, in-range ints and floats, ...), else None, and the field
    checks above decide and explain. It accepts a subset of what they accept and normalises the same way, and
    is several times faster than calling one check per field (the Flink job validates every record)."""
    env: dict[str, Any] = {"_WIRE": _WIRE, "_iso": datetime.fromisoformat, "_finite": math.isfinite}
    env["_names"] = frozenset(contract.names)
    lines = ["def fast(obj):", "    if not obj.keys() <= _names:", "        return None", "    get = obj.get"]
    values, timestamps = [], []
    for i, spec in enumerate(contract.fields):
        v = f"v{i}"
        tests = []
        if spec.type == "string":
            tests.append(f"type({v}) is str")
            if spec.max_length is not None:
                tests.append(f"len({v}) <= {spec.max_length}")
            if spec.min_length is not None:
                tests.append(f"len({v}) >= {spec.min_length}")
            if spec.pattern is not None:
                env[f"_p{i}"] = re.compile(spec.pattern)
                tests.append(f"_p{i}.search({v}) is not None")
            values.append(v)
        elif spec.type == "timestamp":
            tests.append(f"type({v}) is str and _WIRE.fullmatch({v}) is not None")
            timestamps.append(v)
            values.append(v)
        elif spec.type in ("double", "long"):
            env[f"_low{i}"], env[f"_high{i}"] = spec.bounds
            if spec.type == "double":
                exact = f"type({v}) is int and -{_EXACT_FLOAT} < {v} < {_EXACT_FLOAT}"
                tests.append(f"(type({v}) is float and _finite({v}) or {exact})")
                values.append(f"float({v})" if spec.required else f"None if {v} is None else float({v})")
            else:
                tests.append(f"type({v}) is int")
                values.append(v)
            tests.append(f"_low{i} <= {v} <= _high{i}")
        elif spec.type == "boolean":
            tests.append(f"type({v}) is bool")
            values.append(v)
        else:  # a type without a fast path: the field checks decide
            return lambda obj: None
        if spec.enum is not None:
            env[f"_e{i}"] = frozenset(spec.enum)
            tests.append(f"{v} in _e{i}")
        test = " and ".join(tests)
        lines.append(f"    {v} = get({spec.name!r})")
        if spec.required:
            lines += [f"    if {v} is None or not ({test}):", "        return None"]
        else:
            lines += [f"    if {v} is not None and not ({test}):", "        return None"]
    if timestamps:  # the calendar: day 31 of April matches the pattern
        lines.append("    try:")
        lines += [f"        {v} is None or _iso({v})" for v in timestamps]
        lines += ["    except ValueError:", "        return None"]
    if contract.name == "campaign":
        starts, ends = (f"v{contract.names.index(n)}" for n in ("starts_at", "ends_at"))
        lines += [f"    if {ends} <= {starts}:", "        return None"]
    pairs = ", ".join(f"{spec.name!r}: {value}" for spec, value in zip(contract.fields, values, strict=True))
    lines.append(f"    return {{{pairs}}}")
    exec("\n".join(lines), env)  # noqa: S102 - code generated from our own contracts, no outside input
    return env["fast"]


_FAST = {event_type: _fast_validator(contract) for event_type, contract in EVENTS.items()}


def validate_event(obj: Any) -> dict[str, Any]:
    """Return the normalised event (timestamps in UTC wire format, numbers as float), or raise EventError.

    Accepts exactly what the contract's JSON Schema accepts (with date-time format checking), bar the
    rules JSON Schema cannot say (schemas/README.md): a campaign's ends_at is after its starts_at, a
    date-time is an instant in years 1..9999 UTC, numbers are finite (NaN), and no trailing newline.
    """
    if not isinstance(obj, dict):
        raise EventError("not_an_object", f"an event must be a JSON object, got {type(obj).__name__}")
    event_type = obj.get("event_type")
    fast = _FAST.get(event_type) if type(event_type) is str else None
    if fast is not None and (normalised := fast(obj)) is not None:
        return normalised
    validator = _VALIDATORS.get(event_type) if isinstance(event_type, str) else None
    if validator is None:
        raise EventError("unknown_event_type", f"event_type={show(event_type)} must be one of {', '.join(EVENTS)}")
    contract, names, checks = validator
    unknown = [k for k in obj if k not in names]
    if unknown:
        raise EventError("unexpected_field", f"{contract.name} has no field(s) {show(unknown)}")
    event: dict[str, Any] = {}
    for name, required, check in checks:
        value = obj.get(name)
        if value is None:
            if required:
                raise EventError("missing_field", f"{contract.name}.{name} is required")
            event[name] = None
            continue
        event[name] = check(value)
    if contract.name == "campaign" and event["ends_at"] <= event["starts_at"]:
        raise EventError(
            "bad_value",
            f"campaign.ends_at={event['ends_at']} must be after starts_at={event['starts_at']} "
            f"(promotion {show(event['promotion_id'])})",
        )
    return event
