"""`demand anomalies ...` and the API's /anomalies as a planner uses them: generated sales with a week's stock-out of
one item landed, a daily dataset built (Spark), then detect -> list the stock-out's drop -> mark it as expected ->
detect again: the drop carries `suppressed_by`; the alerts sent are listed; bad input is refused with a reason."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from alerts.delivery import feedback
from api.app import create_app
from core.contracts import DEMAND_ANOMALY
from core.object_store import LocalObjectStore
from demand.cli import app
from glue_jobs.build_forecast_inputs import BuildRequest, build
from glue_jobs.forecast_inputs import RunWindow
from local_stack.stack import ensure_resources
from streaming.generator import GeneratorConfig, generate
from streaming.landing import deliver

pytestmark = pytest.mark.slow

START = date(2023, 1, 2)
DAYS = 196
END = START + timedelta(days=DAYS)  # exclusive
STOCK_OUT = ("SKU00005", END - timedelta(days=20), 7)  # no sale of the item at any store for 7 days


def _sales() -> tuple[list[dict], list[dict]]:
    """Generated sales (no injected anomalies) less the stock-out's, and the reference events."""
    data = generate(GeneratorConfig(seed=13, stores=3, items=6, start=START.isoformat(), days=DAYS, anomaly_rate=0.0))
    item, first, days = STOCK_OUT
    out = {(first + timedelta(days=d)).isoformat() for d in range(days)}
    sales = [e for e in data.events if e["event_type"] == "sale"
             and not (e["item_id"] == item and e["event_time"][:10] in out)]  # fmt: skip
    return sales, [e for e in data.events if e["event_type"] != "sale"]


@pytest.fixture(scope="module")
def stack(spark, moto_server, tmp_path_factory):
    """The landed sales and one daily build; yields (settings, cli) where cli(*args) runs `demand` on them."""
    from core.settings import Settings

    tmp = tmp_path_factory.mktemp("anomalies-cli")
    rules = tmp / "rules.json"  # every anomaly at or above the threshold alerts
    rules.write_text(json.dumps([{"name": "all-anomalies", "metric": "demand", "min_severity": 50}]))
    settings = Settings(endpoint_url=moto_server, data_root=tmp / "root", prefix="anomaly-cli", frequency="D",
                        anomaly={"rules": str(rules)})  # fmt: skip
    ensure_resources(settings)
    sales, other = _sales()
    split = tmp / "split"
    for folder, rows in (("clean", sales), ("reference", other), ("outliers", [])):
        (split / folder).mkdir(parents=True)
        (split / folder / "part-0").write_text("\n".join(json.dumps(e) for e in rows))
    deliver(split, LocalObjectStore(settings.data_root), settings.names.buckets)
    build(spark, settings, BuildRequest(RunWindow(START, END, "D", horizon=7), with_location=True))

    flags = ["--prefix", settings.prefix, "--data-root", str(settings.data_root), "--endpoint-url", moto_server]

    def cli(*args: str, columns: str | None = "400"):
        """`demand anomalies ...`; 400 columns: rich's error panel never wraps a message (None: the default width)."""
        env = {"DEMAND_ANOMALY__RULES": str(rules), "COLUMNS": columns}
        return CliRunner().invoke(app, [*flags, "anomalies", *args], env=env)

    return settings, cli


