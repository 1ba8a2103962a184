"""What a Glue job script needs around its logic: Glue-style arguments and a Spark session for either runtime.

Arguments follow Glue's convention (`--JOB_NAME name --key value`, extra system arguments ignored) and
map onto the one Settings object. GlueContext is used only where the Glue runtime (awsglue) exists.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

from core.object_store import ObjectStore, object_store, parquet_objects
from core.settings import Settings
from core.tables import Table, write_local_catalog

log = logging.getLogger("demand.glue")
T = TypeVar("T")


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
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # pandas UDFs run here, not in PATH's python

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


def read_landed(
    spark, store: ObjectStore, settings: Settings, table: Table, excluded: Collection[str] = ()
) -> tuple[Any, list[str]]:
    """(a landed table's whole parquet objects, less `excluded`, as one DataFrame of its contract's columns (null in
    files landed before the field was added), or None when none is left; the URIs of the objects skipped, each
    logged). Skipped: files that are not whole parquet (magic bytes missing), and the excluded ones (files a Spark job
    failed to decode, skipping_undecodable). They stay where they are."""
    bucket = settings.names.bucket(table.bucket_role)
    whole, broken = parquet_objects(store, bucket, table.prefix + "/")
    skipped = [store.uri(bucket, key) for key in broken]
    for uri in skipped:
        log.warning("skipped %s: not a whole parquet file", uri)
    uris = [store.uri(bucket, key) for key in whole]
    readable = [uri for uri in uris if uri not in excluded]
    skipped += [uri for uri in uris if uri in excluded]
    if not readable:
        return None, skipped
    return spark.read.schema(table.contract.spark_schema()).parquet(*readable), skipped


def _file(name: str) -> str:
    """A URI as Spark spells it in errors, as the object store does (local paths without `file:` and escapes)."""
    return unquote(urlparse(name).path) if name.startswith("file:") else name


# Spark's error when a task cannot read a file (a parquet page that does not decode): it names the file.
_UNREADABLE = re.compile(r"Encountered error while reading file (\S+?)\. Details")


def skipping_undecodable(spark, attempt: Callable[[set[str]], T], limit: int = 100) -> T:
    """attempt(excluded), run again without each landed file that a Spark job of it failed to read (Spark names the
    file; a parquet file whose magic bytes are whole but whose pages do not decode). A file is left out whole, so
    no half-read rows get in, and costs nothing when every file reads; each found costs one run more."""
    excluded: set[str] = set()
    while True:
        try:
            return attempt(excluded)
        except Exception as exc:
            found = _UNREADABLE.search(str(exc))
            uri = _file(found.group(1)) if found else None
            if uri is None or uri in excluded or len(excluded) >= limit:
                raise
            log.warning("skipped %s: its pages do not decode; running again without it", uri)
            excluded.add(uri)
            spark.catalog.clearCache()


def register_partition(settings: Settings, table: Table, values: list[str], partition: str) -> None:
    """A per-run table and one partition of it (`partition`: its key prefix in the table's bucket) in the Glue Data
    Catalog; locally the catalog file. A re-run finds the partition there already: the data was replaced in place."""
    if settings.runtime == "local":
        write_local_catalog(settings)
        return
    from core.aws import client

    glue = client("glue", settings)
    table_input = table.glue_definition(settings)
    db = settings.names.glue_database
    try:
        glue.update_table(DatabaseName=db, TableInput=table_input)
    except glue.exceptions.EntityNotFoundException:
        glue.create_table(DatabaseName=db, TableInput=table_input)
    location = object_store(settings).uri(settings.names.bucket(table.bucket_role), partition)
    storage = {**table_input["StorageDescriptor"], "Location": location}
    with contextlib.suppress(glue.exceptions.AlreadyExistsException):
        glue.create_partition(DatabaseName=db, TableName=table.name,
                              PartitionInput={"Values": values, "StorageDescriptor": storage})  # fmt: skip
