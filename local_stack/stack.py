"""The local stack: a moto server on 127.0.0.1 in the background, plus the pipeline's AWS resources.

`up` starts `python -m local_stack.stack serve --port N` in its own session (it outlives the CLI),
records pid and port in `<data_root>/local-stack.json`, and creates the streams, tables, topic, Glue
database and bucket directories. `ensure_resources` works against any endpoint (moto, LocalStack, AWS).
The server keeps a journal of its Kinesis streams (local_stack/journal.py), so a restart loses no pushed record;
`down --reset` forgets them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from core import aws
from core.settings import Settings
from local_stack.journal import JOURNAL_FILE

STATE_FILE = "local-stack.json"
LOG_FILE = "local-stack.log"
_SERVE_MARKER = "local_stack.stack"


class LocalStackError(RuntimeError):
    """The local stack cannot start or stop (port taken, server died); the message says what to do."""


@dataclass(frozen=True)
class StackState:
    pid: int
    port: int
    endpoint: str
    started_at: str
    log: str


def state_path(settings: Settings) -> Path:
    return Path(settings.data_root) / STATE_FILE


def read_state(settings: Settings) -> StackState | None:
    path = state_path(settings)
    if not path.is_file():
        return None
    try:
        return StackState(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise LocalStackError(f"{path} is not a local stack state file ({exc}); remove it and retry") from exc


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.3) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def _is_our_server(pid: int) -> bool:
    """The pid is alive and is a `local_stack.stack serve` process (pids get reused)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        return _SERVE_MARKER.encode() in cmdline.read_bytes()
    return True  # no /proc (macOS): trust the live pid


def running(settings: Settings) -> StackState | None:
    """The state of the server `up` started, if it is still running and answering."""
    state = read_state(settings)
    if state and _is_our_server(state.pid) and port_open(state.port):
        return state
    return None


def local_settings(settings: Settings) -> Settings:
    """Settings pointing at the local stack (the running one, else the configured port) when the runtime is local
    and no endpoint is configured; otherwise the settings as they are."""
    if aws.endpoint(settings) or settings.runtime != "local":
        return settings  # an explicit endpoint (moto, LocalStack) or AWS itself
    state = running(settings)
    port = state.port if state else settings.local_port
    return settings.model_copy(update={"endpoint_url": f"http://127.0.0.1:{port}"})


def up(
    settings: Settings, port: int | None = None, timeout: float = 30.0
) -> tuple[StackState, bool, dict[str, list[str]]]:
    """Start the server (or reuse the running one) and create the resources; returns (state, started, created)."""
    port = port or settings.local_port
    state = running(settings)
    started = False
    if state and state.port != port:
        raise LocalStackError(
            f"the local stack already runs on port {state.port} (pid {state.pid}); run `demand local down` first"
        )
    if state is None:
        if port_open(port):
            raise LocalStackError(
                f"port {port} on 127.0.0.1 is in use by a process `demand local up` did not start; "
                f"stop it or choose another port (demand --port N local up)"
            )
        state = _start(settings, port, timeout)
        started = True
    created = ensure_resources(settings.model_copy(update={"endpoint_url": state.endpoint, "local_port": state.port}))
    return state, started, created


def _start(settings: Settings, port: int, timeout: float) -> StackState:
    root = Path(settings.data_root)
    root.mkdir(parents=True, exist_ok=True)
    log = root / LOG_FILE
    journal = root / JOURNAL_FILE
    if journal.exists():  # the server replays it before it listens: about 9 MB/s here, allow under half of that
        timeout += journal.stat().st_size / 4e6
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", _SERVE_MARKER, "serve", "--port", str(port), "--journal", str(journal)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survive the CLI exiting and its terminal's Ctrl-C
        )
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if proc.poll() is not None:
            raise LocalStackError(f"moto server exited with code {proc.returncode}; see {log}")
        if time.monotonic() > deadline:
            _stop_pid(proc.pid)
            raise LocalStackError(f"moto server did not answer on port {port} within {timeout:.0f}s; see {log}")
        time.sleep(0.1)
    state = StackState(
        pid=proc.pid,
        port=port,
        endpoint=f"http://127.0.0.1:{port}",
        started_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        log=str(log),
    )
    state_path(settings).write_text(json.dumps(asdict(state), indent=2) + "\n")
    return state


