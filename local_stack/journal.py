"""What the local stack's Kinesis was told, kept on disk, so a restart of the moto server loses no pushed record.

moto keeps its streams in memory: a server killed (or stopped) between a push and the read that should follow loses
every record pushed. The local stack's server therefore appends each stream change it acknowledged (create, delete,
put) to `<data_root>/local-stack-kinesis.jsonl` before answering, and replays the file into moto's Kinesis before it
listens again. Sequence numbers are consecutive per shard and shards are chosen by hashing the partition key, so the
replayed streams hold the same records under the same sequence numbers, and a Flink checkpoint or a reader's
position still points where it did. Arrival times are those of the replay.

Each change is one line written with one append to the file (no fsync: a killed process loses nothing, a machine
that loses power may lose the last lines). DynamoDB, SNS and the Glue catalog are not journaled: `demand local up`
creates them again empty (the API cache refills; a forecast run's claim is gone, so a re-trigger runs it again into
the same output paths).
"""

from __future__ import annotations

import inspect
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

JOURNAL_FILE = "local-stack-kinesis.jsonl"
_OPERATIONS = ("create_stream", "delete_stream", "put_record", "put_records")


def journal_kinesis(path: Path, progress: Callable[[int], None] | None = None) -> int:
    """Replay the journal at `path` into moto's Kinesis, then journal every change that succeeds. Returns the number
    of changes replayed. Call it once per process, before the server answers."""
    from moto.kinesis.models import KinesisBackend, kinesis_backends

    originals = {name: getattr(KinesisBackend, name) for name in _OPERATIONS}
    replayed = 0
    if path.exists():
        with path.open("rb") as lines:
            for line in lines:
                try:
                    change = json.loads(line)
                except ValueError:
                    break  # a line cut short by a kill while it was written: its change was never acknowledged
                backend = kinesis_backends[change["account"]][change["region"]]
                originals[change["op"]](backend, **change["args"])
                replayed += 1
                if progress and replayed % 1000 == 0:
                    progress(replayed)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    lock = threading.Lock()  # one change at a time: the file's order is the order sequence numbers were given

    def journaled(name: str) -> Callable[..., Any]:
        original = originals[name]
        signature = inspect.signature(original)

        def change(self: Any, *args: Any, **kwargs: Any) -> Any:
            named = signature.bind(self, *args, **kwargs).arguments
            named.pop("self")
            with lock:
                result = original(self, **named)
                entry = {"op": name, "account": self.account_id, "region": self.region_name, "args": named}
                os.write(fd, json.dumps(entry, separators=(",", ":")).encode() + b"\n")
            return result

        return change

    for name in _OPERATIONS:
        setattr(KinesisBackend, name, journaled(name))
    return replayed
