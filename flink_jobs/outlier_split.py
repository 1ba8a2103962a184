"""The outlier split job: raw records in; clean sales, outliers, rejected and reference events out.

One job graph (`build_split`) for every runtime; only sources and sinks differ:
- local / tests: the filesystem table source of JSON lines (optionally monitored) and FileSinks under
  <out>/{clean,...}/;
- AWS Managed Flink: the Kinesis table source and one Kinesis sink per landed table (flink_jobs.properties.AWS_SINKS),
  configured from the application's property groups.

Graph: source table (raw line; event time and watermarks with bounded out-of-orderness, computed in the JVM)
-> item bucket (read from the line in the JVM) -> MicroBatcher (JVM, flink_jobs/java: lines grouped by
bucket) -> key by bucket -> parse and detect a batch (one Python operator, `Judge`: bad records to the
`rejected` side output; MapState with TTL holding each item's flink_jobs.detector.ItemState; duplicates,
outliers, reference events to side outputs, one block of JSON lines per output and batch) -> sinks.
Checkpoints are exactly-once; locally the FileSink commits part files on checkpoints, so a restarted job
(execution.state-recovery.path) neither loses nor repeats output records. On AWS every output goes to a Kinesis
stream that Firehose lands; those sinks are at least once (see aws_job).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import OutlierSettings
from flink_jobs.detector import Detector
from flink_jobs.judge import OUTPUTS, Judge

# Items hash to this many buckets, the key of the Python operator's state (item -> ItemState inside a bucket).
# Fixed for the life of a deployment: changing it moves items to other buckets, which forgets their state.
BUCKETS = 256


@dataclass(frozen=True)
class JobConfig:
    """The job's knobs, from CLI flags locally or the DemandPipeline property group on AWS."""

    parallelism: int = 1
    checkpoint_interval_ms: int = 2_000
    checkpoint_dir: str | None = None
    restore_from: str | None = None  # a retained checkpoint to start from
    out_of_orderness_s: int = 300
    dedup_ttl_hours: float = 24.0
    dedup_max_ids: int = 200_000  # per item, the most event ids remembered (the oldest go first)
    future_slack_hours: float = 24.0  # an event time further past the processing time is rejected
    state_ttl_days: float = 90.0  # an item unseen this long (processing time) is forgotten
    thread_mode: bool = True
    source_name: str = "file"
    batch_records: int = 1_000  # a bucket's batch goes to Python at this size ...
    batch_ms: int = 500  # ... or this long after its first line, whichever comes first ...
    batch_bytes: int = 4 * 1024 * 1024  # ... or when its lines hold this many bytes
    max_restarts: int | None = 3  # then the job fails with the error (None: Flink's default, restart forever)
    outlier: OutlierSettings = field(default_factory=OutlierSettings)  # the detector's thresholds


# Computed in the JVM from the raw record (BYTES: the parser sees what arrived and can tell non-UTF-8 from bad
# JSON) before any Python runs: the event time and the item's bucket, neither with JSON_VALUE, which parses the
# whole record on each call (docs/decisions.md). The event time is read with a regular expression that finds it
# in direct events and DMS envelopes ("data": {...}) alike; a record whose event time is not in the wire format
# (2023-01-02T10:00:00.000Z) gets epoch 0, which only the watermark sees (the parser still judges it). The bucket
# comes from the ItemBucket function (flink_jobs/java), which decodes the item_id's JSON escapes.
EVENT_TIME_SQL = (
    "COALESCE(TO_TIMESTAMP(REGEXP_EXTRACT(CAST(line AS STRING), "
    """'"event_time"\\s*:\\s*"(\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3})Z"', 1), """
    "'yyyy-MM-dd''T''HH:mm:ss.SSS'), TIMESTAMP '1970-01-01 00:00:00')"
)


def watermark_sql(config: JobConfig) -> str:
    """The event-time column and its watermark (bounded out-of-orderness) for a raw table's DDL."""
    s = config.out_of_orderness_s
    lag = f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"ts AS {EVENT_TIME_SQL},\n  WATERMARK FOR ts AS ts - INTERVAL '{lag}' HOUR TO SECOND"


