"""Alert rules, feedback and delivery (alerts/): a rule picks the anomalies of its level, direction, dimension and
severity; feedback silences the same pattern but not a much stronger one; each alert reaches each sink once, a sink
that was down gets it on the next run, and a webhook receives the alert as JSON."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pandas as pd
import pytest

from alerts.delivery import deliver, feedback, record_feedback, sent_alerts, sinks
from alerts.rules import (
    DEFAULT_RULES,
    AlertRule,
    RuleError,
    demand_alerts,
    outlier_rate_alerts,
    parse_rules,
    suppressions,
)
from core.settings import Settings


def _anomaly(anomaly_id: str, series: str, direction: str = "drop", severity: int = 62, **extra) -> dict:
    day = pd.Timestamp("2024-07-01")
    return {"anomaly_id": anomaly_id, "level": series.split("=")[0], "series": series, "item_id": None,
            "location": None, "category": extra.pop("category", "Garden"), "direction": direction, "start_date": day,
            "end_date": day + pd.Timedelta(days=6), "peak_date": day + pd.Timedelta(days=6), "actual": 0.0,
            "expected": 12.5, "excess_units": -80.0, "score": -6.1, "severity": severity,
            "contributors": "item=A -80 (100%)", "suppressed_by": None, **extra}  # fmt: skip


def test_rules_pick_anomalies_by_level_direction_dimension_and_severity():
    frame = pd.DataFrame([
        _anomaly("a1", "category=Garden", severity=62),
        _anomaly("a2", "item=A", direction="spike", severity=80),
        _anomaly("a3", "item=B", severity=55, category="Kitchen"),
    ])  # fmt: skip
    rules = (AlertRule(name="garden-drops", metric="demand", direction="drop", where={"category": "Garden"},
                       min_severity=50),
             AlertRule(name="items", metric="demand", levels=("item",), min_severity=70))  # fmt: skip
    alerts = demand_alerts(frame, rules)
    assert sorted((a.rule, a.subject) for a in alerts) == [("garden-drops", "a1"), ("items", "a2")]
    (garden,) = [a for a in alerts if a.subject == "a1"]
    assert garden.message.startswith("demand drop in category=Garden 2024-07-01 to 2024-07-07: 0 against 12.5")
    assert "moved most by item=A -80 (100%)" in garden.message and garden.severity == 62
    assert demand_alerts(frame, rules)[0].alert_id == alerts[0].alert_id  # the same anomaly, the same alert
    assert [a.subject for a in demand_alerts(frame, DEFAULT_RULES)] == ["a1", "a2"]  # levels above 50, items 60


def test_bad_rules_name_the_file_the_rule_and_the_field():
    with pytest.raises(RuleError, match=r"r.json: rule 1.min_severity: Input should be less than or equal to 100"):
        parse_rules(json.dumps([{"name": "a", "metric": "demand"}, {"name": "b", "metric": "demand",
                                                                    "min_severity": 120}]), "r.json")  # fmt: skip
    with pytest.raises(RuleError, match=r"rule 0.where.store"):
        parse_rules(json.dumps([{"name": "a", "metric": "demand", "where": {"store": "s1"}}]), "r.json")
    with pytest.raises(RuleError, match="unique"):
        parse_rules(json.dumps([{"name": "a", "metric": "demand"}, {"name": "a", "metric": "outlier_rate"}]), "r")
    with pytest.raises(RuleError, match="Invalid JSON"):
        parse_rules("[{", "r.json")


def test_feedback_silences_the_same_pattern_but_not_a_much_stronger_one_or_another_series():
    marked = [{"anomaly_id": "a1", "series": "item=A", "direction": "drop", "severity": 60}]
    frame = pd.DataFrame([
        _anomaly("b1", "item=A", severity=70),  # the same pattern, a little stronger
        _anomaly("b2", "item=A", severity=80),  # far stronger than what was expected
        _anomaly("b3", "item=A", direction="spike", severity=60),
        _anomaly("b4", "item=B", severity=60),
    ])  # fmt: skip
    assert suppressions(frame, marked).tolist() == ["a1", None, None, None]


def test_outlier_rate_alerts_only_on_days_with_enough_lines():
    rates = pd.DataFrame({"day": pd.to_datetime(["2024-07-01", "2024-07-02", "2024-07-03"]),
                          "lines": [1000, 1000, 20], "outliers": [30, 120, 15]})  # fmt: skip
    (alert,) = outlier_rate_alerts(rates, DEFAULT_RULES)
    assert alert.subject == "2024-07-02" and alert.details["rate"] == 0.12 and alert.severity == 71
    assert "routed 120 of 1000 sale lines (12.0%) on 2024-07-02" in alert.message


@pytest.fixture
def local(tmp_path):
    return Settings(data_root=tmp_path, prefix="alert-test", endpoint_url="http://127.0.0.1:9")  # nothing listens


def test_each_alert_reaches_each_sink_once_and_a_failed_sink_gets_it_next_run(local):
    alerts = demand_alerts(pd.DataFrame([_anomaly("a1", "item=A"), _anomaly("a2", "item=B")]), DEFAULT_RULES)
    received: dict[str, list[str]] = {"chat": [], "pager": []}
    down = {"pager": True}

    def pager(alert):
        if down["pager"]:
            raise ConnectionError("pager unreachable")
        received["pager"].append(alert.alert_id)

    to = {"chat": lambda a: received["chat"].append(a.alert_id), "pager": pager}
    first = deliver(local, alerts, to)
    assert len(first.sent) == 2 and len(first.failures) == 2 and "pager unreachable" in first.failures[0]
    down["pager"] = False
    second = deliver(local, alerts, to)
    assert second.sent == [] and second.failures == [] and second.already == []
    assert sorted(received["chat"]) == sorted(received["pager"]) == sorted(a.alert_id for a in alerts)
    third = deliver(local, alerts, to)
    assert sorted(third.already) == sorted(a.alert_id for a in alerts)
    assert len(received["chat"]) == 2  # never twice
    assert {tuple(s["sinks"]) for s in sent_alerts(local)} == {("chat", "pager")}


def test_the_local_sinks_are_the_json_lines_file_and_the_webhook(local):
    posted: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = local.model_copy(update={"anomaly": local.anomaly.model_copy(
            update={"webhook_url": f"http://127.0.0.1:{server.server_port}/hook"})})  # fmt: skip
        assert set(sinks(settings)) == {"file", "webhook"}  # no SNS: the AWS APIs do not answer
        alerts = demand_alerts(pd.DataFrame([_anomaly("a1", "item=A")]), DEFAULT_RULES)
        assert deliver(settings, alerts).failures == []
        assert deliver(settings, alerts).already == [alerts[0].alert_id]
    finally:
        server.shutdown()
    assert [p["alert_id"] for p in posted] == [alerts[0].alert_id]
    (line,) = (local.data_root / "alerts.jsonl").read_text().splitlines()
    assert json.loads(line)["details"]["series"] == "item=A"


def test_feedback_is_stored_beside_the_anomalies(local):
    entry = record_feedback(local, _anomaly("a1", "item=A"), note="closed for a refit")
    assert feedback(local) == [entry] and entry["note"] == "closed for a refit" and entry["severity"] == 62
