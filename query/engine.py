"""Run Athena SQL: on AWS through Athena, locally the same SQL text in DuckDB over the same parquet.

The local path transpiles the Athena (Trino) dialect with sqlglot and exposes every catalog table as a
DuckDB view `<database>.<table>` over `<data_root>/<bucket>/<prefix>/**/*.parquet` with hive partitions. Files that
are not whole parquet are left out of the views; a file whose pages do not decode is found when a query fails on
it, left out, and the query runs again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from sqlglot.errors import ErrorLevel, ParseError, UnsupportedError

from core.object_store import LocalObjectStore, parquet_objects
from core.settings import Settings
from core.tables import TABLES
from query.named_queries import VIEWS

_DUCK_TYPES = {
    "string": "VARCHAR",
    "timestamp": "TIMESTAMPTZ",
    "double": "DOUBLE",
    "long": "BIGINT",
    "boolean": "BOOLEAN",
}


log = logging.getLogger("demand.query")

# Parquet files whose pages do not decode, as (path, size, modification time): left out of the views of every
# connection of this process until they change.
_UNDECODABLE: set[tuple[str, int, int]] = set()


def _stamp(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path), stat.st_size, stat.st_mtime_ns


class QueryError(ValueError):
    """A query that cannot run: bad SQL, a construct DuckDB lacks, or an Athena failure (with its reason)."""


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    engine: str
    elapsed_ms: float
    scanned_bytes: int | None = None
    query_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def to_duckdb(sql: str) -> list[str]:
    """Athena SQL -> DuckDB SQL statements; a construct with no DuckDB equivalent raises QueryError."""
    try:
        return sqlglot.transpile(sql, read="athena", write="duckdb", unsupported_level=ErrorLevel.RAISE)
    except (ParseError, UnsupportedError) as exc:
        raise QueryError(f"cannot run this Athena SQL locally: {exc}") from None


def _table_files(settings: Settings, name: str) -> list[Path]:
    """The table's whole parquet files, less those known not to decode."""
    table = TABLES[name]
    store, bucket = LocalObjectStore(settings.data_root), settings.names.bucket(table.bucket_role)
    whole, _ = parquet_objects(store, bucket, table.prefix + "/")  # a broken file is left out, not fatal
    paths = [store.path(bucket, key) for key in whole]
    return [path for path in paths if _stamp(path) not in _UNDECODABLE]


def _table_source(settings: Settings, name: str) -> str:
    table = TABLES[name]
    readable = _table_files(settings, name)
    if readable:
        files = ", ".join("'" + path.as_posix().replace("'", "''") + "'" for path in readable)
        return (
            f"SELECT * FROM read_parquet([{files}], hive_partitioning = true, hive_types_autocast = false, "
            "union_by_name = true)"
        )
    # No data yet: an empty relation with the contract's columns, so queries still bind.
    cols = [f"CAST(NULL AS {_DUCK_TYPES[f.type]}) AS {f.name}" for f in table.contract.fields]
    cols += [f"CAST(NULL AS VARCHAR) AS {p}" for p in table.partitions]
    return f"SELECT {', '.join(cols)} WHERE false"


def local_connection(settings: Settings) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    _create_views(con, settings)
    return con


def _create_views(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    db = settings.names.glue_database
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{db}"')
    for name in TABLES:
        con.execute(f'CREATE OR REPLACE VIEW "{db}"."{name}" AS {_table_source(settings, name)}')
    for view in VIEWS:
        for statement in to_duckdb(view.text(db)):
            con.execute(statement)


def _find_undecodable(settings: Settings) -> list[Path]:
    """Decode every page of every table file (after a query failed on data): the files that fail, now left out."""
    found = []
    probe = duckdb.connect()
    for name in TABLES:
        for path in _table_files(settings, name):
            try:
                quoted = path.as_posix().replace("'", "''")
                probe.sql(f"SELECT * FROM read_parquet('{quoted}')").to_arrow_table()
            except duckdb.Error as exc:
                log.warning("left out %s: its pages do not decode (%s)", path, str(exc).splitlines()[0])
                _UNDECODABLE.add(_stamp(path))
                found.append(path)
    probe.close()
    return found


def run_local(sql: str, settings: Settings, con: duckdb.DuckDBPyConnection | None = None) -> QueryResult:
    """Run Athena SQL in DuckDB. The last statement's rows are returned (views may come before it)."""
    statements = to_duckdb(sql)
    if not statements:
        raise QueryError("empty query")
    con = con or local_connection(settings)
    started = time.perf_counter()
    for retry in (True, False):
        try:
            for statement in statements[:-1]:
                con.execute(statement)
            cursor = con.execute(statements[-1])
            rows = cursor.fetchall() if cursor.description else []
            break
        except duckdb.Error as exc:
            wrong_query = isinstance(exc, (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException))
            if retry and not wrong_query and _find_undecodable(settings):
                _create_views(con, settings)  # the same query again, without the files that do not decode
                continue
            first_line = str(exc).splitlines()[0]
            raise QueryError(f"cannot run locally in DuckDB: {first_line} (transpiled SQL: {statements[-1]})") from None
    columns = [d[0] for d in cursor.description] if cursor.description else []
    return QueryResult(columns, rows, "duckdb", (time.perf_counter() - started) * 1000)


def run_athena(
    sql: str, settings: Settings, athena, workgroup: str, database: str | None = None, max_wait: float = 600
) -> QueryResult:
    """Start the query in the workgroup, poll with back-off, page through the results."""
    started = time.perf_counter()
    ctx = {"Database": database or settings.names.glue_database}
    query_id = athena.start_query_execution(QueryString=sql, WorkGroup=workgroup, QueryExecutionContext=ctx)[
        "QueryExecutionId"
    ]
    delay = 0.25
    while True:
        execution = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        state = execution["Status"]["State"]
        if state == "SUCCEEDED":
            break
        if state in ("FAILED", "CANCELLED"):
            reason = execution["Status"].get("StateChangeReason", "no reason given")
            raise QueryError(f"Athena query {query_id} {state.lower()}: {reason}")
        if time.perf_counter() - started > max_wait:
            athena.stop_query_execution(QueryExecutionId=query_id)
            raise QueryError(f"Athena query {query_id} still {state} after {max_wait:.0f} s: stopped")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
    columns: list[str] = []
    rows: list[tuple[Any, ...]] = []
    for page_no, page in enumerate(athena.get_paginator("get_query_results").paginate(QueryExecutionId=query_id)):
        result = page["ResultSet"]
        if not columns:
            columns = [c["Name"] for c in result["ResultSetMetadata"]["ColumnInfo"]]
        data = result["Rows"][1:] if page_no == 0 else result["Rows"]  # the first row holds the headers
        rows.extend(tuple(cell.get("VarCharValue") for cell in row["Data"]) for row in data)
    scanned = execution.get("Statistics", {}).get("DataScannedInBytes")
    return QueryResult(columns, rows, "athena", (time.perf_counter() - started) * 1000, scanned, query_id)
