"""Benchmark `anomaly_accuracy`: demand anomalies (glue_jobs/demand_anomalies.py) found among labelled injections,
against a rolling z-score on the same series in the same run.

Series: daily demand per item (every store), from the generator (`"dataset": "generator"`, seed 67, the labelled
outliers removed as the split would) and from the real UCI year, per stock code (`"dataset": "online_retail"`, the
best sellers). Into `share` of the series that sell at least MIN_LEVEL a day, one event each, at a random open day
of the last EVAL_DAYS (seeded) whose span has no day explained for that series (a promotion, a delisting), of one
kind, at two sizes (field `"sizes"`):
- `bench`: a spike adds to one day 3 x the series' mean daily demand over the 8 weeks before, or 6 x its standard
  deviation if that is more, at least 5 units; a level shift multiplies every day from its start by 0.4 or 2.5 (drop
  or spike); a stock-out is 7 days of zero demand (drop). On a slow, lumpy series these are 3-4 standard deviation
  events even under the generator's own distribution (docs/decisions.md);
- `clear`: 6 x the mean or 10 x the standard deviation, x 0.25 or x 4, 14 days: events a planner would call obvious.
A detection is a true positive when it is on an injected series, in the injection's direction and overlaps its days
(a level shift's first 14 days); recall counts the events with at least one. Every other detection in the last
EVAL_DAYS counts as false: on the real data some are real anomalies, so its precision is a lower bound.

`detect_seconds`: the pipeline's detection (glue_jobs/anomaly_levels.py: every stock code of the real year that sold
in its last quarter, its category and the total, the last 28 days reported) against the rolling z-score of the stock
codes alone, timed in the same process (--quick: the 200 best sellers).
"""

from __future__ import annotations

import itertools
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench import online_retail
from bench.report import emit
from glue_jobs.anomaly_levels import bottom_frame, delisted, detect
from glue_jobs.demand_anomalies import AnomalyConfig, anomalies, rolling_zscore
from streaming.generator import GeneratorConfig, generate

SEED = 67  # the bench's generator and injection seed; tuning used 61 and 71
EVAL_DAYS = 182
MIN_LEVEL = 2.0  # mean units a day: below it a stock-out is indistinguishable from a quiet week
KINDS = ("spike", "level_shift", "stock_out")
SHIFT_SCORED = 14  # a level shift is found when a detection overlaps its first two weeks


@dataclass(frozen=True)
class Sizes:
    """How large the injected events are: a spike adds the larger of `spike_mean` x the series' mean and `spike_sd` x
    its standard deviation over the 8 weeks before; a stock-out is `stock_out_days` of zeros; a level shift multiplies
    every day from its start by one of `shift`."""

    spike_mean: float = 3.0
    spike_sd: float = 6.0
    stock_out_days: int = 7
    shift: tuple[float, float] = (0.4, 2.5)


BENCH = Sizes()
CLEAR = Sizes(spike_mean=6.0, spike_sd=10.0, stock_out_days=14, shift=(0.25, 4.0))
SIZES = {"bench": BENCH, "clear": CLEAR}


@dataclass(frozen=True)
class Event:
    series: str
    kind: str
    direction: str
    start: pd.Timestamp
    end: pd.Timestamp


def generator_demand(seed: int = SEED, items: int = 60) -> pd.DataFrame:
    """Daily demand per item over two years of generated sales (zeros filled): series, ds, y, explained (the item's
    promotion days, the days from its discontinuation on and the days no store sold anything)."""
    data = generate(GeneratorConfig(seed=seed, stores=3, items=items, days=728))
    drop = {label.line for label in data.labels if label.expected != "clean"}
    events = pd.DataFrame([e for i, e in enumerate(data.events) if i not in drop])
    sales = events[events["event_type"] == "sale"].copy()
    sales["ds"] = pd.to_datetime(sales["event_time"]).dt.tz_localize(None).dt.normalize()
    frame = _daily(sales.rename(columns={"item_id": "series"}), "quantity")
    campaigns = events[(events["event_type"] == "campaign") & (events["action"] == "start")]
    promoted = {(row.item_id, day) for row in campaigns.itertuples()
                for day in pd.date_range(pd.Timestamp(row.starts_at).tz_localize(None).normalize(),
                                         pd.Timestamp(row.ends_at).tz_localize(None).normalize())}  # fmt: skip
    frame["explained"] = [key in promoted for key in zip(frame["series"], frame["ds"], strict=True)]
    products = events[(events["event_type"] == "product") & (events["status"] == "discontinued")]
    discontinued = {
        row.item_id: pd.Timestamp(row.event_time).tz_localize(None).normalize() for row in products.itertuples()
    }
    frame["explained"] |= delisted(frame["series"], frame["ds"], discontinued)  # as the pipeline's product events
    return _closed_days(frame)