@pytest.fixture(scope="module")
def detected(stack) -> dict:
    _, cli = stack
    result = cli("detect", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _rows(cli, *args: str) -> list[dict]:
    result = cli("list", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["rows"]


def _stock_out(rows: list[dict]) -> dict:
    return next(r for r in rows if r["series"] == f"item={STOCK_OUT[0]}" and r["direction"] == "drop")


def test_detect_finds_the_stock_out_and_sends_its_alerts(detected):
    assert detected["anomalies"] >= 1 and detected["by_level"].get("item", 0) >= 1
    assert detected["since"] == (END - timedelta(days=28)).isoformat()  # the default lookback: 28 days
    assert detected["alerts_sent"] == detected["alerts"] >= 1 and detected["failures"] == []
    assert "demand-anomalies/run_date=" in detected["location"]


def test_list_shows_the_stock_outs_drop_most_severe_first(stack, detected):
    _, cli = stack
    rows = _rows(cli)
    assert len(rows) == detected["anomalies"] and set(rows[0]) == set(DEMAND_ANOMALY.names)
    assert [r["severity"] for r in rows] == sorted((r["severity"] for r in rows), reverse=True)
    drop = _stock_out(rows)
    first = STOCK_OUT[1].isoformat()
    assert first <= drop["start_date"][:10] <= drop["end_date"][:10] < (STOCK_OUT[1] + timedelta(days=8)).isoformat()
    assert drop["level"] == "item" and drop["severity"] >= 50 and drop["excess_units"] < 0
    assert drop["actual"] == 0 and drop["expected"] > 0 and drop["suppressed_by"] is None

    drops = _rows(cli, "--level", "item", "--direction", "drop", "--min-severity", str(drop["severity"]))
    assert drop["anomaly_id"] in {r["anomaly_id"] for r in drops}
    assert {(r["level"], r["direction"]) for r in drops} == {("item", "drop")}
    assert all(r["severity"] >= drop["severity"] for r in drops)
    assert len(_rows(cli, "--limit", "1")) == 1


def test_list_as_csv_and_as_a_table_in_a_pipe(stack, detected):
    _, cli = stack
    as_csv = cli("list", "--format", "csv")
    assert as_csv.exit_code == 0, as_csv.output
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(rows) == detected["anomalies"] and list(rows[0]) == DEMAND_ANOMALY.names
    assert int(_stock_out(rows)["severity"]) >= 50

    table = cli("list", columns=None)  # stdout is no terminal: demand.output's pipe width, nothing cut
    assert table.exit_code == 0, table.output
    drop = _stock_out(_rows(cli))
    line = next(x for x in table.stdout.splitlines() if drop["anomaly_id"] in x)
    assert f"item={STOCK_OUT[0]}" in line and "drop" in line and f"{drop['start_date'][:10]}.." in line
    assert "…" not in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--level", "nonsense"], "must be one of total, category, store, item, item_store"),
        (["--direction", "up"], "must be one of spike, drop"),
        (["--min-severity", "101"], "less than or equal to 100"),
        (["--limit", "0"], "greater than or equal to 1"),
        (["--format", "xml"], "must be table, csv or json"),
    ],
)
def test_list_refuses_bad_input_with_a_reason(stack, args, message):
    _, cli = stack
    result = cli("list", *args)
    assert result.exit_code == 2 and message in result.output, result.output


def test_detect_without_a_build_or_with_rules_that_do_not_parse_is_an_error(stack, tmp_path):
    settings, cli = stack
    missing = cli("detect", "--manifest", "datasets/D/nowhere/manifest.json")
    assert missing.exit_code == 1 and "no forecast-input manifest at" in missing.stderr
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"name": "drops", "metric": "demand", "direction": "down"}]))
    flags = ["--prefix", settings.prefix, "--data-root", str(settings.data_root), "--endpoint-url",
             settings.endpoint_url]  # fmt: skip
    bad = CliRunner().invoke(app, [*flags, "anomalies", "detect"], env={"DEMAND_ANOMALY__RULES": str(rules)})
    assert bad.exit_code == 1 and f"{rules}: rule 0.direction" in bad.stderr, bad.output


def test_alerts_lists_what_was_sent(stack, detected):
    settings, cli = stack
    result = cli("alerts", "--format", "json")
    assert result.exit_code == 0, result.output
    sent = json.loads(result.stdout)["alerts"]
    assert len(sent) == detected["alerts_sent"]
    drop = _stock_out(_rows(cli))
    alert = next(s for s in sent if s["alert"]["subject"] == drop["anomaly_id"])
    assert alert["alert"]["rule"] == "all-anomalies" and "file" in alert["sinks"] and "sns" in alert["sinks"]
    assert f"demand drop in item={STOCK_OUT[0]}" in alert["alert"]["message"]
    table = cli("alerts", "--limit", "1")
    assert table.exit_code == 0 and "all-anomalies" in table.stdout
    assert cli("alerts", "--format", "csv").exit_code == 2


