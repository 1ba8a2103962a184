"""`demand report` on a real enriched run: the HTML names the run, its accuracy, widest items and outlier codes, and
its charts carry the run's data (the page in a browser: tests/e2e/test_web_page.py)."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from test_api import RUN_ID, build_enriched
from typer.testing import CliRunner

from demand.cli import app


@pytest.fixture(scope="module")
def data_root(spark, tmp_path_factory):
    from core.settings import Settings

    settings = Settings(data_root=tmp_path_factory.mktemp("report") / "root", prefix=f"t{uuid.uuid4().hex[:6]}-rep")
    build_enriched(spark, settings)
    return settings


def test_report_writes_the_latest_run_summary(data_root, tmp_path):
    out = tmp_path / "out" / "report.html"
    args = ["--prefix", data_root.prefix, "--data-root", str(data_root.data_root), "report", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert f"Forecast run {RUN_ID}" in html
    assert "<td>statsforecast</td>" in html and "0.300" in html  # backend and WAPE
    # A's band (9-2, 8-1) is wider than B's (2, 3): A is listed first.
    assert html.index("<td>A</td>") < html.index("<td>B</td>")
    assert "<td>quantity_spike</td>" in html and "<td>price_deviation</td>" in html
    assert "<script" not in html and "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # offline


def test_report_charts_carry_the_runs_history_forecast_backtest_and_outliers(data_root, tmp_path):
    out = tmp_path / "report.html"
    args = [
        "--prefix",
        data_root.prefix,
        "--data-root",
        str(data_root.data_root),
        "report",
        "--out",
        str(out),
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert [c["item_id"] for c in figures["charted_items"]] == ["A", "B"]  # the most forecast units first
    html = out.read_text()
    a = html[html.index('data-chart="history" data-item="A"') :]
    a = a[: a.index("</svg>")]
    assert re.search(r'class="hist" points="[^"]+" data-values="10 6 5"', a)  # A's weekly demand
    assert re.search(r'class="p50" points="[^"]+" data-values="5 4"', a)
    assert sorted(re.findall(r'data-code="(\w+)"', a)) == ["price_deviation", "quantity_spike", "quantity_spike"]
    bars = re.findall(r'data-group="(\w+)" data-series="window (\d)" data-value="([\d.]+)"', html)
    assert sorted(bars) == [("LightGBM", "1", "0.35"), ("LightGBM", "2", "0.31"), ("ensemble", "1", "0.34"),
                            ("ensemble", "2", "0.29")]  # fmt: skip
    weekly = {(w["week"][:10], w["outlier_code"]): w["outliers"] for w in figures["outliers_by_week"]}
    assert sum(weekly.values()) == 4 and weekly[("2024-01-08", "quantity_spike")] == 2


def test_report_with_no_run_yet_still_writes_a_page(tmp_path):
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["--data-root", str(tmp_path / "empty"), "report", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "No forecast run yet" in out.read_text()
