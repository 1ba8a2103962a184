"""Replaying the UCI Online Retail II data set (CSV, parquet, the two-sheet xlsx): every row becomes a sale event or
a rejection with a reason; cancellations find the order they cancel where the data allows."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from core.contracts import REJECTED
from demand.cli import app
from streaming.events import validate_event
from streaming.uci_replay import category_of, parse_invoice_date, replay_uci

# Rows shaped like the real file: a winter invoice (GMT), a summer one (BST), cancellations (one of an order of the
# same customer, one without), a row without a customer, a DST fall-back hour, a postage line, a write-off at price 0,
# and bad rows of each kind.
CSV = """\
Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country
489434,85048,15CM CHRISTMAS GLASS BALL 20 LIGHTS,12,2009-12-01 07:45:00,6.95,13085.0,United Kingdom
489434,79323P,PINK CHERRY LIGHTS,12,2009-12-01 07:45:00,6.75,13085.0,United Kingdom
489435,22350,"CAT BOWL ",12,2009-12-01 07:46:00,2.55,,United Kingdom
C489449,22087,PAPER BUNTING WHITE LACE,-12,2009-12-01 10:33:00,2.95,16321.0,Australia
C489450,85048,15CM CHRISTMAS GLASS BALL 20 LIGHTS,-5,2009-12-01 10:34:00,6.95,13085.0,United Kingdom
489451,22350,CAT BOWL,-20,2009-12-01 11:00:00,0.00,,United Kingdom
491970,POST,POSTAGE,3,2010-06-14 13:05:00,18.00,12682,France
491971,22087,PAPER BUNTING WHITE LACE,6,2010-10-31 01:30:00,2.95,12682,France
491972,22350,CAT BOWL,x,2010-10-31 09:00:00,2.55,12682,France
491973,,MYSTERY ITEM,1,2010-11-01 09:00:00,1.00,12682,France
491974,22350,CAT BOWL,2,31/31/2010 25:00,2.55,12682,France
A506401,B,Adjust bad debt,1,2010-04-29 13:36:00,-53594.36,,United Kingdom
491975,22350,CAT BOWL,2,2010-11-02 09:00:00,abc,12682,France
"""


@pytest.fixture
def csv_path(tmp_path):
    path = tmp_path / "online_retail_II.csv"
    path.write_text(CSV, encoding="utf-8")
    return path


def test_counts_add_up_and_bad_rows_are_kept_with_a_reason(csv_path):
    result = replay_uci(csv_path)
    counts = result.counts
    assert counts.rows_read == 13
    assert counts.sale_events + counts.rejected == counts.rows_read == counts.sale_events + len(result.rejected)
    assert counts.sale_events == 7
    assert counts.as_dict()["rejected_by_code"] == {
        "bad_price": 1,
        "bad_quantity": 1,
        "bad_timestamp": 1,
        "missing_stock_code": 1,
        "not_merchandise": 2,  # postage, and the bad-debt adjustment (B) with its negative price
    }
    for record in result.rejected:
        assert set(record) == set(REJECTED.names)
        assert record["source"] == str(csv_path) and record["raw_encoding"] == "utf-8"
        assert record["error"].startswith("row ")
    assert any("MYSTERY ITEM" in r["raw"] for r in result.rejected)
    assert any("POSTAGE" in r["error"] for r in result.rejected)


def test_rows_become_valid_sale_events_in_utc(csv_path):
    result = replay_uci(csv_path)
    sales = [e for e in result.events if e["event_type"] == "sale"]
    for event in result.events:
        assert validate_event(event) == event
    first = sales[0]
    assert first["event_time"] == "2009-12-01T07:45:00.000Z"  # GMT in winter
    assert first["currency"] == "GBP" and first["channel"] == "web"
    assert first["order_id"] == "489434" and first["customer_id"] == "13085"
    assert first["store_id"] == "uci-united-kingdom" and first["item_id"] == "85048"
    summer = next(e for e in sales if e["order_id"] == "491971")
    assert summer["event_time"] == "2010-10-31T00:30:00.000Z"  # the repeated hour, first occurrence (BST)
    assert next(e for e in sales if e["order_id"] == "489435")["customer_id"] is None
    assert len({e["event_id"] for e in result.events}) == len(result.events)


def test_cancellations_take_the_order_they_cancel_where_the_data_allows(csv_path):
    result = replay_uci(csv_path)
    negative = {e["event_id"]: e for e in result.events if e["event_type"] == "sale" and e["quantity"] < 0}
    matched = negative["uci-C489450-85048-5"]  # customer 13085 ordered 12 of 85048 earlier (invoice 489434)
    assert matched["order_id"] == "489434" and matched["quantity"] == -5
    assert negative["uci-C489449-22087-4"]["order_id"] == "C489449"  # nothing of it was open: a return
    writeoff = negative["uci-489451-22350-6"]
    assert writeoff["unit_price"] == 0 and writeoff["order_id"] == "489451"  # the split routes it (stock_writeoff)
    assert result.counts.cancellations == 2 and result.counts.matched_cancellations == 1


def test_each_stock_code_is_described_before_its_first_sale(csv_path):
    result = replay_uci(csv_path)
    described = {}
    for event in result.events:
        if event["event_type"] == "product":
            assert event["item_id"] not in described
            described[event["item_id"]] = event
        else:
            assert event["item_id"] in described
    assert described["85048"]["name"] == "15CM CHRISTMAS GLASS BALL 20 LIGHTS"
    assert described["85048"]["category"] == "christmas"
    assert described["22350"]["list_price"] is None  # the data set has no list prices: not the first line's


def test_replay_is_deterministic_and_the_same_from_csv_parquet_and_xlsx(csv_path, tmp_path):
    import pandas as pd

    first, second = replay_uci(csv_path), replay_uci(csv_path)
    assert first.events == second.events
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    frame.to_parquet(tmp_path / "retail.parquet")
    assert replay_uci(tmp_path / "retail.parquet").events == first.events
    # The UCI xlsx: two sheets whose overlap (here the last two rows of the first) is read once.
    with pd.ExcelWriter(tmp_path / "online_retail_II.xlsx") as book:
        frame.to_excel(book, sheet_name="Year 2009-2010", index=False)
        frame.iloc[-2:].to_excel(book, sheet_name="Year 2010-2011", index=False)
    both = replay_uci(tmp_path / "online_retail_II.xlsx")
    assert both.counts.overlap_rows_dropped == 2 and both.counts.rows_read == first.counts.rows_read
    assert [e["item_id"] for e in both.events] == [e["item_id"] for e in first.events]


def test_wrong_file_is_refused_with_the_expected_layout(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b,c\n1,2,3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="Online Retail II layout"):
        replay_uci(path)


def test_helpers():
    assert parse_invoice_date("12/01/2009 07:45").isoformat() == "2009-12-01T07:45:00+00:00"
    assert category_of("21212", "PACK OF 72 RETRO SPOT CAKE CASES") == "kitchen"
    assert category_of("99999", "SOMETHING ELSE") == "unknown"


def test_cli_replays_to_files(csv_path, tmp_path):
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(app, ["replay-uci", str(csv_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "rows_read" in result.output
    lines = (out / "events.jsonl").read_bytes().splitlines()
    rejected = (out / "rejected.jsonl").read_text().splitlines()
    assert len(rejected) == 6 and all(validate_event(json.loads(line)) for line in lines)
    summary = json.loads(runner.invoke(app, ["replay-uci", str(csv_path), "--out", str(out), "--json"]).stdout)
    assert summary["rows_read"] == summary["sale_events"] + summary["rejected"] == 13
    missing = runner.invoke(app, ["replay-uci", str(tmp_path / "nope.csv"), "--out", str(out)], env={"COLUMNS": "400"})
    assert missing.exit_code == 2 and "does not exist" in missing.output
