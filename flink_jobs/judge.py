"""The outlier split's batch step in plain Python, no Flink: raw records in, output lines by name out.

The Flink job (outlier_split.py) calls it once per micro-batch with the item states from its keyed state;
`flink_jobs.accuracy.split_lines` calls it once over a whole input with a dict.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from flink_jobs.detector import CLEAN, DUPLICATE, OUTLIER, Detector, ItemState, epoch_ms
from streaming.events import Rejection
from streaming.records import parse_record

OUTPUTS = ("clean", "outliers", "rejected", "reference", "duplicates")


class Judge:
    """Plain Python, no Flink: a batch of raw records -> output lines by name, using and updating item states.

    `load(item_id)` returns an item's stored ItemState (or None); the states the batch touched come back
    for the caller to store. Records are judged in arrival order, so how a stream is cut into batches does
    not change any verdict."""

    def __init__(
        self,
        detector: Detector,
        source: str,
        future_slack_ms: int = 24 * 3_600_000,
        clock: Callable[[], float] = time.time,
    ):
        self.detector = detector
        self.source = source
        self.future_slack_ms = future_slack_ms  # an event time further than this past the processing time is rejected
        self.clock = clock

    def __call__(
        self, lines, shard_ids, sequence_numbers, load: Callable[[str], ItemState | None]
    ) -> tuple[dict[str, list[bytes]], dict[str, ItemState]]:
        out: dict[str, list[bytes]] = {name: [] for name in OUTPUTS}
        clean, outliers, reference, duplicates = out["clean"], out["outliers"], out["reference"], out["duplicates"]
        states: dict[str, ItemState] = {}
        observe, dumps = self.detector.observe, orjson.dumps
        latest = int(self.clock() * 1000) + self.future_slack_ms
        for line, shard_id, sequence_number in zip(lines, shard_ids, sequence_numbers, strict=True):
            event = parse_record(line)
            if not isinstance(event, Rejection) and (at := epoch_ms(event["event_time"])) > latest:
                event = Rejection("event_time_in_future", _future(event["event_time"], self.future_slack_ms), line)
            if isinstance(event, Rejection):
                out["rejected"].append(dumps(event.to_record(self.source, shard_id, sequence_number)))
                continue
            item = event["item_id"]
            state = states.get(item)
            if state is None:
                state = states[item] = load(item) or ItemState()
            verdict = observe(state, event, at)
            route = verdict.route
            if route == CLEAN:
                clean.append(dumps(verdict.record))
            elif route == DUPLICATE:
                duplicates.append(event["event_id"].encode())
            else:
                (outliers if route == OUTLIER else reference).append(dumps(verdict.record))
        return out, states


def _future(event_time: str, slack_ms: int) -> str:
    return f"event_time {event_time} is more than {slack_ms / 3_600_000:g} h after the time it was processed"
