"""The demand-anomaly job on the local runtime, as a user runs it: generated sales with a stock-out, spikes, a level
shift, a web-shop outage and a burst of outliers landed -> daily datasets built (Spark) -> `detect_demand_anomalies`
-> the anomalies of every level and of the channels in the analysis bucket, queried in DuckDB, and the alerts: in the
JSON-lines file and on SNS (moto), once each; feedback suppresses the next anomaly of the same pattern."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from factories import outlier

from alerts.delivery import record_feedback, sent_alerts
from core.aws import client
from core.object_store import LocalObjectStore
from glue_jobs.build_forecast_inputs import BuildRequest, build
from glue_jobs.detect_demand_anomalies import DetectError, main, run
from glue_jobs.forecast_inputs import RunWindow
from local_stack.stack import ensure_resources
from query.engine import run_local
from streaming.generator import GeneratorConfig, generate
from streaming.landing import deliver

pytestmark = pytest.mark.slow

START = date(2023, 1, 2)
DAYS = 280
END = START + timedelta(days=DAYS)  # exclusive
STOCK_OUT = ("SKU00005", END - timedelta(days=20), 7)  # no sale of the item at any store for 7 days
SPIKES = ("SKU00002", "S001", (END - timedelta(days=24), END - timedelta(days=4)))  # two of the same pattern
SHIFT = ("SKU00004", "S002", END - timedelta(days=21))  # from that day on, every sale three times (a new customer)
OUTAGE = (END - timedelta(days=35), 5)  # no web sale of the other items for 5 days: the web shop's feed broke


def _events():
    data = generate(GeneratorConfig(seed=13, stores=2, items=8, start=START.isoformat(), days=DAYS, anomaly_rate=0.0))
    sales = [e for e in data.events if e["event_type"] == "sale"]
    item, first, days = STOCK_OUT
    out = {(first + timedelta(days=d)).isoformat() for d in range(days)}
    sales = [e for e in sales if not (e["item_id"] == item and e["event_time"][:10] in out)]
    web = next(e for e in sales if e["channel"] == "web" and e["item_id"] == "SKU00007")
    sales += [
        {**web, "event_id": f"web-{d}-{i}", "event_time": f"{START + timedelta(days=d)}T09:{i:02d}:00Z", "quantity": 1}
        for d in range(DAYS)
        for i in range(20)
    ]  # fmt: skip  (a web shop of 20 orders a day)
    first, days = OUTAGE
    out = {(first + timedelta(days=d)).isoformat() for d in range(days)}
    kept = {STOCK_OUT[0], SPIKES[0], SHIFT[0]}  # their own events stay alone on their series
    sales = [e for e in sales if e["channel"] != "web" or e["event_time"][:10] not in out or e["item_id"] in kept]
    item, store, spike_days = SPIKES
    model = next(e for e in sales if e["item_id"] == item and e["store_id"] == store)
    for n, day in enumerate(spike_days):  # 20 ordinary lines more than the day's usual
        sales += [{**model, "event_id": f"spike-{n}-{i}", "event_time": f"{day.isoformat()}T1{i % 10}:00:00Z",
                   "quantity": 3} for i in range(20)]  # fmt: skip
    item, store, since = SHIFT
    shifted = [
        e for e in sales if (e["item_id"], e["store_id"]) == (item, store) and e["event_time"][:10] >= str(since)
    ]
    sales += [{**e, "event_id": f"{e['event_id']}-shift-{k}"} for e in shifted for k in range(2)]
    other = [e for e in data.events if e["event_type"] != "sale"]
    burst = (END - timedelta(days=2)).isoformat()  # a day the split routed most lines as outliers
    outliers = [outlier(f"o{i}", f"{burst}T12:{i:02d}:00Z", "SKU00007", "quantity_spike") for i in range(60)]
    return sales, other, outliers


@pytest.fixture(scope="module")
def landed(spark, moto_server, tmp_path_factory):
    from core.settings import Settings

    tmp = tmp_path_factory.mktemp("anomalies")
    rules = tmp / "rules.json"  # every anomaly (severity 50 is the threshold) and days of over 5 % outliers
    rules.write_text(json.dumps([{"name": "all-anomalies", "metric": "demand", "min_severity": 50},
                                 {"name": "outlier-rate", "metric": "outlier_rate", "max_rate": 0.05}]))  # fmt: skip
    settings = Settings(endpoint_url=moto_server, data_root=tmp / "root", prefix="anomaly-test", frequency="D",
                        anomaly={"rules": str(rules)})  # fmt: skip
    ensure_resources(settings)
    sales, other, outliers = _events()
    split = tmp / "split"
    for folder, rows in (("clean", sales), ("reference", other), ("outliers", outliers)):
        (split / folder).mkdir(parents=True)
        (split / folder / "part-0").write_text("\n".join(json.dumps(e) for e in rows))
    deliver(split, LocalObjectStore(settings.data_root), settings.names.buckets)
    sns = client("sns", settings)
    topic = sns.create_topic(Name=settings.names.alerts_topic)["TopicArn"]
    queue = client("sqs", settings).create_queue(QueueName="anomaly-test-alerts")["QueueUrl"]
    queue_arn = client("sqs", settings).get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"])

    def build_until(end: date) -> str:
        window = RunWindow(START, end, "D", horizon=7)
        return build(spark, settings, BuildRequest(window, with_location=True))["prefix"] + "manifest.json"

    return settings, build_until, queue


def _received(settings, queue) -> list[dict]:
    sqs = client("sqs", settings)
    out = []
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            out.append(json.loads(json.loads(message["Body"])["Message"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    return out


def test_a_stock_out_and_a_spike_are_found_alerted_once_and_feedback_silences_the_pattern(spark, landed):
    settings, build_until, queue = landed
    first_build = build_until(END - timedelta(days=10))  # sees the stock-out, the first spike, the shift's start
    result = run(spark, settings, first_build)
    assert result["anomalies"] >= 2 and result["failures"] == []
    rows = run_local(
        f"SELECT * FROM {settings.names.glue_database}.latest_anomalies ORDER BY severity DESC", settings
    ).records()
    by_series = {(r["series"], r["direction"]): r for r in rows}
    item, first, _ = STOCK_OUT
    stock_out = by_series[(f"item={item}", "drop")]
    assert first <= stock_out["start_date"].date() <= stock_out["end_date"].date() <= first + timedelta(days=7)
    assert stock_out["contributors"].startswith(f"item_store={item}|S00")  # both stores stopped
    assert stock_out["excess_units"] < 0 and stock_out["category"]
    item, store, since = SHIFT
    shift = by_series[(f"item_store={item}|{store}", "spike")]  # the level shift, at its item and store
    # A run's anomaly starts where the run that scored it does: a day or two early when those days sold well.
    assert since - timedelta(days=2) <= shift["start_date"].date() <= since + timedelta(days=7)
    assert shift["excess_units"] > 0
    outage = by_series[("channel=web", "drop")]  # the web channel, judged beside the hierarchy
    assert outage["level"] == "channel" and outage["channel"] == "web"
    assert OUTAGE[0] - timedelta(days=2) <= outage["start_date"].date() <= OUTAGE[0] + timedelta(days=2)
    assert outage["contributors"].startswith("item=SKU00007 -")  # the item of the web shop's 20 orders a day
    spike = by_series[(f"item_store={SPIKES[0]}|{SPIKES[1]}", "spike")]
    assert spike["peak_date"].date() == SPIKES[2][0] and spike["actual"] >= 60 and spike["severity"] >= 50

    sent = [json.loads(line) for line in (settings.data_root / "alerts.jsonl").read_text().splitlines()]
    on_sns = _received(settings, queue)
    assert sorted(a["alert_id"] for a in sent) == sorted(a["alert_id"] for a in on_sns)
    assert {a["subject"] for a in sent} == {r["anomaly_id"] for r in rows}  # each anomaly alerted, once
    assert "demand drop in item=SKU00005" in next(a["message"] for a in sent if a["subject"] == stock_out["anomaly_id"])

    again = run(spark, settings, first_build)  # a re-run: the same anomalies, no alert twice
    assert again["anomalies"] == result["anomalies"] and again["alerts_sent"] == 0
    assert again["alerts_already_sent"] == again["alerts"] == result["alerts"]
    assert len((settings.data_root / "alerts.jsonl").read_text().splitlines()) == len(sent)
    assert _received(settings, queue) == []

    record_feedback(settings, spike, note="a school's yearly order")
    later = run(spark, settings, build_until(END))  # the second spike and a day of outliers
    rows = run_local(f"SELECT * FROM {settings.names.glue_database}.latest_anomalies", settings).records()
    second = [r for r in rows if r["series"] == spike["series"] and r["peak_date"].date() == SPIKES[2][1]]
    assert len(second) == 1 and second[0]["suppressed_by"] == spike["anomaly_id"], "\n".join(
        str((r["series"], r["direction"], r["severity"], r["start_date"], r["peak_date"])) for r in rows
    )
    new = _received(settings, queue)
    assert second[0]["anomaly_id"] not in {a["subject"] for a in new}  # silenced by the feedback
    rate = [a for a in new if a["metric"] == "outlier_rate"]
    assert len(rate) == 1 and rate[0]["details"]["outliers"] == 60 and later["failures"] == []
    assert {s["alert"]["alert_id"] for s in sent_alerts(settings)} >= {a["alert_id"] for a in sent + new}


def test_the_job_entry_reads_glue_arguments_and_bad_rules_or_a_missing_build_say_what_is_wrong(spark, landed, tmp_path):
    settings, _, _ = landed
    args = ["--JOB_NAME", "detect", "--data_root", str(settings.data_root), "--prefix", settings.prefix,
            "--endpoint_url", settings.endpoint_url, "--lookback", "7"]  # fmt: skip
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"name": "drops", "metric": "demand", "direction": "down"}]))
    with pytest.raises(ValueError, match=r"rules.json: rule 0.direction: Input should be 'spike', 'drop' or 'any'"):
        main([*args, "--rules", str(rules)])
    with pytest.raises(DetectError, match="no forecast-input manifest at .*nowhere/manifest.json"):
        main([*args, "--input_manifest_key", "datasets/D/nowhere/manifest.json"])
    rules.write_text(json.dumps([{"name": "big-drops", "metric": "demand", "direction": "drop", "min_severity": 99}]))
    result = main([*args, "--rules", str(rules)])
    assert result["since"] == (END - timedelta(days=7)).isoformat() and result["alerts"] == 0
