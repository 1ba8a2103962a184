"""Coherent totals: forecasts of the company, each category, each store and each item that add up.

The series the ensemble forecasts are the bottom of a grouped hierarchy: items (or items at stores) sum to
categories, stores and the total. Each aggregate gets its own base forecast (the ensemble trained on the summed
series, where the calendar and the trend are far clearer than in one item), and the base forecasts of every level
are reconciled into one coherent set: the bottom forecasts b = P y_hat, every level S b. P is bottom-up or a
MinTrace projection (Wickramasuriya, Athanasopoulos and Hyndman, 2019) with the error covariance taken as the
identity (`ols`), the number of series under a node (`wls_struct`), each node's backtest error variance (`wls_var`)
or the backtest errors' covariance shrunk towards its diagonal (`mint_shrink`, Schafer and Strimmer's estimator as
in R's hts and hierarchicalforecast; dense, so only up to MAX_DENSE_NODES nodes). The method is chosen per run by
backtest: the one whose worst level, relative to that level's base forecasts, is best. Reconciled bottom forecasts
below zero are set to zero before the levels are summed, so every level stays an exact sum and no forecast is
negative.

What adds up is the expected demand (`mean`). Medians do not add up: the median of a sum of right-skewed item series
is well above the sum of their medians (bottom-up of the medians fell 4-18 % short of the total on generator data,
docs/decisions.md). Each forecast's expected demand is the integral of its quantile function, taken piecewise linear
through the quantiles and extended linearly to 0 and 1 (for p10, p50, p90: 0.3125 p10 + 0.375 p50 + 0.3125 p90,
close to Swanson's 0.3/0.4/0.3 rule). Every quantile keeps its base forecast's distance from the base mean, at the
reconciled mean, so each level keeps intervals calibrated for that level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from core.contracts import RECONCILIATION_METHODS
from forecast_orchestrator.metrics import quantile_columns

# level -> the key columns naming its nodes, top to bottom. The bottom is `item_store` with a location, else `item`.
LEVEL_KEYS: dict[str, tuple[str, ...]] = {
    "total": (),
    "category": ("category",),
    "store": ("location",),
    "item": ("item_id",),
    "item_store": ("item_id", "location"),
}  # the keys of core.contracts.HIERARCHY_LEVELS, in its order
METHODS = RECONCILIATION_METHODS  # ties go to the earlier (simpler) method
NODE_COLUMNS = ("level", "item_id", "location", "category")
MAX_DENSE_NODES = 4000  # mint_shrink's covariance: 4000 x 4000 doubles are 128 MB


def expected_demand(frame: pd.DataFrame) -> np.ndarray:
    """The mean of each row's forecast distribution from its quantiles (pNN columns): the integral of the quantile
    function, piecewise linear through them and extended linearly to 0 and 1 (never below zero)."""
    columns = quantile_columns(frame)
    levels = np.array([int(c[1:]) / 100 for c in columns])
    values = frame[columns].to_numpy(float)
    if len(columns) < 2:
        return values[:, 0] if len(columns) else np.zeros(len(frame))
    low = values[:, 0] - (values[:, 1] - values[:, 0]) * levels[0] / (levels[1] - levels[0])
    high = values[:, -1] + (values[:, -1] - values[:, -2]) * (1 - levels[-1]) / (levels[-1] - levels[-2])
    knots = np.concatenate([[0.0], levels, [1.0]])
    curve = np.column_stack([np.maximum(low, 0.0), values, high])
    return ((curve[:, 1:] + curve[:, :-1]) / 2 * np.diff(knots)).sum(axis=1)


@dataclass(frozen=True)
class Hierarchy:
    """The nodes of every level (S's rows) over the bottom series (S's columns)."""

    bottom_ids: np.ndarray  # unique_id of each bottom series, S's column order
    nodes: pd.DataFrame  # node_id, level, item_id, location, category: S's row order (None where a key is not set)
    summing: sparse.csr_matrix  # nodes x bottom: 1 where the bottom series is part of the node

    @property
    def bottom_level(self) -> str:
        return str(self.nodes["level"].iloc[-1])

    @property
    def levels(self) -> list[str]:
        return list(dict.fromkeys(self.nodes["level"]))

    def rows(self, level: str) -> np.ndarray:
        return np.flatnonzero(self.nodes["level"].to_numpy() == level)

    def bottom_rows(self) -> np.ndarray:
        return self.rows(self.bottom_level)


def node_id(level: str, values: tuple[str, ...]) -> str:
    return level if not values else f"{level}={'|'.join(values)}"


def hierarchy(bottom: pd.DataFrame, with_location: bool) -> Hierarchy:
    """`bottom`: one row per bottom series, unique_id, item_id, [location], category (missing -> 'unknown')."""
    bottom = bottom.sort_values("unique_id").reset_index(drop=True)
    bottom = bottom.assign(category=bottom["category"].fillna("unknown").astype(str))
    levels = [level for level, keys in LEVEL_KEYS.items() if with_location or "location" not in keys]
    node_rows: list[dict[str, str | None]] = []
    triplets: list[tuple[int, int]] = []
    for level in levels:
        keys = list(LEVEL_KEYS[level])
        groups = bottom.groupby(keys, sort=True).indices if keys else {(): np.arange(len(bottom))}
        for values, members in groups.items():
            values = values if isinstance(values, tuple) else (values,)
            named = dict(zip(keys, map(str, values), strict=True))
            if level == "item":  # an item's category names its node too
                named["category"] = str(bottom["category"].iloc[members[0]])
            row = len(node_rows)
            node_rows.append({"node_id": node_id(level, tuple(map(str, values))), "level": level,
                              **{c: named.get(c) for c in NODE_COLUMNS[1:]}})  # fmt: skip
            triplets += [(row, int(col)) for col in members]
    r, c = np.array(triplets).T
    summing = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(node_rows), len(bottom)))
    return Hierarchy(bottom["unique_id"].to_numpy(), pd.DataFrame(node_rows), summing)


def aggregate(frame: pd.DataFrame, tree: Hierarchy, value: str, periods) -> np.ndarray:
    """Bottom values of one column, long (unique_id, ds, value), summed to every node: nodes x periods."""
    wide = frame.pivot_table(index="unique_id", columns="ds", values=value, aggfunc="sum")
    wide = wide.reindex(index=tree.bottom_ids, columns=periods).fillna(0.0)
    return np.asarray(tree.summing @ wide.to_numpy(float))


def _own(aggregates: pd.DataFrame, tree: Hierarchy, value: str, periods) -> np.ndarray:
    """The aggregates' own values (unique_id = node_id) in the nodes' order, NaN where a node has none."""
    own = aggregates.pivot_table(index="unique_id", columns="ds", values=value, aggfunc="first")
    own = own.reindex(index=tree.nodes["node_id"], columns=periods).to_numpy(float)
    own[tree.bottom_rows()] = np.nan  # the bottom's values are its own
    return own


def _floored(values: np.ndarray) -> np.ndarray:
    positive = values[values > 0]
    return np.maximum(values, 1e-6 * (positive.mean() if len(positive) else 1.0))


def _weights(tree: Hierarchy, method: str, errors: np.ndarray | None) -> np.ndarray:
    if method == "ols":
        return np.ones(len(tree.nodes))
    if method == "wls_struct":
        return np.asarray(tree.summing.sum(axis=1)).ravel()
    if errors is None:
        raise ValueError(f"{method} needs the nodes' backtest errors")
    return _floored((errors**2).mean(axis=1))


def shrunk_covariance(errors: np.ndarray) -> np.ndarray:
    """Schafer and Strimmer's (2005) shrinkage of the errors' covariance (nodes x samples) towards its diagonal, the
    intensity estimated from the errors themselves: the estimator hierarchicalforecast's mint_shrink uses."""
    x = errors.T
    n = x.shape[0]
    covariance = np.atleast_2d(np.cov(errors))
    std = np.sqrt(_floored(np.diag(covariance).copy()))
    xs = (x - x.mean(axis=0)) / std
    mean_products = xs.T @ xs / n
    correlation = mean_products * n / (n - 1)
    spread = (xs**2).T @ (xs**2) - n * mean_products**2  # sum over samples of (w_kij - mean w_ij)^2
    variance = spread * n / (n - 1) ** 3
    off = ~np.eye(len(covariance), dtype=bool)
    intensity = float(np.clip(variance[off].sum() / max((correlation[off] ** 2).sum(), 1e-300), 0.0, 1.0))
    shrunk = (1 - intensity) * covariance
    np.fill_diagonal(shrunk, np.diag(covariance))
    return shrunk + np.eye(len(shrunk)) * 2e-8  # hierarchicalforecast's ridge against a singular estimate


