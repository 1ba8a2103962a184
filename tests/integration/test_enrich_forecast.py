"""enrich_forecast on local Spark and the Athena views in DuckDB: hand-computed joins on a small case."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import outlier, sale

from core.object_store import LocalObjectStore
from core.settings import Settings
from core.tables import CATALOG_FILE
from glue_jobs.enrich_forecast import EnrichError, enrich_run, main
from query.engine import run_local
from query.named_queries import NAMED, QUERIES, VIEWS
from streaming.landing import deliver

RUN_ID = "abc123"
INPUT_BASE = "datasets/W/2024-01-22/"


def write(store, bucket, key, text):
    store.put(bucket, key, text.encode())


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Settings:
    tmp = tmp_path_factory.mktemp("enrich")
    settings = Settings(data_root=tmp / "root")
    store = LocalObjectStore(settings.data_root)
    split = tmp / "split"
    for folder in ("clean", "outliers", "reference"):
        (split / folder).mkdir(parents=True)
    actuals = [sale("s1", "2024-01-22T10:00:00Z", "A", 4), sale("s2", "2024-01-23T10:00:00Z", "A", 3)]
    (split / "clean" / "part-0").write_text("\n".join(json.dumps(s) for s in actuals))
    outliers = [
        outlier("o1", "2024-01-03T10:00:00Z", "A", "quantity_spike"),
        outlier("o2", "2024-01-04T10:00:00Z", "A", "quantity_spike"),
        outlier("o3", "2024-01-05T10:00:00Z", "A", "price_deviation"),
        outlier("o4", "2023-12-01T10:00:00Z", "B", "quantity_spike"),  # before the run window: not counted
    ]
    (split / "outliers" / "part-0").write_text("\n".join(json.dumps(o) for o in outliers))
    product = {"event_type": "product", "schema_version": 1, "event_id": "p", "event_time": "2023-01-01T00:00:00Z",
               "item_id": "A", "category": "snacks", "brand": "Crispy", "status": "active"}  # fmt: skip
    (split / "reference" / "part-0").write_text(json.dumps(product))
    deliver(split, store, settings.names.buckets)

    input_bucket = settings.names.bucket("forecast-input")
    write(store, input_bucket, INPUT_BASE + "target/part-0.csv",
          "item_id,timestamp,demand\nA,2024-01-01,10\nA,2024-01-08,6\nA,2024-01-15,2\nB,2024-01-15,1\n")  # fmt: skip
    input_manifest = {"frequency": "W", "window_start": "2024-01-01", "window_end": "2024-01-22", "horizon": 2,
                      "with_location": False, "datasets": {"target": {"path": INPUT_BASE + "target/"}}}  # fmt: skip
    write(store, input_bucket, INPUT_BASE + "manifest.json", json.dumps(input_manifest))
    export_bucket = settings.names.bucket("forecast-export")
    write(store, export_bucket, f"exports/{RUN_ID}/forecast/forecast.csv",
          "item_id,date,p10,p50,p90\nA,2024-01-22T00:00:00Z,2,5,9\nA,2024-01-29T00:00:00Z,1,4,8\n"
          "B,2024-01-22T00:00:00Z,0,1,2\nB,2024-01-29T00:00:00Z,0,1,3\n")  # fmt: skip
    export_manifest = {
        "run_id": RUN_ID, "run_started_at": "2024-01-22T06:00:00Z", "backend": "statsforecast",
        "predictor_id": "sf-1", "accuracy": {"avg_wQL": 0.21, "WAPE": 0.3}, "frequency": "W",
        "input_bucket": input_bucket, "input_manifest_key": INPUT_BASE + "manifest.json",
        "forecast_keys": [f"exports/{RUN_ID}/forecast/forecast.csv"],
    }  # fmt: skip
    write(store, export_bucket, f"exports/{RUN_ID}/manifest.json", json.dumps(export_manifest))
    return settings


@pytest.fixture(scope="module")
def enriched(spark, staged):
    result = enrich_run(spark, staged, f"exports/{RUN_ID}/manifest.json", recent_periods=2)
    return staged, result


def rows(settings, sql):
    return run_local(sql, settings).records()


def test_enriched_rows_are_the_hand_computed_join(enriched):
    settings, result = enriched
    assert result["rows"] == 4
    got = rows(settings, "SELECT * FROM demand.enriched_forecasts ORDER BY item_id, forecast_date")
    a = got[0]
    assert (a["item_id"], a["forecast_date"].date().isoformat(), a["p10"], a["p50"], a["p90"]) == (
        "A", "2024-01-22", 2.0, 5.0, 9.0,
    )  # fmt: skip
    assert (a["category"], a["brand"]) == ("snacks", "Crispy")
    assert a["last_demand"] == 2.0 and a["recent_demand"] == 4.0 and a["recent_periods"] == 2  # (6 + 2) / 2
    assert a["outlier_count"] == 3 and a["outlier_top_code"] == "quantity_spike"
    assert (a["run_id"], a["predictor_id"], a["backend"], a["avg_wql"], a["wape"]) == (
        RUN_ID, "sf-1", "statsforecast", 0.21, 0.3,
    )  # fmt: skip
    assert (a["run_date"], a["run"]) == ("2024-01-22", RUN_ID)
    b = got[2]
    assert (b["category"], b["outlier_count"], b["outlier_top_code"], b["last_demand"]) == ("unknown", 0, None, 1.0)


def test_rerun_leaves_the_same_table(spark, enriched):
    settings, _ = enriched
    before = rows(settings, "SELECT * FROM demand.enriched_forecasts ORDER BY item_id, forecast_date")
    enrich_run(spark, settings, f"exports/{RUN_ID}/manifest.json", recent_periods=2)
    assert rows(settings, "SELECT * FROM demand.enriched_forecasts ORDER BY item_id, forecast_date") == before


def test_views_and_named_queries_run_locally_with_expected_rows(enriched):
    settings, _ = enriched
    latest = rows(settings, NAMED["next_period_forecast"].text("demand"))
    assert [(r["item_id"], r["p50"]) for r in latest] == [("A", 5.0), ("B", 1.0)]
    vs_actual = rows(settings, "SELECT * FROM demand.forecast_vs_actual ORDER BY item_id")
    assert [(r["item_id"], r["actual"], r["within_p10_p90"]) for r in vs_actual] == [("A", 7.0, True)]
    coverage = rows(settings, NAMED["interval_coverage"].text("demand"))
    assert coverage == [{"run_id": RUN_ID, "periods": 1, "coverage": 1.0, "wape": pytest.approx(2 / 7)}]
    codes = rows(settings, NAMED["outliers_by_code"].text("demand"))
    assert codes[0] == {"outlier_code": "quantity_spike", "outliers": 3, "items": 2}
    history = rows(settings, NAMED["accuracy_history"].text("demand"))
    assert [(h["run_id"], h["items"], h["forecast_rows"]) for h in history] == [(RUN_ID, 2, 4)]
    for query in VIEWS + QUERIES:  # every shipped statement runs
        run_local(query.text("demand"), settings)


def test_local_catalog_registers_the_enriched_table(enriched):
    settings, _ = enriched
    catalog = json.loads(Path(settings.data_root, CATALOG_FILE).read_text())
    table = catalog["tables"]["enriched_forecasts"]
    assert [p["Name"] for p in table["PartitionKeys"]] == ["run_date", "run"]


def test_missing_export_is_a_clear_error(spark, staged):
    with pytest.raises(EnrichError, match="no export manifest at"):
        enrich_run(spark, staged, "exports/nope/manifest.json")
    store, bucket = LocalObjectStore(staged.data_root), staged.names.bucket("forecast-export")
    store.put(bucket, "exports/gone/manifest.json", json.dumps({"forecast_keys": ["exports/gone/f/p.csv"]}).encode())
    with pytest.raises(EnrichError, match="names 1 CSV files that do not exist, the first .*exports/gone/f/p.csv"):
        enrich_run(spark, staged, "exports/gone/manifest.json")
    with pytest.raises(ValueError, match="missing job argument.*--export_key"):
        main(["--JOB_NAME", "enrich"])


def test_on_aws_a_runs_partition_is_registered_at_its_own_folder(moto_server):
    """The Glue partition's location is the run's folder under the table's bucket (it was the table's location with
    the table prefix repeated: s3://.../forecasts/forecasts/run_date=...)."""
    import uuid

    from core.aws import client
    from core.settings import Settings
    from core.tables import COHERENT_FORECASTS
    from glue_jobs.runtime import register_partition

    settings = Settings(runtime="aws", endpoint_url=moto_server, prefix=f"t{uuid.uuid4().hex[:6]}-part")
    glue = client("glue", settings)
    glue.create_database(DatabaseInput={"Name": settings.names.glue_database})
    folder = f"{COHERENT_FORECASTS.prefix}/run_date=2024-01-22/run=run42/"
    register_partition(settings, COHERENT_FORECASTS, ["2024-01-22", "run42"], folder)
    register_partition(settings, COHERENT_FORECASTS, ["2024-01-22", "run42"], folder)  # a re-run: no error
    partition = glue.get_partition(DatabaseName=settings.names.glue_database, TableName=COHERENT_FORECASTS.name,
                                   PartitionValues=["2024-01-22", "run42"])["Partition"]  # fmt: skip
    bucket = settings.names.bucket(COHERENT_FORECASTS.bucket_role)
    assert partition["StorageDescriptor"]["Location"] == f"s3://{bucket}/{folder}"
