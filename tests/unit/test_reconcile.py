"""Coherent totals' core (forecast_orchestrator/reconcile.py): the hierarchy, the reconciliation against
hierarchicalforecast's MinTrace, exact sums at every level, the method chosen by backtest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hierarchicalforecast.methods import BottomUp, MinTrace

from core.contracts import HIERARCHY_LEVELS, RECONCILIATION_METHODS
from forecast_orchestrator import reconcile


def _bottom(items: int = 6, stores: int = 2) -> pd.DataFrame:
    rows = [(f"SKU{i:05d}", f"S{s:03d}", "toys" if i % 2 else "garden") for i in range(items) for s in range(stores)]
    frame = pd.DataFrame(rows, columns=["item_id", "location", "category"])
    frame["unique_id"] = frame["item_id"] + "|" + frame["location"]
    return frame


def _base(tree: reconcile.Hierarchy, periods: int, seed: int) -> np.ndarray:
    """Incoherent base forecasts: the sums of positive bottom values, each node off by up to 20 %."""
    rng = np.random.default_rng(seed)
    truth = tree.summing @ rng.uniform(5, 50, size=(tree.summing.shape[1], periods))
    return truth * rng.uniform(0.8, 1.2, size=truth.shape)


def test_the_levels_are_the_contracts_and_every_node_sums_its_series():
    tree = reconcile.hierarchy(_bottom(), with_location=True)
    assert tuple(reconcile.LEVEL_KEYS) == HIERARCHY_LEVELS and reconcile.METHODS == RECONCILIATION_METHODS
    assert tree.levels == ["total", "category", "store", "item", "item_store"]
    counts = tree.nodes["level"].value_counts()
    assert (counts["total"], counts["category"], counts["store"], counts["item"], counts["item_store"]) == (
        1,
        2,
        2,
        6,
        12,
    )
    sizes = np.asarray(tree.summing.sum(axis=1)).ravel()
    assert sizes[tree.rows("total")].tolist() == [12] and set(sizes[tree.rows("item_store")]) == {1}
    item = tree.nodes[tree.nodes["node_id"] == "item=SKU00001"].iloc[0]
    assert item["category"] == "toys" and item["location"] is None
    without = reconcile.hierarchy(_bottom().assign(unique_id=lambda f: f["item_id"] + f["location"]), False)
    assert without.levels == ["total", "category", "item"]


@pytest.mark.parametrize("method", ["ols", "wls_struct"])
def test_mintrace_matches_hierarchicalforecast(method):
    tree = reconcile.hierarchy(_bottom(), with_location=True)
    base = _base(tree, periods=5, seed=3)
    ours = tree.summing @ reconcile.reconcile_bottom(base, tree, method)
    theirs = MinTrace(method=method).fit_predict(S=tree.summing.toarray(), y_hat=base)["mean"]
    np.testing.assert_allclose(ours, theirs, rtol=1e-8)
    bottom_up = BottomUp().fit_predict(S=tree.summing.toarray(), y_hat=base)["mean"]
    np.testing.assert_allclose(reconcile.coherent(base, tree, "bottom_up"), bottom_up)


def test_wls_var_and_mint_shrink_match_hierarchicalforecast_on_the_same_errors():
    """hierarchicalforecast takes in-sample actuals and fits; the errors are their difference."""
    tree = reconcile.hierarchy(_bottom(), with_location=True)
    base = _base(tree, 4, seed=5)
    fitted = _base(tree, 30, seed=6)
    actual = fitted * np.random.default_rng(6).normal(1, 0.1, size=fitted.shape)
    for method in ("wls_var", "mint_shrink"):
        ours = reconcile.reconcile_bottom(base, tree, method, actual - fitted)
        theirs = MinTrace(method=method).fit_predict(
            S=tree.summing.toarray(), y_hat=base, y_insample=actual, y_hat_insample=fitted
        )["mean"]
        np.testing.assert_allclose(tree.summing @ ours, theirs, rtol=1e-6)
        with pytest.raises(ValueError, match=f"{method} needs the nodes' backtest errors"):
            reconcile.coherent(base, tree, method)
    with pytest.raises(ValueError, match="unknown reconciliation method 'middle_out'"):
        reconcile.coherent(base, tree, "middle_out")


@pytest.mark.parametrize("method", RECONCILIATION_METHODS)
def test_every_level_adds_up_exactly_and_nothing_is_negative(method):
    tree = reconcile.hierarchy(_bottom(), with_location=True)
    base = _base(tree, 6, seed=7)
    base[tree.rows("item_store")[:3]] = 0.0  # series that stopped selling: reconciliation may push them below 0
    errors = np.random.default_rng(8).normal(0, 3, size=(len(tree.nodes), 20))
    got = reconcile.coherent(base, tree, method, errors)
    assert (got >= 0).all()
    bottom = got[tree.bottom_rows()]
    for level in tree.levels:
        members = tree.summing[tree.rows(level)]
        np.testing.assert_allclose(got[tree.rows(level)], members @ bottom, rtol=1e-12)
    np.testing.assert_allclose(got[tree.rows("total")][0], got[tree.rows("category")].sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(got[tree.rows("total")][0], got[tree.rows("store")].sum(axis=0), rtol=1e-12)


def test_the_expected_demand_of_a_forecast_comes_from_its_quantiles():
    frame = pd.DataFrame({"p10": [8.0, 0.0, 5.0], "p50": [10.0, 1.0, 5.0], "p90": [12.0, 6.0, 5.0]})
    got = reconcile.expected_demand(frame)
    assert got[0] == pytest.approx(10.0)  # symmetric: the median
    # Right-skewed, well above the median: 0.2 + 1.4 + 0.6625 (the lower tail stops at zero).
    assert got[1] == pytest.approx(0.4 * (0 + 1) / 2 + 0.4 * (1 + 6) / 2 + 0.1 * (6 + 7.25) / 2)
    assert got[2] == pytest.approx(5.0)


def _long(matrix: np.ndarray, ids, periods, cutoff) -> pd.DataFrame:
    rows = [
        (uid, d, cutoff, v)
        for uid, values in zip(ids, matrix, strict=True)
        for d, v in zip(periods, values, strict=True)
    ]
    return pd.DataFrame(rows, columns=["unique_id", "ds", "cutoff", "p50"])


def test_the_method_is_chosen_on_the_backtest_windows():
    """Aggregates forecast well, the bottom is biased low: reconciling towards the aggregates must beat bottom-up at
    the top and stay near the bottom's base."""
    tree = reconcile.hierarchy(_bottom(), with_location=True)
    rng = np.random.default_rng(11)
    bottoms, aggregates = [], []
    upper = tree.nodes["level"].to_numpy() != "item_store"
    for window in range(3):
        periods = pd.date_range("2024-01-01", periods=4, freq="W-MON") + pd.Timedelta(weeks=4 * window)
        cutoff = periods[0] - pd.Timedelta(weeks=1)
        actual_bottom = rng.uniform(5, 50, size=(12, 4))
        actual = tree.summing @ actual_bottom
        bottom = _long(actual_bottom * 0.7, tree.bottom_ids, periods, cutoff)
        bottom["y"] = _long(actual_bottom, tree.bottom_ids, periods, cutoff)["p50"]
        node_ids = tree.nodes["node_id"][upper]
        aggregate = _long(actual[upper] * rng.uniform(0.97, 1.03, size=actual[upper].shape), node_ids, periods, cutoff)
        aggregate["y"] = _long(actual[upper], node_ids, periods, cutoff)["p50"]
        bottoms.append(bottom)
        aggregates.append(aggregate)
    method, table = reconcile.choose_method(pd.concat(bottoms), pd.concat(aggregates), tree)
    assert method != "bottom_up"
    assert set(table["level"]) == set(tree.levels) and set(table["method"]) == set(RECONCILIATION_METHODS)
    chosen = table[table["chosen"]].set_index("level")
    assert (chosen.loc[["total", "category", "store", "item"], "ratio"] < 1).all()
    assert table.loc[table["method"] == "bottom_up"].set_index("level").loc["item_store", "ratio"] == 1.0
    with pytest.raises(ValueError, match="share no window"):
        reconcile.choose_method(
            pd.concat(bottoms), pd.concat(aggregates).assign(cutoff=pd.Timestamp("2020-01-01")), tree
        )