def _mint_shrink(base: np.ndarray, tree: Hierarchy, errors: np.ndarray) -> np.ndarray:
    """y~ = y^ - W U (U'W U)^-1 U'y^ with U' = [I, -S_aggregates] (the nodes above the bottom come first): a system
    of one equation per aggregate node, not per series."""
    upper = np.flatnonzero(tree.nodes["level"].to_numpy() != tree.bottom_level)
    bottom = tree.bottom_rows()
    ut = np.zeros((len(upper), len(tree.nodes)))
    ut[np.arange(len(upper)), upper] = 1.0
    ut[:, bottom] = -tree.summing[upper].toarray()
    utw = ut @ shrunk_covariance(errors)
    adjusted = base - utw.T @ np.linalg.solve(utw @ ut.T, ut @ base)
    return adjusted[bottom]


def _solve(matvec, rhs: np.ndarray, diagonal: np.ndarray, tolerance: float = 1e-10, limit: int = 1000) -> np.ndarray:
    """Conjugate gradients on every column of `rhs` at once (A symmetric positive definite, A x = matvec(x)),
    Jacobi-preconditioned. S'W^-1 S is dense (the total touches every pair of series); its products are sparse."""
    x = rhs / diagonal[:, None]
    r = rhs - matvec(x)
    z = r / diagonal[:, None]
    p = z.copy()
    rz = (r * z).sum(axis=0)
    scale = np.maximum(np.linalg.norm(rhs, axis=0), 1e-300)
    for _ in range(limit):
        if (np.linalg.norm(r, axis=0) <= tolerance * scale).all():
            break
        ap = matvec(p)
        alpha = rz / np.where((p * ap).sum(axis=0) == 0, 1.0, (p * ap).sum(axis=0))
        x += alpha * p
        r -= alpha * ap
        z = r / diagonal[:, None]
        rz_next = (r * z).sum(axis=0)
        p = z + (rz_next / np.where(rz == 0, 1.0, rz)) * p
        rz = rz_next
    return x


