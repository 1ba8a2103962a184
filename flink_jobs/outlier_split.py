"""The outlier split job: raw records in; clean sales, outliers, rejected and reference events out.

One job graph (`build_split`) for every runtime; only sources and sinks differ:
- local / tests: the filesystem table source of JSON lines (optionally monitored) and FileSinks under
  <out>/{clean,...}/;
- AWS Managed Flink: the Kinesis table source and Kinesis / S3 sinks, configured from the application's
  property groups.

Graph: source table (raw line; event time and watermarks with bounded out-of-orderness, computed in the JVM)
-> key by item_id (read from the line in the JVM) -> parse and detect (one Python operator: bad records to
the `rejected` side output; keyed ValueState with TTL holding the item's flink_jobs.detector.ItemState;
duplicates, outliers, reference events to side outputs) -> sinks.
Checkpoints are exactly-once; the FileSink commits part files on checkpoints, so a restarted job
(execution.state-recovery.path) neither loses nor repeats output records.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson

from flink_jobs.detector import CLEAN, DUPLICATE, OUTLIER, Detector, DetectorConfig, ItemState, epoch_ms
from streaming.events import Rejection, parse_record

OUTPUTS = ("clean", "outliers", "rejected", "reference", "duplicates")


@dataclass(frozen=True)
class JobConfig:
    """The job's knobs, from CLI flags locally or the DemandPipeline property group on AWS."""

    parallelism: int = 1
    checkpoint_interval_ms: int = 2_000
    checkpoint_dir: str | None = None
    restore_from: str | None = None  # a retained checkpoint to start from
    out_of_orderness_s: int = 300
    dedup_ttl_hours: float = 24.0
    state_ttl_days: float = 90.0  # an item unseen this long (processing time) is forgotten
    thread_mode: bool = True
    source_name: str = "file"


def _dumps(record: dict) -> str:
    return orjson.dumps(record).decode()


# Computed in the JVM from the raw record (BYTES: the parser sees what arrived and can tell non-UTF-8
# from bad JSON), before any Python runs: the event time (direct events and DMS envelopes; unparseable
# records get epoch 0 and are rejected in Python) and the partitioning key.
EVENT_TIME_SQL = (
    "COALESCE(TO_TIMESTAMP(REPLACE(REPLACE(COALESCE(JSON_VALUE(CAST(line AS STRING), '$.event_time'), "
    "JSON_VALUE(CAST(line AS STRING), '$.data.event_time')), 'T', ' '), 'Z', '')), TIMESTAMP '1970-01-01 00:00:00')"
)
ITEM_KEY_SQL = (
    "COALESCE(JSON_VALUE(CAST(line AS STRING), '$.item_id'), JSON_VALUE(CAST(line AS STRING), '$.data.item_id'), '')"
)


def watermark_sql(config: JobConfig) -> str:
    """The event-time column and its watermark (bounded out-of-orderness) for a raw table's DDL."""
    s = config.out_of_orderness_s
    lag = f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"ts AS {EVENT_TIME_SQL},\n  WATERMARK FOR ts AS ts - INTERVAL '{lag}' HOUR TO SECOND"


