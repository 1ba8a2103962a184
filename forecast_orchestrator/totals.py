"""The forecast step's coherent totals (forecast_orchestrator/reconcile.py): base forecasts of every aggregate
from the ensemble trained on the summed series, the reconciliation method chosen on the backtest windows, and
the horizon's coherent forecasts of every level.

An aggregate's related series are its series' mean price, promotion share and discount, and whether any of them had
a holiday. Its metadata names it (item_id = its node id) and its category, so the global model can tell a
category's total from the company's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from forecast_orchestrator import reconcile
from forecast_orchestrator.ensemble import EnsembleModel, Report
from forecast_orchestrator.series import ForecastInputs, split_unique_id

RELATED_AGGREGATES = {"price": "mean", "promotion_flag": "mean", "discount": "mean", "holiday_flag": "max"}


@dataclass(frozen=True)
class CoherentTotals:
    forecast: (
        pd.DataFrame
    )  # reconcile.coherent_forecast: level, item_id, location, category, ds, pNN..., base_p50, method
    accuracy: pd.DataFrame  # reconcile.choose_method's table: level, method, wape, base_wape, ratio, windows, chosen
    method: str


def bottom_series(inputs: ForecastInputs) -> pd.DataFrame:
    """unique_id, item_id, [location], category of every forecast series."""
    with_location = bool(inputs.manifest.get("with_location", False))
    ids = pd.Series(sorted(inputs.target["unique_id"].unique()), name="unique_id")
    out = split_unique_id(ids.to_frame(), with_location)
    out.insert(0, "unique_id", ids.to_numpy())
    meta = inputs.metadata
    categories = meta.drop_duplicates("item_id").set_index("item_id")["category"] if "category" in meta else None
    out["category"] = out["item_id"].map(categories) if categories is not None else None
    return out


def _aggregate_frame(
    frame: pd.DataFrame, bottom: pd.DataFrame, tree: reconcile.Hierarchy, sums: list[str]
) -> pd.DataFrame:
    """A long bottom frame (unique_id, ds, ...) summed (`sums`) or averaged (the related columns) to every node above
    the bottom: unique_id = node_id."""
    joined = frame.merge(bottom.assign(category=bottom["category"].fillna("unknown").astype(str)), on="unique_id")
    rules = {c: "sum" for c in sums} | {c: how for c, how in RELATED_AGGREGATES.items() if c in frame}
    parts = []
    for level in tree.levels[:-1]:
        keys = list(reconcile.LEVEL_KEYS[level])
        grouped = joined.groupby([*keys, "ds"], sort=True).agg(rules).reset_index()
        rows = grouped[keys].astype(str).itertuples(index=False, name=None) if keys else ((),) * len(grouped)
        grouped["unique_id"] = [reconcile.node_id(level, values) for values in rows]
        parts.append(grouped[["unique_id", "ds", *rules]])
    return pd.concat(parts, ignore_index=True)


def aggregate_inputs(inputs: ForecastInputs, tree: reconcile.Hierarchy, bottom: pd.DataFrame) -> ForecastInputs:
    """The forecast inputs of every node above the bottom, one series each (no location: a node is its own id)."""
    nodes = tree.nodes[tree.nodes["level"] != tree.bottom_level]
    metadata = pd.DataFrame({"item_id": nodes["node_id"], "category": nodes["category"].fillna(nodes["level"]),
                             "brand": nodes["level"]})  # fmt: skip
    return ForecastInputs(
        manifest={**inputs.manifest, "with_location": False},
        target=_aggregate_frame(inputs.target, bottom, tree, ["y"]),
        related=_aggregate_frame(inputs.related, bottom, tree, []),
        metadata=metadata.reset_index(drop=True),
    )


def coherent_totals(
    model: EnsembleModel,
    models: tuple[str, ...],
    inputs: ForecastInputs,
    forecast: pd.DataFrame,
    backtest: pd.DataFrame,
    report: Report | None = None,
) -> CoherentTotals:
    """Train the aggregates' ensemble (`models` its candidates), choose the method on the windows it shares with the
    bottom's backtest (`backtest`: unique_id, ds, cutoff, y, pNN), reconcile the horizon (`forecast`)."""
    bottom = bottom_series(inputs)
    tree = reconcile.hierarchy(bottom, bool(inputs.manifest.get("with_location", False)))
    upper = aggregate_inputs(inputs, tree, bottom)
    aggregates = EnsembleModel(replace(model.config, models=models))
    relabel = None if report is None else (lambda p: report({**p, "phase": f"coherent totals: {p['phase']}"}))
    trained = aggregates.train(upper, relabel)
    if trained.backtest is None:
        raise ValueError("the aggregates' training kept no backtest")
    method, accuracy = reconcile.choose_method(backtest, trained.backtest, tree)
    weighed = method in ("wls_var", "mint_shrink")  # the methods that weigh by the backtest errors
    errors = reconcile.node_errors(backtest, trained.backtest, tree) if weighed else None
    base = aggregates.forecast(upper, trained, relabel)
    return CoherentTotals(reconcile.coherent_forecast(forecast, base, tree, method, errors), accuracy, method)