def reconcile_bottom(base: np.ndarray, tree: Hierarchy, method: str, errors: np.ndarray | None = None) -> np.ndarray:
    """Base forecasts of every node (nodes x periods) -> the reconciled bottom forecasts (bottom x periods).
    `errors`: the nodes' backtest errors (nodes x samples), for wls_var and mint_shrink."""
    if method == "bottom_up":
        return base[tree.bottom_rows()].copy()
    if method not in METHODS:
        raise ValueError(f"unknown reconciliation method {method!r}; choose from {', '.join(METHODS)}")
    if method == "mint_shrink":
        if errors is None:
            raise ValueError("mint_shrink needs the nodes' backtest errors")
        return _mint_shrink(base, tree, errors)
    inverse = 1.0 / _weights(tree, method, errors)
    s, st = tree.summing, tree.summing.T.tocsr()
    diagonal = np.asarray(st @ inverse).ravel()  # S'W^-1 S's diagonal (S holds ones)

    def matvec(x: np.ndarray) -> np.ndarray:
        return st @ (inverse[:, None] * (s @ x))

    return _solve(matvec, st @ (inverse[:, None] * base), diagonal)


def coherent(base: np.ndarray, tree: Hierarchy, method: str, errors: np.ndarray | None = None) -> np.ndarray:
    """Every node's reconciled forecast: the sums of the reconciled bottom, negatives set to zero first."""
    return np.asarray(tree.summing @ np.maximum(reconcile_bottom(base, tree, method, errors), 0.0))


# -- the base forecasts of every node, from the bottom's and the aggregates' long frames ----------------------------
def base_matrix(bottom: pd.DataFrame, aggregates: pd.DataFrame, tree: Hierarchy, column: str) -> np.ndarray:
    """nodes x periods of one column (`expected`: expected_demand): the aggregates' own forecasts, the bottom's for
    the bottom nodes; a node without a forecast of its own gets the sum of its bottom forecasts."""
    if column == "expected":
        bottom, aggregates = (f.assign(expected=expected_demand(f)) for f in (bottom, aggregates))
    periods = sorted(bottom["ds"].unique())
    own = _own(aggregates, tree, column, periods)
    return np.where(np.isnan(own), aggregate(bottom, tree, column, periods), own)


@dataclass(frozen=True)
class Window:
    """One backtest window, nodes x periods: base expected demand and median, and the actual demand."""

    expected: np.ndarray
    median: np.ndarray
    actual: np.ndarray

    @property
    def errors(self) -> np.ndarray:
        return self.actual - self.expected

    def median_after(self, method: str, tree: Hierarchy, errors: np.ndarray | None) -> np.ndarray:
        """The median each node gets from `method` (the base median itself for `base`)."""
        if method == "base":
            return self.median
        return np.maximum(coherent(self.expected, tree, method, errors) + self.median - self.expected, 0.0)