def build_split(tenv, config: JobConfig, raw: str = "raw_events"):
    """The job graph on the table `raw` (line BYTES, shard_id, sequence_number; event time `ts` with watermarks);
    returns the output streams (JSON lines) by name.

    The JVM computes each line's item key and partitions by it; one Python operator then parses, validates
    and judges the line with the item's keyed state. (A Python key selector would add a second Python
    operator and a second JVM<->Python crossing per record: the job was ~1.3x slower that way.) Lines
    whose key the JVM cannot read (not JSON, no item_id) share the key '' and are rejected by the parser.
    """
    from pyflink.common import Types
    from pyflink.datastream import KeyedProcessFunction, OutputTag
    from pyflink.datastream.data_stream import KeyedStream
    from pyflink.datastream.state import StateTtlConfig, ValueStateDescriptor
    from pyflink.java_gateway import get_gateway

    tags = {name: OutputTag(name, Types.STRING()) for name in ("outliers", "rejected", "reference", "duplicates")}
    source_name = config.source_name
    detector_config = DetectorConfig(dedup_ttl_ms=int(config.dedup_ttl_hours * 3_600_000))
    state_ttl_ms = int(config.state_ttl_days * 86_400_000)

    class Detect(KeyedProcessFunction):
        def open(self, runtime_context):
            from pyflink.common import Time

            descriptor = ValueStateDescriptor("item", Types.PICKLED_BYTE_ARRAY())
            descriptor.enable_time_to_live(
                StateTtlConfig.new_builder(Time.milliseconds(state_ttl_ms))
                .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
                .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
                .build()
            )
            self.item = runtime_context.get_state(descriptor)
            self.detector = Detector(detector_config)

        def process_element(self, value, ctx):
            line, shard_id, sequence_number = value
            event = parse_record(line)
            if isinstance(event, Rejection):
                yield tags["rejected"], _dumps(event.to_record(source_name, shard_id, sequence_number))
                return
            state = self.item.value() or ItemState()
            verdict = self.detector.observe(state, event, epoch_ms(event["event_time"]))
            self.item.update(state)
            if verdict.route == CLEAN:
                yield _dumps(verdict.record)
            elif verdict.route == DUPLICATE:
                yield tags["duplicates"], event["event_id"]
            else:
                yield tags["outliers" if verdict.route == OUTLIER else "reference"], _dumps(verdict.record)

    # PyFlink: a process function yields (OutputTag, value) for a side output.
    line_type = Types.ROW([Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.STRING(), Types.STRING()])
    keyed_lines = tenv.to_append_stream(
        tenv.sql_query(f"SELECT {ITEM_KEY_SQL}, ROW(line, shard_id, sequence_number) FROM {raw}"),
        Types.ROW([Types.STRING(), line_type]),
    )
    # key_by on field 0 in the JVM: the same KeyByKeySelector PyFlink's own key_by() uses after its Python map.
    java_keyed = keyed_lines._j_data_stream.keyBy(
        get_gateway().jvm.KeyByKeySelector(), Types.ROW([Types.STRING()]).get_java_type_info()
    )
    detected = (
        KeyedStream(java_keyed, line_type, keyed_lines)
        .process(Detect(), output_type=Types.STRING())
        .name("parse-and-detect")
    )
    return {
        "clean": detected,
        "outliers": detected.get_side_output(tags["outliers"]),
        "rejected": detected.get_side_output(tags["rejected"]),
        "reference": detected.get_side_output(tags["reference"]),
        "duplicates": detected.get_side_output(tags["duplicates"]),
    }


def environment(config: JobConfig):
    """A StreamExecutionEnvironment with checkpointing, Python workers on this interpreter, quiet logs."""
    from pyflink.common import Configuration
    from pyflink.datastream import CheckpointingMode, StreamExecutionEnvironment

    conf = Configuration()
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    if config.thread_mode:
        conf.set_string("python.execution-mode", "thread")
    conf.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    if config.checkpoint_dir:
        conf.set_string("execution.checkpointing.dir", Path(config.checkpoint_dir).resolve().as_uri())
    if config.restore_from:
        conf.set_string("execution.state-recovery.path", config.restore_from)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(config.parallelism)
    env.enable_checkpointing(config.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)
    return env


def file_job(input_path: str, out: str, config: JobConfig, follow: bool = False):
    """Local runtime: a JSON-lines file (or directory of them) in, JSON-lines part files under
    <out>/<output>/ out. Returns the environment, ready to execute."""
    from pyflink.common.serialization import Encoder
    from pyflink.datastream.connectors.file_system import BucketAssigner, FileSink, OutputFileConfig, RollingPolicy
    from pyflink.table import StreamTableEnvironment

    env = environment(config)
    tenv = StreamTableEnvironment.create(env)
    monitor = ", 'source.monitor-interval' = '1 s'" if follow else ""
    tenv.execute_sql(f"""
    CREATE TEMPORARY TABLE raw_files (
      line BYTES,
      {watermark_sql(config)}
    ) WITH ('connector' = 'filesystem', 'path' = '{Path(input_path).resolve()}', 'format' = 'raw'{monitor})""")
    tenv.execute_sql("""CREATE TEMPORARY VIEW raw_events AS
    SELECT line, CAST(NULL AS STRING) AS shard_id, CAST(NULL AS STRING) AS sequence_number, ts FROM raw_files""")
    for name, stream in build_split(tenv, config).items():
        sink = (
            FileSink.for_row_format(str(Path(out).resolve() / name), Encoder.simple_string_encoder())
            .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
            .with_output_file_config(
                OutputFileConfig.builder().with_part_prefix("part").with_part_suffix(".jsonl").build()
            )
            .with_rolling_policy(RollingPolicy.on_checkpoint_rolling_policy())
            .build()
        )
        stream.sink_to(sink).name(f"{name}-sink")
    return env


