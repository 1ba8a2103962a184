"""Alert rules and the alerts they raise, as plain functions over the demand-anomaly rows (core.contracts
DEMAND_ANOMALY) and the split's outlier rate per day.

A rule is either `demand` (an anomaly of a level, direction and dimension values at or above a severity) or
`outlier_rate` (a day on which the split routed more than a share of the sale lines as outliers: a broken feed or a
detector gone wrong). An alert's id is the rule's name and the anomaly's id (or the day), so the same anomaly found
again by a later run is the same alert, which delivery sends once. An anomaly marked as expected (feedback) suppresses
the anomalies of the same pattern: the same series and direction, up to a little above the marked one's severity.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from core.contracts import ANOMALY_LEVELS

SEVERITY_MARGIN = 15  # feedback on a severity-60 anomaly still lets a severity-76 one of the same pattern through


class RuleError(ValueError):
    """Alert rules that do not parse: which file, which rule, which field."""


class AlertRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    metric: Literal["demand", "outlier_rate"]
    min_severity: int = Field(60, ge=0, le=100, description="demand: the least severity that alerts")
    levels: tuple[Literal[ANOMALY_LEVELS], ...] = Field((), description="demand: the levels; empty: every level")  # type: ignore[valid-type]
    direction: Literal["spike", "drop", "any"] = "any"
    where: dict[Literal["item_id", "location", "category", "channel"], str] = Field(
        default_factory=dict, description="demand: dimension values the anomaly must have (category: Garden)"
    )
    max_rate: float = Field(0.05, gt=0, le=1, description="outlier_rate: a day's share of outlier lines above this")
    min_lines: int = Field(50, ge=1, description="outlier_rate: days with fewer sale lines are not judged")


DEFAULT_RULES = (
    AlertRule(name="demand-totals", metric="demand", levels=("total", "category", "store", "channel"), min_severity=50),
    AlertRule(name="demand-items", metric="demand", levels=("item", "item_store"), min_severity=60),
    AlertRule(name="outlier-rate", metric="outlier_rate", max_rate=0.05),
)
_RULES = TypeAdapter(list[AlertRule])


def parse_rules(text: str, where: str) -> tuple[AlertRule, ...]:
    """Rules from JSON (a list of rule objects); a clear error naming the file and the rule otherwise."""
    try:
        rules = _RULES.validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        place = ".".join(str(p) for p in first["loc"])
        raise RuleError(f"{where}: rule {place}: {first['msg']}") from None
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise RuleError(f"{where}: rule names must be unique: {sorted(n for n in set(names) if names.count(n) > 1)}")
    return tuple(rules)


@dataclass(frozen=True)
class Alert:
    alert_id: str
    rule: str
    metric: str
    subject: str  # the anomaly's id, or the day of an outlier rate
    severity: int
    message: str
    details: dict

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)


def _alert_id(rule: str, subject: str) -> str:
    return hashlib.sha1(f"{rule}|{subject}".encode()).hexdigest()[:20]


def matches(rule: AlertRule, anomaly: dict) -> bool:
    return (
        rule.metric == "demand"
        and anomaly["severity"] >= rule.min_severity
        and (not rule.levels or anomaly["level"] in rule.levels)
        and rule.direction in ("any", anomaly["direction"])
        and all(anomaly.get(dimension) == value for dimension, value in rule.where.items())
    )


def suppressions(anomalies: pd.DataFrame, feedback: list[dict]) -> pd.Series:
    """Per anomaly, the id of the feedback that marked its pattern as expected (None where none did): the same
    series and direction, at most SEVERITY_MARGIN above the marked anomaly's severity."""
    marked: dict[tuple[str, str], list[dict]] = {}
    for entry in feedback:
        marked.setdefault((entry["series"], entry["direction"]), []).append(entry)
    out = []
    for row in anomalies.itertuples():
        hits = [
            f for f in marked.get((row.series, row.direction), []) if row.severity <= f["severity"] + SEVERITY_MARGIN
        ]
        out.append(hits[0]["anomaly_id"] if hits else None)
    return pd.Series(out, index=anomalies.index, dtype=object)


def _describe(a: dict) -> str:
    span = f"{a['start_date']:%Y-%m-%d}"
    if a["end_date"] != a["start_date"]:
        span += f" to {a['end_date']:%Y-%m-%d}"
    text = (
        f"demand {a['direction']} in {a['series']} {span}: {a['actual']:.0f} against {a['expected']:.1f} expected at "
        f"{a['peak_date']:%Y-%m-%d} ({a['excess_units']:+.0f} units over the anomaly), severity {a['severity']}"
    )
    return text + (f"; moved most by {a['contributors']}" if a.get("contributors") else "")


DETAILS = ("anomaly_id", "level", "series", "item_id", "location", "category", "channel", "direction", "start_date",
           "end_date", "peak_date", "actual", "expected", "excess_units", "score", "contributors")  # fmt: skip


def demand_alerts(anomalies: pd.DataFrame, rules: tuple[AlertRule, ...]) -> list[Alert]:
    """One alert per rule and matching anomaly that no feedback suppressed (`suppressed_by` empty)."""
    alerts = []
    for anomaly in anomalies.to_dict("records"):
        if anomaly.get("suppressed_by"):
            continue
        details = {k: anomaly.get(k) for k in DETAILS}
        for rule in (r for r in rules if matches(r, anomaly)):
            subject = anomaly["anomaly_id"]
            alerts.append(Alert(_alert_id(rule.name, subject), rule.name, "demand", subject,
                                int(anomaly["severity"]), _describe(anomaly), details))  # fmt: skip
    return alerts


def outlier_rate_alerts(rates: pd.DataFrame, rules: tuple[AlertRule, ...]) -> list[Alert]:
    """One alert per rule and day (`rates`: day, lines, outliers) whose outlier share is above the rule's."""
    alerts = []
    for rule in (r for r in rules if r.metric == "outlier_rate"):
        for day in rates.itertuples():
            rate = day.outliers / day.lines if day.lines else 0.0
            if day.lines < rule.min_lines or rate <= rule.max_rate:
                continue
            subject = f"{day.day:%Y-%m-%d}"
            message = (
                f"the outlier split routed {day.outliers} of {day.lines} sale lines ({rate:.1%}) on {subject} as "
                f"outliers, above {rule.max_rate:.1%}"
            )
            details = {"day": subject, "lines": int(day.lines), "outliers": int(day.outliers), "rate": round(rate, 4)}
            severity = min(100, round(100 * rate / (rate + rule.max_rate)))  # 50 at the rule's rate
            alerts.append(Alert(_alert_id(rule.name, subject), rule.name, "outlier_rate", subject, severity, message,
                                details))  # fmt: skip
    return alerts