def test_the_api_lists_anomalies_most_severe_first_and_refuses_bad_filters(stack, detected):
    settings, cli = stack
    client = TestClient(create_app(settings))
    rows = client.get("/anomalies").json()["rows"]
    assert rows == _rows(cli)  # the CLI and the API read the same rows
    drop = _stock_out(rows)
    picked = client.get("/anomalies", params={"level": "item", "direction": "drop", "min_severity": drop["severity"]})
    assert drop["anomaly_id"] in {r["anomaly_id"] for r in picked.json()["rows"]}
    assert all(r["severity"] >= drop["severity"] and r["direction"] == "drop" for r in picked.json()["rows"])
    assert len(client.get("/anomalies", params={"limit": 1}).json()["rows"]) == 1
    for bad in ({"level": "region"}, {"direction": "up"}, {"min_severity": 101}, {"limit": 0}, {"limit": "x"}):
        reply = client.get("/anomalies", params=bad)
        assert reply.status_code == 422 and reply.json()["detail"], (bad, reply.text)


def test_the_api_records_feedback_on_a_known_anomaly_only(stack, detected):
    settings, _ = stack
    client = TestClient(create_app(settings))
    rows = client.get("/anomalies").json()["rows"]
    other = next(r for r in rows if r["series"] != f"item={STOCK_OUT[0]}")  # the CLI's test marks the stock-out
    stored = client.post(f"/anomalies/{other['anomaly_id']}/feedback", json={"note": "a planned closure"})
    assert stored.status_code == 200, stored.text
    assert stored.json()["note"] == "a planned closure" and stored.json()["severity"] == other["severity"]
    assert {(f["anomaly_id"], f["series"], f["direction"]) for f in feedback(settings)} >= {
        (other["anomaly_id"], other["series"], other["direction"])
    }
    unknown = client.post("/anomalies/0123456789abcdef/feedback", json={"note": "x"})
    assert unknown.status_code == 404 and "0123456789abcdef" in unknown.json()["detail"]
    assert client.post("/anomalies/a'b/feedback", json={}).status_code == 422
    assert client.post(f"/anomalies/{other['anomaly_id']}/feedback", json={"note": 3, "extra": 1}).status_code == 422


def test_feedback_marks_the_stock_out_as_expected_and_the_next_detection_suppresses_it(stack, detected):
    _, cli = stack
    drop = _stock_out(_rows(cli))
    marked = cli("feedback", drop["anomaly_id"], "--note", "x")
    assert marked.exit_code == 0, marked.output
    assert f"marked drop {drop['anomaly_id']} in item={STOCK_OUT[0]}" in marked.stdout
    assert f"up to severity {min(100, drop['severity'] + 15)}" in marked.stdout

    again = cli("detect")  # the summary table this time
    assert again.exit_code == 0, again.output
    suppressed = re.search(r"(\d+) suppressed by feedback; (\d+) alerts: 0 sent, (\d+) already sent", again.stdout)
    assert suppressed and int(suppressed[1]) >= 1 and suppressed[2] == suppressed[3], again.stdout
    after = _stock_out(_rows(cli))
    assert after["anomaly_id"] == drop["anomaly_id"] and after["suppressed_by"] == drop["anomaly_id"]
    line = next(x for x in cli("list").stdout.splitlines() if drop["anomaly_id"] in x)
    assert " yes " in line

    unknown = cli("feedback", "unknown-id")
    assert unknown.exit_code == 1 and "no anomaly 'unknown-id' in the latest detection" in unknown.stderr
