"""The outlier detector without Flink: generator data scored against its labels, and hand-made cases."""

from __future__ import annotations

import pytest

from core.contracts import OUTLIER as OUTLIER_CONTRACT
from core.contracts import OUTLIER_CODES
from flink_jobs.accuracy import promo_sale_ids, score, split_lines
from flink_jobs.detector import CLEAN, DUPLICATE, OUTLIER, REFERENCE, Detector, ItemState
from streaming.events import validate_event
from streaming.generator import GeneratorConfig, generate
from streaming.records import encode_event

CONFIG = GeneratorConfig(seed=7, stores=3, items=40, days=364, anomaly_rate=0.01)


@pytest.fixture(scope="module")
def data():
    return generate(CONFIG)


@pytest.fixture(scope="module")
def split(data):
    return split_lines(encode_event(e) for e in data.events)


def test_generator_anomalies_are_found_and_promotions_left_alone(data, split):
    accuracy = score(data.labels, [o["event_id"] for o in split.outliers], promo_sale_ids(data.events))
    assert accuracy.precision >= 0.9, accuracy
    assert accuracy.recall >= 0.9, accuracy
    assert accuracy.promo_sales > 100
    assert accuracy.promo_false_positive_rate <= 0.01, accuracy


def test_every_event_is_accounted_for_and_duplicates_dropped(data, split):
    assert sum(split.counts.values()) == len(data.events)
    assert split.duplicates == sum(lab.expected == "duplicate" for lab in data.labels)
    clean_ids = {s["event_id"] for s in split.clean}
    assert all(lab.event_id in clean_ids for lab in data.labels if lab.kind == "cancel_reissue")


def test_outlier_records_follow_the_contract(split):
    for record in split.outliers[:50]:
        assert set(record) == set(OUTLIER_CONTRACT.names)
        assert 50 <= record["outlier_score"] <= 100
        assert record["outlier_reason"].startswith(OUTLIER_CODES[record["outlier_code"]])


# --- hand cases: one item's story ------------------------------------------------------------------
def sale(n: int, qty: float = 2, price: float = 10.0, day: int = 1, order: str | None = None, **extra) -> dict:
    return validate_event(
        {
            "event_type": "sale",
            "schema_version": 1,
            "event_id": f"e{n}",
            "event_time": f"2024-03-{day:02d}T10:{n % 60:02d}:00Z",
            "store_id": "S001",
            "item_id": "SKU1",
            "quantity": qty,
            "unit_price": price,
            "currency": "EUR",
            "channel": "store",
            "order_id": order or f"O{n}",
            **extra,
        }
    )


def campaign(action: str, pct: float = 0.3, store: str | None = None) -> dict:
    return validate_event(
        {
            "event_type": "campaign",
            "schema_version": 1,
            "event_id": f"c-{action}",
            "event_time": "2024-03-05T00:00:00Z" if action == "start" else "2024-03-12T00:00:00Z",
            "promotion_id": "P1",
            "item_id": "SKU1",
            "store_id": store,
            "action": action,
            "discount_pct": pct,
            "starts_at": "2024-03-05T00:00:00Z",
            "ends_at": "2024-03-12T00:00:00Z",
        }
    )


