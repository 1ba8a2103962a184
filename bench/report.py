"""The one output format of every benchmark: a JSON line per figure, with its same-process baseline."""

from __future__ import annotations

import json
import sys


def emit(bench: str, metric: str, value: float, unit: str, baseline: float | None = None, **extra) -> dict:
    ratio = round(value / baseline, 3) if baseline else None
    line = {
        "bench": bench,
        "metric": metric,
        "value": round(value, 4),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 4),
        "ratio": ratio,
        **extra,
    }
    print(json.dumps(line), flush=True)
    sys.stdout.flush()
    return line
