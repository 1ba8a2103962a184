"""Labelled anomalies injected into real sales events (the generator's kinds), to score the outlier split on real
distributions: every untouched line is real and counts as normal.

At `rate` of the merchandise sale lines (positive quantity and price), chosen at random (seeded), one of the
generator's kinds with its weights (streaming.generator.ANOMALY_KINDS):
- bulk_order: the line's quantity becomes `size` x the item's median weekly demand over the 8 weeks before
  (weeks with sales), at least `size` units: a one-off order far beyond what the item sells in a week;
- quantity_typo: the line's quantity x `size` (a slipped digit);
- price_error: the line's price x `size` or / `size` (half each);
- duplicate: the line is sent again (same event id) right after: expected "duplicate";
- cancel_reissue: right after the line, a cancellation of it (same order) and a new line for the same units
  (a new order): both expected clean.
SIZES holds the realistic and the subtle sizes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from streaming.events import format_time
from streaming.generator import _ANOMALY_WEIGHTS, ANOMALY_KINDS, EXPECTED

SIZES = {
    "realistic": {"bulk_order": 5.0, "quantity_typo": 10.0, "price_error": 3.0},
    "subtle": {"bulk_order": 2.0, "quantity_typo": 3.0, "price_error": 1.8},
}
WEEKS = 8


@dataclass(frozen=True)
class Injected:
    event_id: str
    kind: str
    expected: str  # "outlier" | "duplicate" | "clean"


def _eligible(event: dict[str, Any]) -> bool:
    return event["event_type"] == "sale" and event["quantity"] > 0 and event["unit_price"] > 0


def _week(event: dict[str, Any]) -> int:
    return datetime.fromisoformat(event["event_time"]).toordinal() // 7


def _later(event: dict[str, Any], minutes: int) -> str:
    return format_time(datetime.fromisoformat(event["event_time"]) + timedelta(minutes=minutes))


def inject(
    events: list[dict[str, Any]], rate: float = 0.01, size: str = "realistic", seed: int = 17
) -> tuple[list[dict[str, Any]], list[Injected]]:
    """(the events with the injections, in time order; their labels). `events` is not changed."""
    rng = np.random.default_rng(seed)
    sizes = SIZES[size]
    candidates = [i for i, e in enumerate(events) if _eligible(e)]
    chosen = sorted(rng.choice(candidates, int(round(rate * len(candidates))), replace=False).tolist())
    kinds = dict(zip(chosen, rng.choice(len(ANOMALY_KINDS), len(chosen), p=_ANOMALY_WEIGHTS), strict=True))
    flips = dict(zip(chosen, rng.random(len(chosen)) < 0.5, strict=True))
    weekly: dict[str, dict[int, float]] = defaultdict(dict)  # item -> week -> units, the weeks before
    out: list[dict[str, Any]] = []
    labels: list[Injected] = []
    for i, event in enumerate(events):
        if event["event_type"] != "sale":
            out.append(event)
            continue
        item, week = event["item_id"], _week(event)
        if i in kinds:
            kind = ANOMALY_KINDS[kinds[i]]
            line = dict(event)
            if kind == "bulk_order":
                recent = [u for w, u in weekly[item].items() if week - WEEKS <= w < week]
                line["quantity"] = float(max(round(sizes[kind] * (float(np.median(recent)) if recent else 1.0)),
                                             sizes[kind]))  # fmt: skip
            elif kind == "quantity_typo":
                line["quantity"] = event["quantity"] * sizes[kind]
            elif kind == "price_error":
                factor = sizes[kind] if flips[i] else 1 / sizes[kind]
                line["unit_price"] = round(max(event["unit_price"] * factor, 0.01), 2)
            out.append(line)
            labels.append(Injected(line["event_id"], kind, EXPECTED[kind]))
            if kind == "duplicate":
                out.append(dict(line))
            elif kind == "cancel_reissue":
                cancel = {**line, "event_id": line["event_id"] + "-cancel", "quantity": -line["quantity"],
                          "event_time": _later(line, 5)}  # fmt: skip
                reissue = {**line, "event_id": line["event_id"] + "-reissue", "order_id": f"{line['order_id']}-R",
                           "event_time": _later(line, 10)}  # fmt: skip
                out += [cancel, reissue]
                labels += [Injected(cancel["event_id"], kind, "clean"), Injected(reissue["event_id"], kind, "clean")]
        else:
            out.append(event)
        if event["quantity"] > 0:
            weeks = weekly[item]
            weeks[week] = weeks.get(week, 0.0) + event["quantity"]
            for old in [w for w in weeks if w < week - WEEKS]:
                del weeks[old]
    return out, labels


@dataclass(frozen=True)
class RealAccuracy:
    precision: float
    recall: float
    by_kind: dict[str, float]  # recall per injected kind
    flagged_share: float  # untouched demand lines flagged
    flagged_units_share: float  # ... and their share of the untouched units
    flagged: int
    labelled: int


def score_real(events: list[dict[str, Any]], labels: list[Injected], outlier_ids: set[str]) -> RealAccuracy:
    """Precision and recall on the injected outliers (a flagged untouched demand line or a flagged cancel-and-reissue
    line is a false positive); the flagged share of the untouched real demand lines and of their units."""
    expected = {lab.event_id: lab.kind for lab in labels if lab.expected == "outlier"}
    clean = {lab.event_id for lab in labels if lab.expected == "clean"}
    touched = {lab.event_id for lab in labels}
    untouched = [e for e in events if _eligible(e) and e["event_id"] not in touched]
    flagged_real = [e for e in untouched if e["event_id"] in outlier_ids]
    hits = set(expected) & outlier_ids
    flagged = len(hits) + len(flagged_real) + len(clean & outlier_ids)
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for event_id, kind in expected.items():
        by_kind[kind].append(event_id in outlier_ids)
    units = sum(e["quantity"] for e in untouched)
    return RealAccuracy(
        precision=len(hits) / flagged if flagged else 1.0,
        recall=len(hits) / len(expected) if expected else 1.0,
        by_kind={k: round(sum(v) / len(v), 4) for k, v in sorted(by_kind.items())},
        flagged_share=len(flagged_real) / len(untouched) if untouched else 0.0,
        flagged_units_share=sum(e["quantity"] for e in flagged_real) / units if units else 0.0,
        flagged=flagged,
        labelled=len(expected),
    )
