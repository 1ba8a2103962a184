"""What a Glue job script needs around its logic: Glue-style arguments and a Spark session for either runtime.

Arguments follow Glue's convention (`--JOB_NAME name --key value`, extra system arguments ignored) and
map onto the one Settings object. GlueContext is used only where the Glue runtime (awsglue) exists.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlparse

from core.object_store import ObjectStore, parquet_objects
from core.settings import Settings
from core.tables import Table

log = logging.getLogger("demand.glue")


class JobArgumentError(ValueError):
    pass


def resolve_args(argv: Sequence[str], required: Sequence[str], optional: dict[str, str]) -> dict[str, str]:
    """Parse `--key value` / `--key=value` pairs like awsglue.utils.getResolvedOptions, with defaults."""
    found: dict[str, str] = {}
    args = list(argv)
    i = 0
    while i < len(args):
        token = args[i]
        if token.startswith("--"):
            key, eq, value = token[2:].partition("=")
            if not eq:
                if i + 1 >= len(args) or args[i + 1].startswith("--"):
                    raise JobArgumentError(f"argument --{key} needs a value")
                value = args[i + 1]
                i += 1
            found[key] = value
        i += 1
    missing = [k for k in required if k not in found]
    if missing:
        raise JobArgumentError(f"missing job argument(s): {', '.join('--' + k for k in missing)}")
    # Everything passed is kept: Glue's own arguments (--TempDir, ...) are harmless, and keys naming a
    # Settings field (--prefix, --tenant, --region, ...) configure the job.
    return {**optional, **found}


def settings_from_args(args: dict[str, str]) -> Settings:
    """Glue --args onto Settings: the keys that name a setting override it."""
    fields = Settings.model_fields
    return Settings(**{k: v for k, v in args.items() if k in fields and v != ""})


def spark_session(app_name: str) -> tuple[Any, Any]:
    """(spark, glue_job or None). On Glue: GlueContext + Job (bookmarks, metrics); locally: local Spark."""
    try:
        from awsglue.context import GlueContext  # type: ignore[import-not-found]
        from awsglue.job import Job  # type: ignore[import-not-found]
        from pyspark.context import SparkContext
    except ImportError:
        from pyspark.sql import SparkSession

        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # quiet the loopback-hostname warning

        spark = (
            SparkSession.builder.master("local[*]")
            .appName(app_name)
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "8")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        return spark, None
    glue = GlueContext(SparkContext.getOrCreate())
    spark = glue.spark_session
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    return spark, Job(glue)


def read_landed(spark, store: ObjectStore, settings: Settings, table: Table) -> tuple[Any, list[str]]:
    """(a landed table's readable parquet objects as one DataFrame of its contract's columns, or None when it has
    none; the URIs of the objects skipped, each logged). Skipped: files that are not whole parquet (magic bytes
    missing) and files whose pages do not all decode. They stay where they are."""
    bucket = settings.names.bucket(table.bucket_role)
    whole, broken = parquet_objects(store, bucket, table.prefix + "/")
    skipped = [store.uri(bucket, key) for key in broken]
    for uri in skipped:
        log.warning("skipped %s: not a whole parquet file", uri)
    uris = [store.uri(bucket, key) for key in whole]
    undecodable = _undecodable(spark, uris, table.contract.names) if uris else []
    for uri in undecodable:
        log.warning("skipped %s: its pages do not all decode", uri)
    readable = [uri for uri in uris if uri not in set(undecodable)]
    if not readable:
        return None, skipped + undecodable
    return spark.read.parquet(*readable).select(*table.contract.names), skipped + undecodable


def _file(name: str) -> str:
    """input_file_name()'s URI as the object store spells it (local paths without `file:` and percent escapes)."""
    return unquote(urlparse(name).path) if name.startswith("file:") else name


def _undecodable(spark, uris: list[str], columns: Sequence[str]) -> list[str]:
    """The files whose pages do not all decode. Spark, told to skip corrupt files, counts each file's rows twice:
    from its footer (no page read), and while decoding every column. A file that gives fewer decoded rows than its
    footer promises, or no footer, is corrupt. Two scans more per build, and no file is half read."""
    from pyspark.sql import functions as F

    frame = spark.read.option("ignoreCorruptFiles", "true").parquet(*uris)
    name = F.input_file_name().alias("file")
    footer = {_file(f): n for f, n in frame.select(name).groupBy("file").count().collect()}
    # the sum makes Spark decode every column (a bare count of the hash is optimised down to a row count)
    decoded = frame.select(name, F.hash(*columns).cast("long").alias("row")).groupBy("file")
    rows = {_file(f): n for f, n, _ in decoded.agg(F.count(F.lit(1)), F.sum("row")).collect()}
    return [uri for uri in uris if uri not in footer or rows.get(uri, 0) != footer[uri]]