def read_outputs(out: str | Path, name: str) -> list[str]:
    """The committed lines of one output (part files; in-progress files start with '.')."""
    return [
        line
        for path in sorted((Path(out) / name).glob("part*"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line
    ]


def count_outputs(out: str | Path) -> dict[str, int]:
    return {name: len(read_outputs(out, name)) for name in OUTPUTS}


def input_files(path: str | Path) -> list[Path]:
    """A file, or the files of a directory the filesystem source reads (not hidden: '.' or '_')."""
    p = Path(path)
    if p.is_dir():
        return sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith((".", "_")))
    return [p]


def count_lines(paths: list[Path]) -> int:
    """Records in the input the way Flink's text line format reads them (one per line, last one may lack \\n)."""
    total = 0
    for path in paths:
        data = path.read_bytes()
        total += data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    return total


def run_local(inputs: str | Path, out: str | Path, config: JobConfig, follow: bool = False) -> dict[str, int]:
    """Run the job on the local mini-cluster to the end of the input; write and return <out>/counts.json."""
    files = input_files(inputs)
    if not files:
        raise FileNotFoundError(f"no input files in {inputs}")
    source = str(inputs)
    config = JobConfig(**{**config.__dict__, "source_name": source})
    job = file_job(str(inputs), str(out), config, follow=follow)
    try:
        job.execute("outlier-split")
    except KeyboardInterrupt:  # --follow runs until stopped; count what the last checkpoint committed
        if not follow:
            raise
    counts = {"input": count_lines(files), **count_outputs(out)}
    counts["accounted"] = sum(counts[name] for name in OUTPUTS)
    (Path(out) / "counts.json").write_text(json.dumps(counts, indent=2) + "\n", encoding="utf-8")
    return counts


# --- AWS Managed Service for Apache Flink -------------------------------------------------------------
APPLICATION_PROPERTIES = "/etc/flink/application_properties.json"


def read_properties(path: str = APPLICATION_PROPERTIES) -> dict[str, dict[str, str]]:
    """Managed Flink's property groups: [{"PropertyGroupId": ..., "PropertyMap": {...}}] -> {group: map}."""
    with open(path, encoding="utf-8") as f:
        return {g["PropertyGroupId"]: g["PropertyMap"] for g in json.load(f)}


def aws_job(props: dict[str, str]):  # pragma: no cover - needs the Kinesis connector jar (RUN_OPTIONS["jarfile"])
    """Kinesis in, Kinesis (clean, outliers) and S3 file sinks (rejected, reference) out; same graph.

    The source is the SQL connector's `kinesis-legacy` table (flink-sql-connector-kinesis 5.x+): of the
    two, only it exposes the shard-id / sequence-number metadata that rejected records carry."""
    from pyflink.common.serialization import Encoder, SimpleStringSchema
    from pyflink.datastream.connectors.file_system import FileSink, RollingPolicy
    from pyflink.datastream.connectors.kinesis import KinesisStreamsSink, PartitionKeyGenerator
    from pyflink.table import StreamTableEnvironment

    config = JobConfig(
        out_of_orderness_s=int(props.get("out_of_orderness.seconds", 300)),
        dedup_ttl_hours=float(props.get("dedup.ttl.hours", 24)),
        checkpoint_interval_ms=60_000,  # Managed Flink overrides checkpointing from the application config
        source_name=props["input.stream"],
    )
    env = environment(config)
    tenv = StreamTableEnvironment.create(env)
    region = {"aws.region": props["aws.region"]}
    tenv.execute_sql(f"""
    CREATE TEMPORARY TABLE raw_events (
      line BYTES,
      shard_id VARCHAR(128) METADATA FROM 'shard-id' VIRTUAL,
      sequence_number VARCHAR(128) METADATA FROM 'sequence-number' VIRTUAL,
      {watermark_sql(config)}
    ) WITH ('connector' = 'kinesis-legacy', 'stream' = '{props["input.stream"]}',
            'aws.region' = '{props["aws.region"]}', 'scan.stream.initpos' = 'LATEST', 'format' = 'raw')""")
    streams = build_split(tenv, config)
    for name, stream_key in (("clean", "clean.stream"), ("outliers", "outliers.stream")):
        sink = (
            KinesisStreamsSink.builder()
            .set_kinesis_client_properties(region)
            .set_serialization_schema(SimpleStringSchema())
            .set_partition_key_generator(PartitionKeyGenerator.random())
            .set_stream_name(props[stream_key])
            .build()
        )
        streams[name].sink_to(sink).name(f"{name}-sink")
    for name, path_key in (("rejected", "rejected.path"), ("reference", "reference.path")):
        sink = FileSink.for_row_format(props[path_key], Encoder.simple_string_encoder())
        streams[name].sink_to(sink.with_rolling_policy(RollingPolicy.on_checkpoint_rolling_policy()).build())
    return env


def main() -> None:  # pragma: no cover - the Managed Flink entry point (properties.RUN_OPTIONS["python"])
    from flink_jobs.properties import PROPERTY_GROUP

    aws_job(read_properties()[PROPERTY_GROUP]).execute("outlier-split")


if __name__ == "__main__":
    main()