def _closed_days(frame: pd.DataFrame) -> pd.DataFrame:
    """Days on which no series sold anything (a holiday, the shop closed) are explained, not anomalies."""
    closed = frame.groupby("ds")["y"].sum() == 0
    explained = frame["ds"].map(closed).to_numpy() | frame.get("explained", False)
    return frame.assign(explained=explained)


def real_demand(top: int) -> pd.DataFrame:
    lines = online_retail.sales_lines()
    best = lines.groupby("item_id")["quantity"].sum().sort_values(ascending=False).index[:top]
    frame = _daily(lines[lines["item_id"].isin(set(best))].rename(columns={"item_id": "series"}), "quantity")
    return _closed_days(frame)


def _daily(lines: pd.DataFrame, column: str) -> pd.DataFrame:
    demand = lines.groupby(["series", "ds"])[column].sum().clip(lower=0).rename("y").reset_index()
    demand["ds"] = pd.to_datetime(demand["ds"])
    days = pd.date_range(demand["ds"].min(), demand["ds"].max(), freq="D")
    grid = pd.MultiIndex.from_product([sorted(demand["series"].unique()), days], names=["series", "ds"])
    return demand.set_index(["series", "ds"]).reindex(grid, fill_value=0.0).reset_index()


def inject(
    frame: pd.DataFrame, seed: int, share: float = 0.3, sizes: Sizes = BENCH
) -> tuple[pd.DataFrame, list[Event]]:
    """The frame with one labelled event in `share` of the series selling at least MIN_LEVEL a day."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    end = frame["ds"].max()
    first = end - pd.Timedelta(days=EVAL_DAYS - 1)
    level = frame[frame["ds"] < first].groupby("series")["y"].mean()
    candidates = sorted(level.index[level >= MIN_LEVEL])
    chosen = rng.choice(candidates, size=max(1, round(share * len(candidates))), replace=False)
    closed = frame.groupby("ds")["explained"].all()
    events = []
    for series in chosen:
        kind = KINDS[rng.integers(len(KINDS))]
        rows = out["series"] == series
        start = _start(rng, out[rows], closed, first, kind, sizes)
        if start is None:
            continue
        before = out[rows & (out["ds"] < start) & (out["ds"] >= start - pd.Timedelta(weeks=8))]["y"]
        if kind == "spike":
            days = (start, start)
            spike = max(sizes.spike_mean * before.mean(), sizes.spike_sd * before.std(), 5.0)
            out.loc[rows & (out["ds"] == start), "y"] += round(spike)
            direction = "spike"
        elif kind == "stock_out":
            days = (start, start + pd.Timedelta(days=sizes.stock_out_days - 1))
            out.loc[rows & out["ds"].between(*days), "y"] = 0.0
            direction = "drop"
        else:
            factor = sizes.shift[0] if rng.random() < 0.5 else sizes.shift[1]
            out.loc[rows & (out["ds"] >= start), "y"] = np.round(out.loc[rows & (out["ds"] >= start), "y"] * factor)
            days = (start, start + pd.Timedelta(days=SHIFT_SCORED - 1))
            direction = "drop" if factor < 1 else "spike"
        events.append(Event(str(series), kind, direction, *days))
    return out, events


def _start(
    rng: np.random.Generator, series: pd.DataFrame, closed: pd.Series, first: pd.Timestamp, kind: str, sizes: Sizes
) -> pd.Timestamp | None:
    """A random first day in the evaluation window, open, whose event span (a level shift's scored first weeks) has
    no day explained for the series alone: an event on a promoted or delisted day is no event the detector is asked to
    find (a stock-out of an item that no longer sells changes nothing). Days every series is closed may fall inside."""
    span = {"spike": 1, "stock_out": sizes.stock_out_days, "level_shift": SHIFT_SCORED}[kind]
    shut = closed.reindex(series["ds"]).to_numpy()
    own = pd.Series(series["explained"].to_numpy(bool) & ~shut, index=series["ds"])
    days = pd.date_range(first, first + pd.Timedelta(days=EVAL_DAYS - 15))
    ok = [day for day in days if not closed[day] and not own[day : day + pd.Timedelta(days=span - 1)].any()]
    return ok[int(rng.integers(len(ok)))] if ok else None


def score(detected: pd.DataFrame, events: list[Event], first: pd.Timestamp) -> dict[str, float]:
    """Precision over the detections in the evaluation window, recall over the events (per kind too)."""
    detected = detected[detected["end"] >= first]
    by_series: dict[str, list[Event]] = {}
    for event in events:
        by_series.setdefault(event.series, []).append(event)
    found: set[Event] = set()
    true = 0
    for row in detected.itertuples():
        hits = [e for e in by_series.get(row.series, []) if e.direction == row.direction
                and row.start <= e.end and row.end >= e.start]  # fmt: skip
        true += bool(hits)
        found.update(hits)
    out = {"precision": true / len(detected) if len(detected) else 1.0, "recall": len(found) / max(len(events), 1)}
    for kind in KINDS:
        of_kind = [e for e in events if e.kind == kind]
        out[f"recall_{kind}"] = round(len([e for e in of_kind if e in found]) / max(len(of_kind), 1), 4)
    out["detections"] = len(detected)
    out["events"] = len(events)
    return out


def evaluate(
    frame: pd.DataFrame, seed: int, config: AnomalyConfig = AnomalyConfig(), sizes: Sizes = BENCH
) -> tuple[dict, dict]:
    injected, events = inject(frame, seed, sizes=sizes)
    first = frame["ds"].max() - pd.Timedelta(days=EVAL_DAYS - 1)
    ours = score(anomalies(injected, config), events, first)
    baseline = score(rolling_zscore(injected, "D"), events, first)
    return ours, baseline


def run(quick: bool, only: str | None = None) -> None:
    warnings.simplefilter("ignore")
    datasets = {
        "generator": generator_demand(items=60 if quick else 200),
        "online_retail": real_demand(60 if quick else 200),
    }
    for (dataset, frame), (name, sizes) in itertools.product(datasets.items(), SIZES.items()):
        ours, baseline = evaluate(frame, SEED, sizes=sizes)
        extra = {k: ours[k] for k in ours if k.startswith("recall_") or k in ("detections", "events")}
        tags = {"dataset": dataset, "sizes": name, "series": int(frame["series"].nunique()), **extra}
        emit("anomaly_accuracy", "recall", ours["recall"], "fraction", baseline=baseline["recall"], **tags)
        emit("anomaly_accuracy", "precision", ours["precision"], "fraction", baseline=baseline["precision"], **tags,
             baseline_detections=baseline["detections"])  # fmt: skip
    pipeline_speed(quick)


def pipeline_speed(quick: bool) -> None:
    """What the Glue job does on the real year: every level (the stock codes, their categories, the total) over the
    last 28 days, timed against the rolling z-score of the bottom series alone, in the same process."""
    lines = online_retail.sales_lines()
    inputs, _ = online_retail.daily_inputs(lines, horizon=0, top=200 if quick else None)
    since = inputs.target["ds"].max() - pd.Timedelta(days=27)
    started = time.perf_counter()
    found = detect(inputs, AnomalyConfig(), since)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    rolling_zscore(bottom_frame(inputs, {}), "D")
    baseline = time.perf_counter() - started
    levels = {f"anomalies_{level}": int(n) for level, n in found["level"].value_counts().items()}
    emit("anomaly_accuracy", "detect_seconds", round(ours, 2), "s", baseline=round(baseline, 2),
         dataset="online_retail", series=int(inputs.target["unique_id"].nunique()), days=28, **levels)  # fmt: skip
