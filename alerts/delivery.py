"""Alerts delivered once each, and the feedback that marks anomalies as expected, both kept in the analysis bucket
(S3 on AWS, the local directory tree otherwise) beside the anomalies they are about.

Every alert goes to each sink: a structured log line, the JSON-lines file (locally), the SNS topic (when the AWS
APIs answer) and the webhook (when one is set). `alerts/sent/<alert_id>.json` records the sinks that took it; a
later run (or a retry of the same one) sends an alert only to the sinks it has not reached, so a sink that was down
gets it next time and none gets it twice.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from alerts.rules import Alert
from core import aws
from core.object_store import object_store
from core.settings import Settings

log = logging.getLogger("demand.alerts")
SENT_PREFIX = "alerts/sent/"
FEEDBACK_PREFIX = "alerts/feedback/"
WEBHOOK_TIMEOUT_S = 10


@dataclass
class Delivery:
    sent: list[str] = field(default_factory=list)  # alert ids found for the first time (logged, sent to the sinks)
    already: list[str] = field(default_factory=list)  # alert ids every sink had before this run
    failures: list[str] = field(default_factory=list)  # "<alert id> <sink>: <error>", sent again next run

    def summary(self) -> dict:
        return {"alerts_sent": len(self.sent), "alerts_already_sent": len(self.already), "failures": self.failures}


def _file_sink(path: Path) -> Callable[[Alert], None]:
    def send(alert: Alert) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write(alert.to_json() + "\n")

    return send


def _sns_sink(settings: Settings) -> Callable[[Alert], None]:
    sns = aws.client("sns", settings)
    topic = settings.anomaly.topic_arn or sns.create_topic(Name=settings.names.alerts_topic)["TopicArn"]

    def send(alert: Alert) -> None:
        attributes = {
            "rule": {"DataType": "String", "StringValue": alert.rule},
            "severity": {"DataType": "Number", "StringValue": str(alert.severity)},
        }
        subject = f"demand alert: {alert.rule}"[:100]  # SNS: at most 100 characters
        sns.publish(TopicArn=topic, Subject=subject, Message=alert.to_json(), MessageAttributes=attributes)

    return send


def _webhook_sink(url: str) -> Callable[[Alert], None]:
    def send(alert: Alert) -> None:
        request = urllib.request.Request(url, alert.to_json().encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:  # noqa: S310 (the user's URL)
            if response.status >= 300:
                raise OSError(f"webhook {url} answered {response.status}")

    return send


def sinks(settings: Settings) -> dict[str, Callable[[Alert], None]]:
    """The sinks the settings name, by name (the log line is not one: every alert is logged as it is sent)."""
    out: dict[str, Callable[[Alert], None]] = {}
    path = settings.anomaly.alert_file or (settings.data_root / "alerts.jsonl" if settings.runtime == "local" else None)
    if path is not None:
        out["file"] = _file_sink(Path(path))
    if settings.anomaly.topic_arn or aws.answers(settings):
        out["sns"] = _sns_sink(settings)
    if settings.anomaly.webhook_url:
        out["webhook"] = _webhook_sink(settings.anomaly.webhook_url)
    return out


def deliver(settings: Settings, alerts: list[Alert], to: dict[str, Callable[[Alert], None]] | None = None) -> Delivery:
    """Each alert to each sink that has not had it; a sink's failure is logged and left for the next run."""
    store = object_store(settings)
    bucket = settings.names.bucket("analysis")
    to = sinks(settings) if to is None else to
    done = Delivery()
    for alert in alerts:
        key = f"{SENT_PREFIX}{alert.alert_id}.json"
        known = store.exists(bucket, key)
        had = json.loads(store.get(bucket, key))["sinks"] if known else []
        missing = [name for name in to if name not in had]
        if known and not missing:
            done.already.append(alert.alert_id)
            continue
        if not known:  # the log line: once per alert, when it is first found
            done.sent.append(alert.alert_id)
            log.warning("alert rule=%s id=%s severity=%d %s", alert.rule, alert.alert_id, alert.severity, alert.message)
        reached = []
        for name in missing:
            try:
                to[name](alert)
                reached.append(name)
            except Exception as exc:  # noqa: BLE001 (any sink's failure: keep the others, retry it next run)
                done.failures.append(f"{alert.alert_id} {name}: {exc}")
                log.error("alert id=%s sink=%s failed: %s", alert.alert_id, name, exc)
        if reached or not known:
            state = {"alert": json.loads(alert.to_json()), "sinks": [*had, *reached],
                     "updated_at": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
            store.put(bucket, key, json.dumps(state, indent=2).encode())
    return done


def sent_alerts(settings: Settings) -> list[dict]:
    """Every alert delivered so far, with the sinks that took it (newest first)."""
    store = object_store(settings)
    bucket = settings.names.bucket("analysis")
    states = [json.loads(store.get(bucket, key)) for key in store.list(bucket, SENT_PREFIX) if key.endswith(".json")]
    return sorted(states, key=lambda s: (s["updated_at"], s["alert"]["alert_id"]), reverse=True)


def record_feedback(settings: Settings, anomaly: dict, note: str = "") -> dict:
    """Mark an anomaly (a demand_anomalies row) as expected: its pattern alerts no more (alerts.rules.suppressions)."""
    entry = {k: anomaly[k] for k in ("anomaly_id", "level", "series", "direction", "severity")}
    entry |= {"note": note, "marked_at": datetime.now(UTC).isoformat(timespec="seconds")}
    store = object_store(settings)
    store.put(settings.names.bucket("analysis"), f"{FEEDBACK_PREFIX}{entry['anomaly_id']}.json",
              json.dumps(entry, indent=2, default=str).encode())  # fmt: skip
    return entry


def feedback(settings: Settings) -> list[dict]:
    store = object_store(settings)
    bucket = settings.names.bucket("analysis")
    return [json.loads(store.get(bucket, key)) for key in sorted(store.list(bucket, FEEDBACK_PREFIX))
            if key.endswith(".json")]  # fmt: skip