def _windows(bottom_backtest: pd.DataFrame, aggregate_backtest: pd.DataFrame, tree: Hierarchy) -> list[Window]:
    """The backtest windows the two share. An aggregate's actual is its own history (every series sold then,
    backtested or not); a bottom series without a backtest forecasts zero."""
    out = []
    for cutoff in sorted(set(bottom_backtest["cutoff"]) & set(aggregate_backtest["cutoff"])):
        b = bottom_backtest[bottom_backtest["cutoff"] == cutoff]
        a = aggregate_backtest[aggregate_backtest["cutoff"] == cutoff]
        periods = sorted(b["ds"].unique())
        own = _own(a, tree, "y", periods)
        actual = np.where(np.isnan(own), aggregate(b, tree, "y", periods), own)
        out.append(Window(base_matrix(b, a, tree, "expected"), base_matrix(b, a, tree, "p50"), actual))
    if not out:
        raise ValueError("the bottom and aggregate backtests share no window")
    return out


def node_errors(bottom_backtest: pd.DataFrame, aggregate_backtest: pd.DataFrame, tree: Hierarchy) -> np.ndarray:
    """Every node's backtest errors of its base expected demand, nodes x (windows x periods): wls_var's and
    mint_shrink's estimate on the horizon."""
    return np.hstack([w.errors for w in _windows(bottom_backtest, aggregate_backtest, tree)])


def candidate_methods(tree: Hierarchy) -> tuple[str, ...]:
    """The methods a hierarchy of this size can run: mint_shrink's covariance is dense (nodes x nodes)."""
    return tuple(m for m in METHODS if m != "mint_shrink" or len(tree.nodes) <= MAX_DENSE_NODES)


def choose_method(
    bottom_backtest: pd.DataFrame, aggregate_backtest: pd.DataFrame, tree: Hierarchy
) -> tuple[str, pd.DataFrame]:
    """The method whose worst level ratio (the WAPE of its medians over the level's base WAPE, pooled over the
    backtest windows) is lowest, and the table of every level and method: level, method, wape, base_wape, ratio,
    windows, chosen. The errors wls_var and mint_shrink weigh by for a window come from the other windows (from the
    window itself when it is the only one)."""
    windows = _windows(bottom_backtest, aggregate_backtest, tree)
    methods = candidate_methods(tree)
    levels = tree.levels
    totals = {(method, level): np.zeros(2) for method in ("base", *methods) for level in levels}
    for k, window in enumerate(windows):
        errors = np.hstack([w.errors for j, w in enumerate(windows) if j != k] or [window.errors])
        for method in ("base", *methods):
            median = window.median_after(method, tree, errors)
            for level in levels:
                rows = tree.rows(level)
                actual = window.actual[rows]
                totals[(method, level)] += (np.abs(actual - median[rows]).sum(), np.abs(actual).sum())
    table = []
    for method in methods:
        for level in levels:
            wape, base_wape = _share(*totals[(method, level)]), _share(*totals[("base", level)])
            table.append({"level": level, "method": method, "wape": wape, "base_wape": base_wape,
                          "ratio": _share(wape, base_wape), "windows": len(windows)})  # fmt: skip
    frame = pd.DataFrame(table)
    worst = frame.groupby("method", sort=False)["ratio"].max().reindex(list(methods))
    chosen = str(worst.fillna(np.inf).idxmin())
    frame["chosen"] = frame["method"] == chosen
    return chosen, frame


def _share(numerator: float, denominator: float) -> float:
    if denominator > 0:
        return float(numerator / denominator)
    return 1.0 if numerator == 0 else float("nan")


def coherent_forecast(
    bottom: pd.DataFrame,
    aggregates: pd.DataFrame,
    tree: Hierarchy,
    method: str,
    errors: np.ndarray | None = None,
) -> pd.DataFrame:
    """The horizon's coherent forecasts, long: node columns, ds, the quantiles, mean (what adds up), base_p50,
    method."""
    quantiles = quantile_columns(bottom)
    periods = sorted(bottom["ds"].unique())
    base = {c: base_matrix(bottom, aggregates, tree, c) for c in [*quantiles, "expected"]}
    mean = coherent(base["expected"], tree, method, errors)
    n_nodes, n_periods = len(tree.nodes), len(periods)
    out = tree.nodes.loc[np.repeat(np.arange(n_nodes), n_periods)].reset_index(drop=True)
    out["ds"] = np.tile(periods, n_nodes)
    for column in quantiles:  # the base forecast's distance from its mean, at the reconciled mean
        out[column] = np.maximum(mean + base[column] - base["expected"], 0.0).ravel()
    out["mean"] = mean.ravel()
    out["base_p50"] = base["p50"].ravel()
    out["method"] = method
    return out
