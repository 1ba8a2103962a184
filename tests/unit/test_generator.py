"""The synthetic sales generator, checked like a user of the data set would check it."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import date

import numpy as np
import pytest
from typer.testing import CliRunner

from demand.cli import app
from streaming.events import validate_event
from streaming.generator import EXPECTED, GeneratorConfig, generate, read_dataset, write_dataset


@pytest.fixture(scope="module")
def data():
    return generate(GeneratorConfig())


@pytest.fixture(scope="module")
def sales(data):
    return [e for e in data.events if e["event_type"] == "sale"]


@pytest.fixture(scope="module")
def labelled_lines(data):
    return {label.line for label in data.labels}


def _clean_sales(data, labelled_lines):
    """Sale lines that are neither injected anomalies nor returns/cancellations."""
    return [
        e
        for k, e in enumerate(data.events)
        if e["event_type"] == "sale" and k not in labelled_lines and e["quantity"] > 0
    ]


def test_every_event_honours_the_contract(data):
    assert {e["event_type"] for e in data.events} == {"sale", "product", "campaign"}
    for event in data.events:
        assert validate_event(event) == event


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    config = GeneratorConfig(stores=2, items=10, days=60)
    a, _ = write_dataset(generate(config), tmp_path / "a")
    b, _ = write_dataset(generate(config), tmp_path / "b")
    c, _ = write_dataset(generate(GeneratorConfig(stores=2, items=10, days=60, seed=8)), tmp_path / "c")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_written_dataset_reads_back_the_same(data, tmp_path):
    write_dataset(data, tmp_path)
    again = read_dataset(tmp_path)
    assert again.events == data.events
    assert again.labels == data.labels
    assert len((tmp_path / "events.jsonl").read_bytes().splitlines()) == len(data.events)


def test_anomalies_come_at_the_configured_rate_with_expected_outcomes(data, sales):
    rate = len(data.labels) / len(sales)
    assert 0.007 < rate < 0.013
    assert set(Counter(label.kind for label in data.labels)) == set(EXPECTED)
    for label in data.labels:
        assert label.expected == EXPECTED[label.kind]
        assert data.events[label.line]["event_id"] == label.event_id
    assert generate(GeneratorConfig(items=10, days=60, anomaly_rate=0.0)).labels == []


def test_outlier_labels_really_stand_out(data, sales, labelled_lines):
    clean = _clean_sales(data, labelled_lines)
    typical_qty = {
        i: np.median([e["quantity"] for e in clean if e["item_id"] == i]) for i in {e["item_id"] for e in clean}
    }
    price = defaultdict(list)
    for e in clean:
        if e["promotion_id"] is None:
            price[e["item_id"]].append(e["unit_price"])
    for label in data.labels:
        event = data.events[label.line]
        assert event["promotion_id"] is None, "anomalies are never injected into promotion-lifted sales"
        if label.kind in ("bulk_order", "quantity_typo"):
            assert event["quantity"] >= 15 * typical_qty[event["item_id"]]
        if label.kind == "price_error":
            usual = np.median(price[event["item_id"]])
            assert event["unit_price"] == 0.01 or not 0.5 * usual < event["unit_price"] < 2 * usual


def test_duplicates_are_exact_resends_of_an_earlier_event(data):
    first_seen = {}
    duplicate_lines = {label.line for label in data.labels if label.kind == "duplicate"}
    assert duplicate_lines
    for k, event in enumerate(data.events):
        if event["event_id"] in first_seen:
            assert k in duplicate_lines, f"event_id {event['event_id']} repeats but is not a labelled duplicate"
            assert data.events[first_seen[event["event_id"]]] == event
        else:
            assert k not in duplicate_lines
            first_seen[event["event_id"]] = k


def test_cancel_reissue_is_sale_cancellation_and_new_order(data):
    reissues = [label for label in data.labels if label.kind == "cancel_reissue"]
    assert reissues
    for label in reissues:
        cancel = data.events[label.line]
        assert cancel["quantity"] < 0
        before = [e for e in data.events[: label.line] if e.get("order_id") == cancel["order_id"]]
        assert any(e["item_id"] == cancel["item_id"] and e["quantity"] == -cancel["quantity"] for e in before)
        reissued = [
            e
            for e in data.events[label.line + 1 : label.line + 400]
            if e["event_type"] == "sale"
            and (e["store_id"], e["item_id"], e["quantity"])
            == (cancel["store_id"], cancel["item_id"], -cancel["quantity"])
            and e["order_id"] != cancel["order_id"]
            and e["event_time"][:10] == cancel["event_time"][:10]
        ]
        assert reissued, f"order {cancel['order_id']} was cancelled but not reissued"


def test_events_are_sorted_by_time_except_late_duplicates(data):
    duplicate_lines = {label.line for label in data.labels if label.kind == "duplicate"}
    times = [e["event_time"] for k, e in enumerate(data.events) if k not in duplicate_lines]
    assert times == sorted(times)


def test_promotions_lift_sales_and_are_announced_first(data, labelled_lines):
    starts = {e["promotion_id"]: e for e in data.events if e["event_type"] == "campaign" and e["action"] == "start"}
    ends = {e["promotion_id"] for e in data.events if e["event_type"] == "campaign" and e["action"] == "end"}
    assert starts and set(starts) == ends
    seen_start = set()
    promo_qty, normal_qty = defaultdict(list), defaultdict(list)
    for k, e in enumerate(data.events):
        if e["event_type"] == "campaign" and e["action"] == "start":
            seen_start.add(e["promotion_id"])
        if e["event_type"] != "sale" or k in labelled_lines or e["quantity"] <= 0:
            continue
        if e["promotion_id"]:
            assert e["promotion_id"] in seen_start
            campaign = starts[e["promotion_id"]]
            assert campaign["starts_at"] <= e["event_time"] < campaign["ends_at"]
            promo_qty[e["item_id"]].append(e["quantity"])
        else:
            normal_qty[e["item_id"]].append(e["quantity"])
    lifts = [np.mean(promo_qty[i]) / np.mean(normal_qty[i]) for i in promo_qty if normal_qty[i]]
    assert np.median(lifts) > 2.0


def test_weekly_seasonality_is_visible(data, labelled_lines):
    by_weekday = Counter()
    for e in _clean_sales(data, labelled_lines):
        by_weekday[date.fromisoformat(e["event_time"][:10]).weekday()] += e["quantity"]
    assert by_weekday[5] > 1.3 * by_weekday[1]  # Saturday vs Tuesday


def test_intermittent_and_regular_items(data, labelled_lines):
    sale_days = defaultdict(set)
    for e in _clean_sales(data, labelled_lines):
        sale_days[(e["store_id"], e["item_id"])].add(e["event_time"][:10])
    share = {key: len(days) / 364 for key, days in sale_days.items()}
    assert sum(s < 0.2 for s in share.values()) >= 5, "some series are mostly zero"
    assert sum(s > 0.5 for s in share.values()) >= 5, "some series sell most days"


def test_returns_and_cancellations_exist(sales):
    negative = [e for e in sales if e["quantity"] < 0]
    assert 0.005 < len(negative) / len(sales) < 0.05
    orders = Counter(e["order_id"] for e in sales if e["quantity"] > 0)
    assert any(e["order_id"].startswith("RET-") for e in negative)
    assert any(e["order_id"] in orders for e in negative)  # cancelled in the same order


def test_item_lifecycle_new_and_discontinued(data):
    listed, discontinued, first_sale, last_sale = {}, {}, {}, {}
    for e in data.events:
        item = e["item_id"]
        if e["event_type"] == "product":
            listed.setdefault(item, e["event_time"])
            assert set(e) >= {"category", "brand", "name", "list_price", "status"}
            if e["status"] == "discontinued":
                discontinued[item] = e["event_time"]
        elif e["event_type"] == "sale":
            assert item in listed, f"{item} sold before its product event"
            first_sale.setdefault(item, e["event_time"])
            last_sale[item] = e["event_time"]
    assert discontinued
    for item, at in discontinued.items():
        assert last_sale[item] < at, f"{item} sold after it was discontinued"
    new_items = [i for i, t in first_sale.items() if t[:10] > "2023-03-01"]
    assert new_items, "some items start selling mid-period"


def test_bad_config_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="anomaly_rate"):
        GeneratorConfig(anomaly_rate=2.0)
    with pytest.raises(ValueError, match="start"):
        GeneratorConfig(start="yesterday")


def test_cli_writes_the_dataset_and_a_summary(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["generate", "--out", str(tmp_path), "--stores", "2", "--items", "8", "--days", "90"])
    assert result.exit_code == 0, result.output
    assert "sale" in result.output and "bulk_order" in result.output
    assert (tmp_path / "events.jsonl").stat().st_size > 0 and (tmp_path / "labels.jsonl").exists()
    result = runner.invoke(app, ["generate", "--out", str(tmp_path), "--items", "8", "--days", "90", "--json"])
    summary = json.loads(result.stdout)
    assert summary["events"] == len((tmp_path / "events.jsonl").read_bytes().splitlines())
    assert set(summary["anomalies_by_kind"]) == set(EXPECTED)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--anomaly-rate", "3"], "anomaly-rate"), (["--start", "2023-02-30"], "start"), (["--stores", "0"], "stores")],
)
def test_cli_bad_option_is_a_clear_error(tmp_path, args, message):
    result = CliRunner().invoke(app, ["generate", "--out", str(tmp_path), *args], env={"COLUMNS": "400"})
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "events.jsonl").exists()
