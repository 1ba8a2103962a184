"""`demand report` on a real enriched run: the HTML names the run, its accuracy, widest items and outlier codes."""

from __future__ import annotations

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


def test_report_with_no_run_yet_still_writes_a_page(tmp_path):
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["--data-root", str(tmp_path / "empty"), "report", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "No forecast run yet" in out.read_text()
