"""Run the detector over raw lines without Flink, and score any split against the generator's labels."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from core.settings import OutlierSettings
from flink_jobs.detector import Detector, ItemState
from flink_jobs.judge import Judge


@dataclass
class Split:
    """Where every input line went: the event ids per route, and rejected records."""

    clean: list[dict[str, Any]]
    outliers: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    reference: list[dict[str, Any]]
    duplicates: int

    @property
    def counts(self) -> dict[str, int]:
        return {
            "clean": len(self.clean),
            "outliers": len(self.outliers),
            "rejected": len(self.rejected),
            "duplicates": self.duplicates,
            "reference": len(self.reference),
        }


def split_lines(lines: Iterable[bytes], config: OutlierSettings | None = None, source: str = "memory") -> Split:
    """The job's logic in one process (one Judge batch over the whole input): what the Flink job must match."""
    raw = list(lines)
    numbers = [str(n) for n in range(1, len(raw) + 1)]
    states: dict[str, ItemState] = {}
    out, _ = Judge(Detector(config), source)(raw, [None] * len(raw), numbers, states.get)
    rows = {name: [orjson.loads(line) for line in out[name]] for name in ("clean", "outliers", "rejected", "reference")}
    return Split(rows["clean"], rows["outliers"], rows["rejected"], rows["reference"], len(out["duplicates"]))


@dataclass(frozen=True)
class Accuracy:
    precision: float
    recall: float
    promo_false_positive_rate: float
    true_positives: int
    flagged: int
    labelled: int
    promo_sales: int


def score(labels: Iterable[Any], outlier_ids: Iterable[str], promo_sale_ids: Iterable[str]) -> Accuracy:
    """Precision/recall of flagged event ids against labels expected 'outlier'; share of promo sales flagged."""
    expected = {lab.event_id for lab in labels if lab.expected == "outlier"}
    flagged = set(outlier_ids)
    promo = set(promo_sale_ids) - expected
    tp = len(flagged & expected)
    return Accuracy(
        precision=tp / len(flagged) if flagged else 1.0,
        recall=tp / len(expected) if expected else 1.0,
        promo_false_positive_rate=len(flagged & promo) / len(promo) if promo else 0.0,
        true_positives=tp,
        flagged=len(flagged),
        labelled=len(expected),
        promo_sales=len(promo),
    )


def promo_sale_ids(events: Iterable[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in events if e.get("event_type") == "sale" and e.get("promotion_id")]


def code_counts(outliers: Iterable[dict[str, Any]]) -> Counter:
    return Counter(o["outlier_code"] for o in outliers)