def build_split(tenv, config: JobConfig, raw: str = "raw_events"):
    """The job graph on the table `raw` (line BYTES, shard_id, sequence_number; event time `ts` with watermarks);
    returns the output streams by name. Their elements are blocks of JSON lines ('\\n'-separated): a file sink
    writes a block as is; `one_per_record` splits them for sinks that need one element per record.

    Entering Python costs about as much per call as the JVM's whole work on a record, so Python is entered once per
    batch, not per record: the JVM reads each line's item_id and hashes it to one of BUCKETS buckets (ItemBucket),
    and the MicroBatcher operator (flink_jobs/java) groups lines by bucket (up to `batch_records` lines or
    `batch_bytes` bytes, at most `batch_ms` old, cut at each checkpoint and at the end of the input). One Python
    operator, keyed by bucket, parses, validates and judges each batch (Judge) with MapState item -> ItemState
    (TTL), and sends one block per output. Lines without an item_id the JVM can read (not JSON, no item_id) share a
    bucket and are rejected by the parser.
    """
    from pyflink.common import Types
    from pyflink.datastream import DataStream, KeyedProcessFunction, OutputTag
    from pyflink.datastream.data_stream import KeyedStream
    from pyflink.datastream.state import MapStateDescriptor, StateTtlConfig
    from pyflink.java_gateway import get_gateway

    tags = {name: OutputTag(name, Types.STRING()) for name in OUTPUTS if name != "clean"}
    detector = Detector(config.outlier, int(config.dedup_ttl_hours * 3_600_000), config.dedup_max_ids)
    judge = Judge(detector, config.source_name, int(config.future_slack_hours * 3_600_000))
    state_ttl_ms = int(config.state_ttl_days * 86_400_000)

    class Detect(KeyedProcessFunction):
        def open(self, runtime_context):
            from pyflink.common import Time

            descriptor = MapStateDescriptor("items", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
            descriptor.enable_time_to_live(
                StateTtlConfig.new_builder(Time.milliseconds(state_ttl_ms))
                .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
                .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
                .build()
            )
            self.items = runtime_context.get_map_state(descriptor)

        def process_element(self, batch, ctx):
            lines, shard_ids, sequence_numbers = batch
            out, states = judge(lines, shard_ids, sequence_numbers, self.items.get)
            self.items.put_all(states)
            for name, records in out.items():
                if records:
                    block = b"\n".join(records).decode()
                    # PyFlink: a process function yields (OutputTag, value) for a side output.
                    yield block if name == "clean" else (tags[name], block)

    jvm = get_gateway().jvm
    batches, batch_type = micro_batches(tenv, raw, config)
    # key_by on field 0 in the JVM: the same KeyByKeySelector PyFlink's own key_by() uses after its Python map.
    java_keyed = batches.keyBy(jvm.KeyByKeySelector(), Types.ROW([Types.STRING()]).get_java_type_info())
    detected = (
        KeyedStream(java_keyed, batch_type, DataStream(batches))
        .process(Detect(), output_type=Types.STRING())
        .name("parse-and-detect")
        .uid("parse-and-detect")
    )
    return {"clean": detected, **{name: detected.get_side_output(tag) for name, tag in tags.items()}}


def micro_batches(tenv, raw: str, config: JobConfig):
    """(the JVM stream of Row(bucket, Row(lines, shard_ids, sequence_numbers)) the MicroBatcher sends, the type of
    its inner row): the lines of the table `raw`, grouped by item bucket."""
    from pyflink.common import Types
    from pyflink.java_gateway import get_gateway

    tenv.create_java_temporary_system_function("ITEM_BUCKET", "demand.flink.ItemBucket")
    record_type = Types.ROW([Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.STRING(), Types.STRING()])
    strings = Types.OBJECT_ARRAY(Types.STRING())
    batch_type = Types.ROW([Types.OBJECT_ARRAY(Types.PRIMITIVE_ARRAY(Types.BYTE())), strings, strings])
    keyed_lines = tenv.to_append_stream(
        tenv.sql_query(
            f"SELECT ITEM_BUCKET(CAST(line AS STRING), {BUCKETS}), ROW(line, shard_id, sequence_number) FROM {raw}"
        ),
        Types.ROW([Types.STRING(), record_type]),
    )
    batches = keyed_lines._j_data_stream.transform(
        "micro-batch",
        Types.ROW([Types.STRING(), batch_type]).get_java_type_info(),
        get_gateway().jvm.demand.flink.MicroBatcher(config.batch_records, config.batch_ms, config.batch_bytes),
    ).uid("micro-batch")  # fixed operator ids: a new version of the job restores the state of the old one
    return batches, batch_type


def one_per_record(blocks):
    """A stream of blocks of lines -> a stream of lines (the JVM's SplitLines), for per-record sinks (Kinesis)."""
    from pyflink.common import Types
    from pyflink.datastream import DataStream
    from pyflink.java_gateway import get_gateway

    split = get_gateway().jvm.demand.flink.SplitLines()
    return DataStream(blocks._j_data_stream.flatMap(split, Types.STRING().get_java_type_info()))


def environment(config: JobConfig, own_jar: bool = True):
    """A StreamExecutionEnvironment with checkpointing, Python workers on this interpreter, and the job's own
    JVM operators (flink_jobs.jars; on AWS they come in the application's jar file instead: own_jar=False)."""
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
    if config.max_restarts is not None:
        conf.set_string("restart-strategy.type", "fixed-delay")
        conf.set_string("restart-strategy.fixed-delay.attempts", str(config.max_restarts))
        conf.set_string("restart-strategy.fixed-delay.delay", "1 s")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(config.parallelism)
    env.enable_checkpointing(config.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)
    if own_jar:
        from flink_jobs.jars import build_jar

        env.add_jars(build_jar().as_uri())
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
        stream.sink_to(sink).name(f"{name}-sink").uid(f"{name}-sink")
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
    """Kinesis in; one Kinesis stream per landed table out (properties.AWS_SINKS), each landed by its Firehose with the
    table's parquet schema and partitions, as the local landing does; same graph.

    The source is the SQL connector's `kinesis-legacy` table (flink-sql-connector-kinesis 5.x+): of the
    two, only it exposes the shard-id / sequence-number metadata that rejected records carry.

    A first start (no snapshot) reads the stream from its oldest record (TRIM_HORIZON): records pushed before the
    application ran are not skipped. A start without a snapshot may so read records again, and the Kinesis sinks are
    at least once: the readers deduplicate by event_id (the dataset build, the `*_once` views, the enrichment).
    """
    from pyflink.common.serialization import SimpleStringSchema
    from pyflink.datastream.connectors.kinesis import KinesisStreamsSink, PartitionKeyGenerator
    from pyflink.table import StreamTableEnvironment

    from flink_jobs.properties import AWS_SINKS

    config = JobConfig(
        out_of_orderness_s=int(props.get("out_of_orderness.seconds", 300)),
        dedup_ttl_hours=float(props.get("dedup.ttl.hours", 24)),
        dedup_max_ids=int(props.get("dedup.max.ids", JobConfig.dedup_max_ids)),
        future_slack_hours=float(props.get("future_slack.hours", JobConfig.future_slack_hours)),
        batch_bytes=int(props.get("batch.bytes", JobConfig.batch_bytes)),
        batch_records=int(props.get("batch.records", JobConfig.batch_records)),
        batch_ms=int(props.get("batch.ms", JobConfig.batch_ms)),
        outlier=OutlierSettings.model_validate_json(props.get("outlier.thresholds") or "{}"),
        checkpoint_interval_ms=60_000,  # Managed Flink overrides checkpointing from the application config
        max_restarts=None,  # the service's restart policy applies
        source_name=props["input.stream"],
    )
    env = environment(config, own_jar=False)
    tenv = StreamTableEnvironment.create(env)
    region = {"aws.region": props["aws.region"]}
    tenv.execute_sql(f"""
    CREATE TEMPORARY TABLE raw_events (
      line BYTES,
      shard_id VARCHAR(128) METADATA FROM 'shard-id' VIRTUAL,
      sequence_number VARCHAR(128) METADATA FROM 'sequence-number' VIRTUAL,
      {watermark_sql(config)}
    ) WITH ('connector' = 'kinesis-legacy', 'stream' = '{props["input.stream"]}',
            'aws.region' = '{props["aws.region"]}', 'scan.stream.initpos' = 'TRIM_HORIZON', 'format' = 'raw')""")
    streams = build_split(tenv, config)
    records = {output: one_per_record(streams[output]) for output, _, _ in AWS_SINKS.values()}
    for key, (output, event_type, table) in AWS_SINKS.items():
        sink = (
            KinesisStreamsSink.builder()
            .set_kinesis_client_properties(region)
            .set_serialization_schema(SimpleStringSchema())
            .set_partition_key_generator(PartitionKeyGenerator.random())
            .set_stream_name(props[key])
            .build()
        )
        stream = records[output]
        if event_type is not None:
            stream = stream.filter(is_event_type(event_type)).name(f"{table}-only").uid(f"{table}-only")
        # clean and outliers keep their operator ids (a snapshot restores into them); the others were file sinks
        uid = f"{output}-sink" if output in ("clean", "outliers") else f"{table}-stream-sink"
        stream.sink_to(sink).name(f"{table}-sink").uid(uid)
    return env


def is_event_type(event_type: str):
    """A filter of reference records (JSON lines as the Judge writes them) by event type."""
    needle = f'"event_type":"{event_type}"'
    return lambda line: needle in line


def main() -> None:  # pragma: no cover - the Managed Flink entry point (properties.RUN_OPTIONS["python"])
    from flink_jobs.properties import PROPERTY_GROUP

    aws_job(read_properties()[PROPERTY_GROUP]).execute("outlier-split")


if __name__ == "__main__":
    main()
