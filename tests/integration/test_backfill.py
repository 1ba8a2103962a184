"""`demand backfill` on a month of the real Online Retail file: every stage's counts add up, the month lands in a
handful of objects, a re-run lands nothing twice, and a cancelled big order does not reach the target series."""

from __future__ import annotations

import csv
import json
from datetime import date

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from bench.online_retail import DATA
from core.settings import Settings
from demand.cli import app
from glue_jobs.build_forecast_inputs import BuildRequest, build
from glue_jobs.forecast_inputs import RunWindow

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not DATA.exists(), reason="the shared real data set is missing")]


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory):
    root = tmp_path_factory.mktemp("backfill")
    frame = pd.read_parquet(DATA)
    december = frame[frame["InvoiceDate"] < "2010-01-01"]
    december.to_parquet(root / "december.parquet")
    args = ["--data-root", str(root / "data"), "backfill", str(root / "december.parquet"), "--work", str(root / "work")]
    first = CliRunner().invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    second = CliRunner().invoke(app, [*args, "--json"])
    assert second.exit_code == 0, second.output
    return root, december, json.loads(first.stdout.splitlines()[-1]), json.loads(second.stdout.splitlines()[-1])


def test_every_line_of_the_file_ends_once(backfilled):
    _, december, summary, _ = backfilled
    replay, split = summary["replay"], summary["split"]
    assert replay["rows_read"] == len(december)
    events = replay["sale_events"] + replay["product_events"]
    assert split["input"] == events and summary["balanced"]
    assert (
        replay["rejected"]
        + split["clean"]
        + split["outliers"]
        + split["rejected"]
        + split["duplicates"]
        + (split["reference"] - replay["product_events"])
        == replay["rows_read"]
    )


def test_the_month_lands_in_a_handful_of_objects_and_a_rerun_adds_none(backfilled):
    root, _, summary, again = backfilled
    staged = sorted((root / "data" / "demand-staged" / "sales").rglob("*.parquet"))
    assert 1 <= len(staged) <= 3  # one month partition (Dec 2009), a batch or two: not an object per hour
    rows = sum(pq.read_metadata(p).num_rows for p in staged)
    assert rows == summary["split"]["clean"] == summary["land"]["rows"]["sales"]
    assert again["land"]["files_read"] == 0 and again["land"]["objects_written"] == 0


def test_a_cancelled_order_does_not_reach_the_target_series(backfilled, spark):
    root, december, _, _ = backfilled
    cancels = december[december["Invoice"].astype(str).str.startswith("C")]
    orders = december[december["Quantity"] > 0]
    pairs = cancels.merge(orders, on=["StockCode", "Customer ID"], suffixes=("_c", "_o"))
    pairs = pairs[(pairs["Quantity_o"] == -pairs["Quantity_c"]) & (pairs["InvoiceDate_o"] < pairs["InvoiceDate_c"])]
    big = pairs.sort_values("Quantity_o", ascending=False).iloc[0]  # the month's largest cancelled line
    settings = Settings(data_root=root / "data", country="GB")
    window = RunWindow(date(2009, 11, 30), date(2010, 1, 4), "W", horizon=1)
    manifest = build(spark, settings, BuildRequest(window, country="GB"))
    folder = root / "data" / settings.names.bucket("forecast-input") / manifest["datasets"]["target"]["path"]
    target = [r for part in folder.glob("part-*.csv") for r in csv.DictReader(part.open())]
    item = [float(r["demand"]) for r in target if r["item_id"] == str(big["StockCode"])]
    sold = orders[orders["StockCode"] == big["StockCode"]]["Quantity"].sum()
    assert sum(item) <= sold - big["Quantity_o"] + 1e-9, (big["StockCode"], sum(item), sold)
