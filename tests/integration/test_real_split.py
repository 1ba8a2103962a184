"""The outlier split on a month of the real Online Retail data (../shared/data): wholesale orders stay demand, the
anomalies injected into it are found, price-0 lines and write-offs get their own codes, counts add up."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from bench.injection import inject, score_real
from bench.online_retail import DATA
from bench.real_split import previous_rule
from flink_jobs.accuracy import split_lines
from streaming.records import encode_event
from streaming.uci_replay import replay_uci

pytestmark = pytest.mark.skipif(not DATA.exists(), reason="the shared real data set is not on this machine")


@pytest.fixture(scope="module")
def december(tmp_path_factory):
    """December 2009 as the file has it (about 45,000 lines), replayed."""
    frame = pd.read_parquet(DATA)
    path = tmp_path_factory.mktemp("uci") / "december.parquet"
    frame[frame["InvoiceDate"] < "2010-01-01"].to_parquet(path)
    return replay_uci(path)


def test_every_line_ends_once_and_wholesale_orders_stay_demand(december):
    split = split_lines(encode_event(e) for e in december.events)
    assert sum(split.counts.values()) == len(december.events)
    demand = [e for e in december.events if e["event_type"] == "sale" and e["quantity"] > 0 and e["unit_price"] > 0]
    flagged = {o["event_id"] for o in split.outliers}
    share = sum(e["event_id"] in flagged for e in demand) / len(demand)
    units = sum(e["quantity"] for e in demand if e["event_id"] in flagged) / sum(e["quantity"] for e in demand)
    assert share <= 0.03 and units <= 0.08, (share, units)  # the previous detector: 12 % of lines, 54 % of units
    codes = Counter(o["outlier_code"] for o in split.outliers)
    assert codes["zero_price"] > 0 and codes["stock_writeoff"] > 0
    big = max(demand, key=lambda e: e["quantity"])  # the month's largest order line
    assert big["quantity"] >= 1000


def test_injected_anomalies_are_found_better_than_by_the_previous_rule(december):
    injected, labels = inject(december.events, size="realistic", seed=5)
    split = split_lines(encode_event(e) for e in injected)
    ours = score_real(injected, labels, {o["event_id"] for o in split.outliers})
    before = score_real(injected, labels, previous_rule(injected))
    assert ours.recall >= 0.4 and ours.by_kind["bulk_order"] >= 0.5, ours
    assert ours.precision > 2 * before.precision and ours.flagged_units_share < before.flagged_units_share / 5
    assert split.duplicates == sum(lab.expected == "duplicate" for lab in labels)
