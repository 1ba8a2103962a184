"""Demand anomalies of every level of one forecast-input build: items (and items at stores), categories, stores and
the company, each with the series one level below that moved it most.

The bottom series are scored first (glue_jobs/demand_anomalies.py). A promotion's or a holiday's lift is taken out of
the bottom's demand before it is summed to the levels above (a period marked explained counts at most its expected
demand), so a promoted item does not make its category an anomaly; days on which nothing sold anywhere are explained
at every level. A discontinued item's periods from its discontinuation on are explained, and the levels above are
judged on the items still listed (a delisting is not a drop of its category). The levels and their nodes are the
coherent totals' hierarchy (forecast_orchestrator/reconcile.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import pandas as pd

from core.contracts import DEMAND_ANOMALY
from forecast_orchestrator import reconcile
from forecast_orchestrator.series import ForecastInputs, split_unique_id
from forecast_orchestrator.totals import bottom_series
from glue_jobs.demand_anomalies import SEASON, AnomalyConfig, episodes, period, score_series

# A node's contributors are its members one level down (the total's are its categories).
CHILD_LEVEL = {"total": "category", "category": "item", "store": "item_store", "item": "item_store"}
TOP_CONTRIBUTORS = 3
# The contract's columns the detection fills (the job adds the run's and the feedback's).
COLUMNS = tuple(n for n in DEMAND_ANOMALY.names if n not in ("run_id", "detected_at", "frequency", "suppressed_by"))


def bottom_frame(inputs: ForecastInputs, discontinued: Mapping[str, pd.Timestamp]) -> pd.DataFrame:
    """The bottom series to score: series (unique_id), ds, y, explained (a promotion, a holiday, a day nothing sold,
    a period from the item's discontinuation on)."""
    target = inputs.target
    frame = pd.DataFrame({"series": target["unique_id"], "ds": target["ds"], "y": target["y"].astype(float)})
    frame["explained"] = (target["promotion_flag"] > 0).to_numpy() | (target["holiday_flag"] > 0).to_numpy()
    frame["explained"] |= frame.groupby("ds")["y"].transform("sum").to_numpy() == 0
    if discontinued:
        items = split_unique_id(frame[["series"]].rename(columns={"series": "unique_id"}), _with_location(inputs))
        frame["explained"] |= delisted(items["item_id"], frame["ds"], discontinued)
    return frame


def delisted(items: pd.Series, days: pd.Series, discontinued: Mapping[str, pd.Timestamp]) -> np.ndarray:
    """Per row, whether its item was discontinued on or before its day."""
    since = items.map(discontinued).to_numpy(dtype="datetime64[ns]")
    return ~np.isnat(since) & (days.to_numpy() >= since)


def _with_location(inputs: ForecastInputs) -> bool:
    return bool(inputs.manifest.get("with_location", False))


def anomaly_id(series: str, direction: str, first: pd.Timestamp) -> str:
    return hashlib.sha1(f"{series}|{direction}|{first:%Y-%m-%d}".encode()).hexdigest()[:16]


def detect(
    inputs: ForecastInputs,
    config: AnomalyConfig,
    since: pd.Timestamp | None = None,
    discontinued: Mapping[str, pd.Timestamp] | None = None,
    channels: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The anomalies (COLUMNS, one row each) of every node that end at or after `since` (all when None).
    `discontinued`: item -> the day it was delisted; `channels`: demand per sales channel and period (channel, ds, y;
    with item_id, per item too), judged as series of their own (level `channel`: the web shop's feed can break while
    the shops sell on), whose contributors are the channel's items."""
    discontinued = discontinued or {}
    bottom = bottom_frame(inputs, discontinued)
    tree = reconcile.hierarchy(bottom_series(inputs), _with_location(inputs))
    rows = tree.bottom_rows()
    node_of = dict(zip(tree.bottom_ids[tree.summing[rows].indices], tree.nodes["node_id"].iloc[rows], strict=True))

    scored_bottom = score_series(bottom, config)
    lifted = scored_bottom["explained"] & scored_bottom["expected"].notna()
    used = np.where(lifted, np.minimum(scored_bottom["y"], scored_bottom["expected"]), scored_bottom["y"])
    scored_bottom = scored_bottom.assign(used=used)

    periods = np.sort(bottom["ds"].unique())
    wide = scored_bottom.pivot_table(index="series", columns="ds", values="used", aggfunc="sum")
    wide = wide.reindex(index=tree.bottom_ids, columns=periods).fillna(0.0)
    listed = ~split_unique_id(wide.index.to_frame(name="unique_id"), _with_location(inputs))["item_id"].isin(
        set(discontinued)
    )
    wide = wide.to_numpy(float) * listed.to_numpy()[:, None]
    upper = np.setdiff1d(np.arange(len(tree.nodes)), rows)
    sums = np.asarray(tree.summing[upper] @ wide)
    explained = bottom.groupby("ds")["explained"].all() | inputs.target.groupby("ds")["holiday_flag"].max().gt(0)
    upper_frame = pd.DataFrame({
        "series": np.repeat(tree.nodes["node_id"].to_numpy()[upper], len(periods)),
        "ds": np.tile(periods, len(upper)),
        "y": sums.ravel(),
        "explained": np.tile(explained.reindex(periods).fillna(False).to_numpy(bool), len(upper)),
    })  # fmt: skip
    scored_upper = score_series(upper_frame, config).assign(used=lambda f: f["y"])
    scored_bottom["series"] = scored_bottom["series"].map(node_of)
    parts = [scored_bottom, scored_upper]
    if channels is not None and not channels.empty:
        by_channel = channels.assign(series="channel=" + channels["channel"].astype(str))
        by_channel = by_channel.groupby(["series", "ds"])["y"].sum().unstack("ds").reindex(columns=periods).fillna(0.0)
        channel_frame = by_channel.stack().rename("y").reset_index()
        channel_frame["explained"] = channel_frame["ds"].map(explained).fillna(False).astype(bool).to_numpy()
        parts.append(score_series(channel_frame, config).assign(used=lambda f: f["y"]))
    scored = pd.concat(parts, ignore_index=True)
    scored["deviation"] = scored["used"] - scored["expected"]
    scored = scored.drop(columns="used")

    found = episodes(scored, config)
    if since is not None:
        found = found[found["end"] >= since]
    described = _describe(found, scored, tree)
    if channels is not None and "item_id" in channels and not described.empty:
        on_channel = described["level"] == "channel"
        described.loc[on_channel, "contributors"] = [
            _channel_contributors(channels, row, config) for row in described[on_channel].itertuples()
        ]
    return described


def _describe(found: pd.DataFrame, scored: pd.DataFrame, tree: reconcile.Hierarchy) -> pd.DataFrame:
    """The anomalies in the contract's words, with their excess units and contributors."""
    if found.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    channels = sorted(s for s in scored["series"].unique() if str(s).startswith("channel="))
    nodes = pd.concat([tree.nodes, pd.DataFrame({"node_id": channels, "level": "channel"})], ignore_index=True)
    nodes["channel"] = nodes["node_id"].where(nodes["level"] == "channel").str.removeprefix("channel=")
    nodes = nodes.set_index("node_id")
    items = tree.nodes[tree.nodes["level"] == "item"].set_index("item_id")["category"]
    nodes["category"] = nodes["category"].fillna(nodes["item_id"].map(items))  # an item at a store: its item's
    # The deviations of the anomalous series and of every series one level below a node (its possible contributors).
    needed = set(found["series"]) | set(tree.nodes.loc[tree.nodes["level"].isin(set(CHILD_LEVEL.values())), "node_id"])
    wanted = scored[scored["series"].isin(needed) & (scored["ds"] >= found["start"].min())]
    by_series = {series: group.set_index("ds")["deviation"] for series, group in wanted.groupby("series")}
    row_of = {node: i for i, node in enumerate(tree.nodes["node_id"])}
    records = []
    for a in found.itertuples():
        node = nodes.loc[a.series]
        excess = float(by_series[a.series].loc[a.start : a.end].sum())
        records.append({
            "anomaly_id": anomaly_id(a.series, a.direction, a.first), "level": node["level"], "series": a.series,
            "item_id": node["item_id"], "location": node["location"], "category": node["category"],
            "channel": node["channel"],
            "direction": a.direction, "start_date": a.start, "end_date": a.end, "peak_date": a.ds,
            "periods": int(a.run), "actual": float(a.y), "expected": float(a.expected), "lower": float(a.lower),
            "upper": float(a.upper), "excess_units": excess, "score": float(a.score), "severity": int(a.severity),
            "contributors": _contributors(tree, row_of.get(a.series, -1), node["level"], by_series, a),
        })  # fmt: skip
    return pd.DataFrame(records, columns=list(COLUMNS))


def _contributors(tree: reconcile.Hierarchy, row: int, level: str, by_series: dict, anomaly) -> str | None:
    """The members one level down whose demand moved most in the anomaly's direction over its periods, with their
    share of the members' movement that way: `item=A +120 (62%); item=B +40 (21%)`."""
    child_rows = tree.rows(CHILD_LEVEL[level]) if level in CHILD_LEVEL else np.array([], dtype=int)
    if not len(child_rows):
        return None
    members = tree.summing[child_rows]
    inside = np.asarray((members @ tree.summing[row].T).todense()).ravel() == np.asarray(members.sum(axis=1)).ravel()
    sign = 1.0 if anomaly.direction == "spike" else -1.0
    moves = []
    for child in tree.nodes["node_id"].to_numpy()[child_rows[inside]]:
        moved = float(by_series[child].loc[anomaly.start : anomaly.end].sum()) if child in by_series else 0.0
        if moved * sign > 0:
            moves.append((child, moved))
    return _listed(moves)


def _listed(moves: list[tuple[str, float]]) -> str | None:
    """`A +120 (62%); B +40 (21%)`: the largest moves, with their share of all the moves listed."""
    total = sum(abs(m) for _, m in moves)
    if not total:
        return None
    moves.sort(key=lambda cm: -abs(cm[1]))
    return "; ".join(f"{child} {moved:+.0f} ({abs(moved) / total:.0%})" for child, moved in moves[:TOP_CONTRIBUTORS])


def _channel_contributors(channels: pd.DataFrame, anomaly, config: AnomalyConfig) -> str | None:
    """The channel's items whose demand over the anomaly's periods moved most in its direction from their level over
    the `history` cycles before it (their mean per period): `item=A -120 (62%)`."""
    step = period(config.frequency)
    before = config.history * SEASON[config.frequency]
    rows = channels[channels["channel"].astype(str) == anomaly.channel]
    start, end = pd.Timestamp(anomaly.start_date), pd.Timestamp(anomaly.end_date)
    during = rows[rows["ds"].between(start, end)].groupby("item_id")["y"].sum()
    earlier = rows[rows["ds"].between(start - before * step, start - step)].groupby("item_id")["y"].sum() / before
    periods = (end - start) // step + 1
    items = during.index.union(earlier.index)
    moved = during.reindex(items, fill_value=0.0) - periods * earlier.reindex(items, fill_value=0.0)
    sign = 1.0 if anomaly.direction == "spike" else -1.0
    return _listed([(f"item={item}", float(m)) for item, m in moved.items() if m * sign > 0])