def _stop_pid(pid: int, timeout: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # Reap it if it is our child (tests call up() in-process); otherwise just probe it.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def down(settings: Settings, reset: bool = False) -> StackState | None:
    """Stop the server `up` started (only that pid) and remove the state file; None if none was running. With reset,
    also drop the Kinesis journal: the next `up` starts with empty streams."""
    if reset:
        (Path(settings.data_root) / JOURNAL_FILE).unlink(missing_ok=True)
    state = read_state(settings)
    if state is None:
        return None
    stopped = None
    if _is_our_server(state.pid):
        _stop_pid(state.pid)
        deadline = time.monotonic() + 10
        while port_open(state.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        stopped = state
    state_path(settings).unlink(missing_ok=True)
    return stopped


# --- resources ---------------------------------------------------------------------------------------
def _exists_ok(call, *codes: str) -> bool:
    """Run a create call; False when the resource already existed (the error code says so)."""
    try:
        call()
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in codes:
            return False
        raise


def ensure_resources(settings: Settings) -> dict[str, list[str]]:
    """Create, idempotently, every AWS resource the pipeline needs; returns what was created."""
    names = settings.names
    created: dict[str, list[str]] = {"streams": [], "tables": [], "topics": [], "databases": [], "buckets": []}
    kinesis = aws.client("kinesis", settings)
    for stream in names.streams:
        if _exists_ok(
            lambda s=stream: kinesis.create_stream(StreamName=s, ShardCount=settings.stream_shards),
            "ResourceInUseException",
        ):
            created["streams"].append(stream)
    for stream in names.streams:
        kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1, "MaxAttempts": 60})

    dynamodb = aws.client("dynamodb", settings)
    for table, key in names.table_keys.items():
        if _exists_ok(
            lambda t=table, k=key: dynamodb.create_table(
                TableName=t,
                KeySchema=[{"AttributeName": k, "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            ),
            "ResourceInUseException",
        ):
            created["tables"].append(table)
    dynamodb.get_waiter("table_exists").wait(TableName=names.api_cache_table)
    ttl = dynamodb.describe_time_to_live(TableName=names.api_cache_table)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        dynamodb.update_time_to_live(
            TableName=names.api_cache_table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
        )

    sns = aws.client("sns", settings)
    existing = {t["TopicArn"].rsplit(":", 1)[-1] for t in sns.list_topics().get("Topics", [])}
    for topic in (names.notify_topic, names.alerts_topic):
        if topic not in existing:
            sns.create_topic(Name=topic)
            created["topics"].append(topic)

    glue = aws.client("glue", settings)
    if _exists_ok(lambda: glue.create_database(DatabaseInput={"Name": names.glue_database}), "AlreadyExistsException"):
        created["databases"].append(names.glue_database)

    if settings.runtime == "local":  # the local object store is a directory tree; on AWS, infra/ owns buckets
        for bucket in names.buckets.values():
            path = Path(settings.data_root) / bucket
            if not path.is_dir():
                path.mkdir(parents=True)
                created["buckets"].append(bucket)
    return created


def describe(settings: Settings) -> dict[str, Any]:
    """What exists: server state, streams with shard counts, tables, topic, database, bucket directories."""
    names = settings.names
    state = running(settings)
    out: dict[str, Any] = {
        "server": {"running": state is not None, **(asdict(state) if state else {})},
        "endpoint": aws.endpoint(settings),
        "streams": {},
        "tables": {},
        "topic": None,
        "glue_database": None,
        "buckets": {b: (Path(settings.data_root) / b).is_dir() for b in names.buckets.values()},
    }
    if not out["endpoint"] or not aws.answers(settings):
        return out  # no endpoint, or a local one that is not answering: nothing to ask
    kinesis = aws.client("kinesis", settings)
    for stream in names.streams:
        try:
            summary = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
            out["streams"][stream] = {"status": summary["StreamStatus"], "shards": summary["OpenShardCount"]}
        except ClientError:
            out["streams"][stream] = None
    dynamodb = aws.client("dynamodb", settings)
    for table in names.tables:
        try:
            out["tables"][table] = dynamodb.describe_table(TableName=table)["Table"]["TableStatus"]
        except ClientError:
            out["tables"][table] = None
    topics = aws.client("sns", settings).list_topics().get("Topics", [])
    out["topic"] = next((t["TopicArn"] for t in topics if t["TopicArn"].endswith(":" + names.notify_topic)), None)
    try:
        aws.client("glue", settings).get_database(Name=names.glue_database)
        out["glue_database"] = names.glue_database
    except ClientError:
        pass
    return out


# --- the background server ---------------------------------------------------------------------------
def serve(port: int, host: str = "127.0.0.1", journal: Path | None = None) -> None:
    """Run moto's server (with the Kinesis fix of local_stack/kinesis.py) until SIGTERM/SIGINT; with a journal, replay
    it into the streams first and keep it (local_stack/journal.py)."""
    from moto.server import ThreadedMotoServer

    from local_stack.journal import journal_kinesis
    from local_stack.kinesis import patch_moto_kinesis

    patch_moto_kinesis()
    if journal is not None:
        started = time.monotonic()
        replayed = journal_kinesis(journal, lambda n: print(f"replaying {journal}: {n} changes", flush=True))
        print(f"replayed {replayed} Kinesis changes from {journal} in {time.monotonic() - started:.1f}s", flush=True)

    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    print(f"moto server listening on http://{host}:{port} (pid {os.getpid()})", flush=True)
    stop.wait()
    server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local_stack.stack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="run the moto server in the foreground")
    run.add_argument("--port", type=int, default=4566)
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--journal", type=Path, help="keep the Kinesis streams in this file across restarts")
    args = parser.parse_args(argv)
    serve(args.port, args.host, args.journal)


if __name__ == "__main__":
    main()