@pytest.fixture
def warm():
    """20 lines of 1-3 units at 10.00 over five selling days (4 a day: a typical day sells 8 units)."""
    detector, state = Detector(), ItemState()
    for n in range(20):
        assert detector.observe(state, sale(n, qty=1 + n % 3, day=1 + n // 4)).route == CLEAN
    return detector, state


def test_warm_up_judges_no_line_by_the_first_ones_seen():
    detector, state = Detector(), ItemState()
    for n, qty in enumerate((30, 60, 900)):  # no history: any size may be normal for this item
        assert detector.observe(state, sale(n, qty=qty)).route == CLEAN
    sample = detector.observe(state, sale(3, qty=2, price=0.0)).record
    assert sample["outlier_code"] == "zero_price" and "warm-up" in sample["outlier_reason"]


@pytest.mark.parametrize("seed", [11, 23])
def test_other_seeds_and_a_higher_anomaly_rate(seed):
    data = generate(GeneratorConfig(seed=seed, stores=3, items=40, days=200, anomaly_rate=0.03))
    split = split_lines(encode_event(e) for e in data.events)
    accuracy = score(data.labels, [o["event_id"] for o in split.outliers], promo_sale_ids(data.events))
    assert accuracy.precision >= 0.9 and accuracy.recall >= 0.9, accuracy
    assert accuracy.promo_false_positive_rate <= 0.01, accuracy
    assert split.duplicates == sum(lab.expected == "duplicate" for lab in data.labels)


def test_a_line_far_beyond_the_item_at_the_usual_price_is_a_spike_but_a_discounted_one_a_deal(warm):
    detector, state = warm
    spike = detector.observe(state, sale(30, qty=80, day=6)).record
    assert spike["outlier_code"] == "quantity_spike" and spike["baseline_quantity"] == 3
    assert spike["demand_units"] == 3  # the usual line is still demand, the rest is not
    assert "26.7x the item's 90th-percentile line 3" in spike["outlier_reason"]
    assert "10.0x a typical day's 8 units" in spike["outlier_reason"]
    assert detector.observe(state, sale(31, qty=80, price=8.0, day=6)).route == CLEAN  # quantity discount


def test_a_known_customer_far_beyond_their_habit_is_a_customer_spike(warm):
    detector, state = warm
    for n in (40, 41):
        assert detector.observe(state, sale(n, qty=2, day=6, customer_id="C1")).route == CLEAN
    typo = detector.observe(state, sale(42, qty=20, day=6, customer_id="C1")).record
    assert typo["outlier_code"] == "customer_spike" and "10.0x this customer's usual 2" in typo["outlier_reason"]
    assert typo["demand_units"] == typo["baseline_quantity"] == 3
    assert detector.observe(state, sale(43, qty=20, day=6, customer_id="C2")).route == CLEAN  # a new customer


def test_severity_ranks_outliers_by_how_far_beyond_they_are(warm):
    detector, state = warm
    mild = detector.observe(state, sale(50, qty=1, price=3.0, day=6)).record
    wild = detector.observe(state, sale(51, qty=1, price=0.1, day=6)).record
    assert mild["outlier_code"] == wild["outlier_code"] == "price_deviation"
    assert 50 <= mild["outlier_score"] < wild["outlier_score"] < 100


def test_price_errors_and_prices_that_are_no_demand(warm):
    detector, state = warm
    price = detector.observe(state, sale(31, price=1.0, day=6)).record
    assert price["outlier_code"] == "price_deviation" and price["baseline_price"] == 10.0
    assert price["demand_units"] == price["quantity"]  # the units were sold, the price is what is off
    sample = detector.observe(state, sale(32, price=0.0, day=6)).record
    assert sample["outlier_code"] == "zero_price" and sample["demand_units"] == 0
    writeoff = detector.observe(state, sale(33, qty=-5, price=0.0, day=6, order="WO-1")).record
    assert writeoff["outlier_code"] == "stock_writeoff" and writeoff["demand_units"] == 0
    assert detector.observe(state, sale(34, price=250_000.0, day=6)).record["outlier_code"] == "price_limit"


def test_return_and_cancellation(warm):
    detector, state = warm
    assert detector.observe(state, sale(40, qty=-2, order="RET-1", day=6)).route == CLEAN  # ordinary return
    assert detector.observe(state, sale(41, qty=-80, order="RET-2", day=6)).record["outlier_code"] == "return_quantity"
    detector.observe(state, sale(42, qty=3, order="ORD-9", day=6))
    assert detector.observe(state, sale(43, qty=-2, order="ORD-9", day=6)).route == CLEAN  # cancellation
    too_much = detector.observe(state, sale(44, qty=-450, order="ORD-9", day=6)).record
    assert too_much["outlier_code"] == "cancellation_exceeds_order" and "1 of 3 left" in too_much["outlier_reason"]
    assert detector.observe(state, sale(45, qty=-1, order="ORD-9", day=6)).route == CLEAN  # what is left


def test_campaign_lift_and_discount_are_not_outliers(warm):
    detector, state = warm
    assert detector.observe(state, campaign("start")).route == REFERENCE
    assert detector.observe(state, sale(50, qty=25, price=7.0, day=6)).route == CLEAN  # 12x lift, 30 % off
    assert detector.observe(state, sale(51, qty=400, price=7.0, day=6)).route == OUTLIER  # still not anything goes
    assert detector.observe(state, campaign("end")).route == REFERENCE
    assert detector.observe(state, sale(52, qty=100, day=13)).route == OUTLIER


def test_campaign_of_another_store_does_not_apply(warm):
    detector, state = warm
    detector.observe(state, campaign("start", store="S002"))
    assert detector.observe(state, sale(60, qty=100, day=6)).route == OUTLIER


def test_duplicate_event_id_is_dropped(warm):
    detector, state = warm
    assert detector.observe(state, sale(70, day=6)).route == CLEAN
    assert detector.observe(state, sale(70, day=6)).route == DUPLICATE
