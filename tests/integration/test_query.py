"""`demand query`: Athena SQL run locally in DuckDB over the landed parquet, and the Athena path on moto."""

from __future__ import annotations

import json

import pytest
from factories import outlier, sale
from typer.testing import CliRunner

from core.aws import client
from core.object_store import LocalObjectStore
from core.settings import Settings
from core.tables import TABLES, write_local_catalog
from demand.cli import app
from query.engine import QueryError, run_athena, run_local
from streaming.landing import deliver


@pytest.fixture
def landed(tmp_path):
    split = tmp_path / "split"
    (split / "clean").mkdir(parents=True)
    rows = [
        sale("a", "2024-01-01T10:00:00Z", "A", 2),
        sale("b", "2024-01-01T23:30:00Z", "A", 3),
        sale("c", "2024-01-02T08:00:00Z", "B", 1, 5.0),
    ]
    (split / "clean" / "part-0").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    settings = Settings(data_root=tmp_path / "root")
    deliver(split, LocalObjectStore(settings.data_root), settings.names.buckets)
    return settings


ATHENA_SQL = """
SELECT item_id, date_trunc('day', event_time) AS day, sum(quantity) AS units,
       approx_percentile(unit_price, 0.5) AS median_price
FROM demand.sales
WHERE event_time >= from_iso8601_timestamp('2024-01-01T00:00:00Z') AND year = '2024'
GROUP BY 1, 2
ORDER BY 1, 2
"""


def test_athena_sql_runs_locally_on_the_landed_parquet(landed):
    result = run_local(ATHENA_SQL, landed)
    assert result.columns == ["item_id", "day", "units", "median_price"]
    assert [(r[0], r[1].date().isoformat(), r[2]) for r in result.rows] == [
        ("A", "2024-01-01", 5.0),
        ("B", "2024-01-02", 1.0),
    ]


def test_a_record_delivered_twice_counts_once_in_the_views_and_the_api_queries(tmp_path):
    split = tmp_path / "split"
    for folder in ("clean", "outliers"):
        (split / folder).mkdir(parents=True)
    a, b, o = (
        sale("a", "2024-01-01T10:00:00Z", "A", 2),
        sale("b", "2024-01-02T10:00:00Z", "A", 3),
        outlier("o", "2024-01-03T10:00:00Z", "A", "quantity_spike"),
    )
    (split / "clean" / "part-0").write_text(json.dumps(a) + "\n" + json.dumps(b) + "\n")
    (split / "clean" / "part-1").write_text(json.dumps(a) + "\n")  # the Kinesis sink delivered it again
    (split / "outliers" / "part-0").write_text((json.dumps(o) + "\n") * 2)
    settings = Settings(data_root=tmp_path / "root")
    deliver(split, LocalObjectStore(settings.data_root), settings.names.buckets)
    assert run_local("SELECT count(*) FROM demand.sales", settings).rows == [(3,)]  # landing keeps every delivery
    assert run_local("SELECT count(*), sum(quantity) FROM demand.sales_once", settings).rows == [(2, 5.0)]
    assert run_local("SELECT sum(outliers) FROM demand.outlier_summary", settings).rows == [(1,)]

    from api.queries import QueryLayer

    layer = QueryLayer(settings)
    assert sum(r["demand"] for r in layer.history("A", "2024-02-01")) == 5.0
    assert [r["event_id"] for r in layer.outliers({}, 10)] == ["o"]


def test_tables_without_data_still_bind(landed):
    assert run_local("SELECT count(*) AS n FROM demand.outliers", landed).rows == [(0,)]


def test_unsupported_construct_names_itself(landed):
    with pytest.raises(QueryError, match="ml_predict"):
        run_local("SELECT ml_predict(quantity) FROM demand.sales", landed)
    with pytest.raises(QueryError, match="cannot run this Athena SQL locally"):
        run_local("SELECT FROM WHERE (", landed)


def test_cli_formats(landed):
    runner = CliRunner()
    base = ["--data-root", str(landed.data_root), "query"]
    as_json = runner.invoke(app, [*base, "SELECT item_id, count(*) AS n FROM demand.sales GROUP BY 1 ORDER BY 1",
                                  "--format", "json"])  # fmt: skip
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout.splitlines()[0]) == [{"item_id": "A", "n": 2}, {"item_id": "B", "n": 1}]
    as_csv = runner.invoke(app, [*base, "SELECT item_id FROM demand.sales ORDER BY 1 LIMIT 1", "--format", "csv"])
    assert as_csv.stdout.splitlines()[:2] == ["item_id", "A"]
    table = runner.invoke(app, [*base, "SELECT count(*) AS n FROM demand.sales"])
    assert table.exit_code == 0 and "3" in table.stdout
    # Written to a pipe (as here), a table is not cut to 80 columns: every value of a wide row is there in full.
    wide = ", ".join(f"'{name}-{'x' * 20}' AS column_{name}" for name in "abcdefg")
    piped = runner.invoke(app, [*base, f"SELECT {wide}"], env={"COLUMNS": ""})
    assert piped.exit_code == 0 and all(f"{name}-{'x' * 20}" in piped.stdout for name in "abcdefg"), piped.stdout
    bad = runner.invoke(app, [*base, "SELECT nope(1)"])
    assert bad.exit_code == 1 and "nope" in bad.output


def test_local_catalog_file_holds_the_glue_definitions(landed):
    catalog = write_local_catalog(landed)
    sales = catalog["tables"]["sales"]
    assert [c["Name"] for c in sales["StorageDescriptor"]["Columns"]] == TABLES["sales"].contract.names
    assert [p["Name"] for p in sales["PartitionKeys"]] == ["year", "month"]
    assert set(catalog["tables"]) >= set(TABLES)


def test_athena_path_starts_polls_and_pages(settings):
    """moto's Athena returns no rows, but the start/poll/paginate sequence runs against a real endpoint."""
    athena = client("athena", settings)
    athena.create_work_group(Name=settings.names.athena_workgroup, Configuration={})
    result = run_athena("SELECT 1", settings, athena, settings.names.athena_workgroup)
    assert result.engine == "athena" and result.query_id
    assert result.rows == []
