"""Landing + build_forecast_inputs on local Spark: hand-checked series and Amazon Forecast's dataset rules."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from factories import sale

from core.contracts import OUTLIER
from core.object_store import LocalObjectStore
from core.settings import Settings
from glue_jobs.build_forecast_inputs import BuildRequest, DatasetError, build, main
from glue_jobs.forecast_inputs import RunWindow
from streaming.landing import deliver

PRODUCT = {
    "event_type": "product",
    "schema_version": 1,
    "event_id": "p-A",
    "event_time": "2023-12-01T00:00:00Z",
    "item_id": "A",
    "category": "snacks",
    "brand": "Crispy",
    "status": "active",
}
CAMPAIGN = {
    "event_type": "campaign",
    "schema_version": 1,
    "event_id": "c-1",
    "event_time": "2024-01-15T00:00:00Z",
    "promotion_id": "promo-1",
    "item_id": "A",
    "action": "start",
    "discount_pct": 0.25,
    "starts_at": "2024-01-15T00:00:00Z",
    "ends_at": "2024-01-22T00:00:00Z",
}

SALES = [
    sale("e1", "2024-01-01T10:00:00Z", "A", 3, order="o1"),  # cancelled the next week
    sale("e2", "2024-01-08T09:00:00Z", "A", -3, order="o1"),  # the cancellation: removes e1
    sale("e3", "2024-01-02T12:00:00Z", "A", 5, price=2.0),
    sale("e4", "2024-01-03T12:00:00Z", "A", 5, price=4.0),  # week 1 price: (5*2 + 5*4) / 10 = 3
    sale("e5", "2024-01-10T12:00:00Z", "A", -1),  # a return: nets week 2 (which had nothing) -> 0
    sale("e6", "2024-01-14T23:30:00-02:00", "A", 4),  # = 2024-01-15T01:30Z: week 3, not week 2
    sale("e6", "2024-01-14T23:30:00-02:00", "A", 4),  # a duplicate delivery of e6
    sale("e7", "2024-01-17T08:00:00Z", "B", 1),  # an item with one sale
    sale("e8", "2023-12-31T23:59:59Z", "A", 100),  # before the window: ignored
]


def land(tmp_path: Path, sales=SALES, reference=(PRODUCT, CAMPAIGN)) -> Settings:
    split = tmp_path / "split"
    (split / "clean").mkdir(parents=True)
    (split / "reference").mkdir()
    (split / "clean" / "part-0").write_text("\n".join(json.dumps(s) for s in sales) + "\n")
    (split / "reference" / "part-0").write_text("\n".join(json.dumps(r) for r in reference) + "\n")
    settings = Settings(data_root=tmp_path / "root")
    deliver(split, LocalObjectStore(settings.data_root), settings.names.buckets)
    return settings


def read_dataset(settings: Settings, manifest: dict, name: str) -> list[dict]:
    folder = settings.data_root / settings.names.bucket("forecast-input") / manifest["datasets"][name]["path"]
    rows = []
    for part in sorted(folder.glob("part-*.csv")):
        with part.open() as fh:
            rows.extend(csv.DictReader(fh))
    return rows


WINDOW = RunWindow(date(2024, 1, 1), date(2024, 1, 22), "W", horizon=2)


@pytest.fixture(scope="module")
def weekly(spark, tmp_path_factory):
    settings = land(tmp_path_factory.mktemp("weekly"))
    manifest = build(spark, settings, BuildRequest(WINDOW, country="DE"))
    return settings, manifest


def test_landing_writes_contract_parquet_under_firehose_layout_and_rerun_adds_nothing(tmp_path):
    settings = land(tmp_path)
    store = LocalObjectStore(settings.data_root)
    keys = list(store.list(settings.names.bucket("staged"), "sales/"))
    # One object per month partition the batch touches (the sales span Dec 2023 and Jan 2024).
    assert [k.rsplit("/", 1)[0] for k in keys] == ["sales/year=2023/month=12", "sales/year=2024/month=01"]
    before = sorted(store.list(settings.names.bucket("staged")))
    again = deliver(tmp_path / "split", store, settings.names.buckets)
    assert again.files_read == 0 and again.files_already_landed == 2  # nothing new
    (tmp_path / "split" / "_landed.json").unlink()  # as if the first run died before recording its batch
    deliver(tmp_path / "split", store, settings.names.buckets)
    assert sorted(store.list(settings.names.bucket("staged"))) == before  # the same keys, rewritten
    rows = sum(pq.read_table(store.path(settings.names.bucket("staged"), k)).num_rows for k in keys)
    assert rows == len(SALES)  # duplicates are the dataset build's to drop, landing keeps every line
    (tmp_path / "split" / "clean" / "part-1").write_text(json.dumps({**SALES[0], "event_id": "late"}) + "\n")
    later = deliver(tmp_path / "split", store, settings.names.buckets)
    assert later.files_read == 1 and later.rows == {"sales": 1}
    assert set(before) < set(store.list(settings.names.bucket("staged")))


def test_target_series_nets_returns_removes_cancellations_and_zero_fills(weekly):
    settings, manifest = weekly
    target = read_dataset(settings, manifest, "target")
    assert [(r["item_id"], r["timestamp"], float(r["demand"])) for r in target] == [
        ("A", "2024-01-01", 10.0),  # e3 + e4; e1 cancelled by e2
        ("A", "2024-01-08", 0.0),  # only the return: clipped at zero
        ("A", "2024-01-15", 4.0),  # e6 once, after UTC conversion
        ("B", "2024-01-15", 1.0),  # one sale of 1
    ]
    assert manifest["datasets"]["target"]["rows"] == 4


def test_related_series_covers_horizon_with_prices_promotions_holidays(weekly):
    settings, manifest = weekly
    related = {(r["item_id"], r["timestamp"]): r for r in read_dataset(settings, manifest, "related")}
    a = [related[("A", d)] for d in ("2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22", "2024-01-29")]
    assert [float(r["price"]) for r in a] == [3.0, 3.0, 2.0, 2.0, 2.0]  # weighted; cancelled o1 ignored; carried
    assert [int(r["promotion_flag"]) for r in a] == [0, 0, 1, 0, 0]
    assert float(a[2]["discount"]) == 0.25
    assert int(a[0]["holiday_flag"]) == 1  # New Year's Day, DE
    assert max(ts for item, ts in related if item == "B") == "2024-01-29"  # last period + horizon 2


def test_metadata_covers_every_target_item(weekly):
    settings, manifest = weekly
    meta = {r["item_id"]: r for r in read_dataset(settings, manifest, "metadata")}
    assert meta["A"]["category"] == "snacks" and meta["A"]["brand"] == "Crispy"
    assert meta["B"]["category"] == "unknown"


def test_manifest_and_marker_come_last_and_schemas_match_csv_headers(weekly):
    settings, manifest = weekly
    base = settings.data_root / settings.names.bucket("forecast-input") / manifest["prefix"]
    assert (base / "_SUCCESS").exists()
    assert (base / "_SUCCESS").stat().st_mtime_ns >= (base / "manifest.json").stat().st_mtime_ns
    for name, entry in manifest["datasets"].items():
        schema = json.loads(
            (settings.data_root / settings.names.bucket("forecast-input") / entry["schema"]).read_text()
        )
        header = next(csv.reader((next((base / name).glob("part-*.csv"))).open()))
        assert header == [a["AttributeName"] for a in schema["Attributes"]]


def test_rerun_replaces_never_appends(spark, weekly):
    settings, manifest = weekly
    again = build(spark, settings, BuildRequest(WINDOW, country="DE"))
    assert {**again, "built_at": None} == {**manifest, "built_at": None}  # the same build: same key, same place
    assert len(read_dataset(settings, manifest, "target")) == 4


def test_late_data_or_other_options_make_a_new_build_with_its_own_key(spark, weekly, tmp_path):
    settings, manifest = weekly
    other_country = build(spark, settings, BuildRequest(WINDOW, country="GB"))
    with_location = build(spark, settings, BuildRequest(WINDOW, country="DE", with_location=True))
    late = land(tmp_path, [*SALES, sale("late", "2024-01-16T10:00:00Z", "B", 5)])
    corrected = build(spark, late, BuildRequest(WINDOW, country="DE"))
    builds = [manifest, other_country, with_location, corrected]
    assert len({m["idempotency_key"] for m in builds}) == len({m["prefix"] for m in builds}) == 4
    assert ("B", "2024-01-15", 6.0) in [
        (r["item_id"], r["timestamp"], float(r["demand"])) for r in read_dataset(late, corrected, "target")
    ]
    assert read_dataset(settings, manifest, "target") != read_dataset(late, corrected, "target")


def test_daily_with_location_one_row_per_item_store_day(spark, tmp_path):
    sales = [
        sale("d1", "2024-01-01T08:00:00Z", "A", 2, store="s1"),
        sale("d2", "2024-01-01T09:00:00Z", "A", 1, store="s2"),
        sale("d3", "2024-01-03T09:00:00Z", "A", 1, store="s1"),
    ]
    settings = land(tmp_path, sales)
    window = RunWindow(date(2024, 1, 1), date(2024, 1, 4), "D", horizon=1)
    manifest = build(spark, settings, BuildRequest(window, with_location=True))
    target = [
        (r["item_id"], r["location"], r["timestamp"], float(r["demand"]))
        for r in read_dataset(settings, manifest, "target")
    ]
    assert target == [
        ("A", "s1", "2024-01-01", 2.0),
        ("A", "s1", "2024-01-02", 0.0),
        ("A", "s1", "2024-01-03", 1.0),
        ("A", "s2", "2024-01-01", 1.0),
        ("A", "s2", "2024-01-02", 0.0),
        ("A", "s2", "2024-01-03", 0.0),
    ]
    related = read_dataset(settings, manifest, "related")
    assert {(r["location"], r["timestamp"]) for r in related} >= {("s1", "2024-01-04"), ("s2", "2024-01-04")}
    assert (
        int(next(r for r in related if r["location"] == "s2" and r["timestamp"] == "2024-01-01")["promotion_flag"]) == 0
    )


def test_empty_window_and_missing_staged_data_give_clear_errors(spark, tmp_path):
    settings = land(tmp_path)
    with pytest.raises(DatasetError, match="no staged sales in the window 2025-01-06"):
        build(spark, settings, BuildRequest(RunWindow(date(2025, 1, 6), date(2025, 2, 3), "W", 2)))
    empty = Settings(data_root=tmp_path / "nothing")
    with pytest.raises(DatasetError, match="no staged sales under .*run the landing first"):
        build(spark, empty, BuildRequest(WINDOW))


def test_glue_style_arguments(spark, tmp_path):
    settings = land(tmp_path)
    manifest = main(
        [
            "--JOB_NAME",
            "build",
            "--window_start",
            "2024-01-01",
            "--window_end=2024-01-22",
            "--horizon",
            "2",
            "--data_root",
            str(settings.data_root),
            "--job-bookmark-option",
            "job-bookmark-disable",
        ]
    )
    assert manifest["datasets"]["target"]["rows"] == 4
    with pytest.raises(ValueError, match="missing job argument.*--JOB_NAME"):
        main(["--window_end", "2024-01-22"])
    with pytest.raises(ValueError, match="weekly windows start and end on Mondays"):
        RunWindow(date(2024, 1, 1), date(2024, 1, 20), "W", 2)


def test_the_window_is_in_utc_whatever_the_machines_time_zone(spark, tmp_path, monkeypatch):
    import time

    from glue_jobs.forecast_inputs import in_window

    edges = ["2023-12-31T20:00:00Z", "2024-01-01T00:00:00Z", "2024-01-21T20:00:00Z", "2024-01-22T00:00:00Z"]
    settings = land(tmp_path, [sale(f"t{i}", when, "A", 1) for i, when in enumerate(edges)])
    staged = spark.read.parquet(str(settings.data_root / settings.names.bucket("staged") / "sales"))
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # UTC+9: a naive midnight would be 15:00 UTC the day before
    time.tzset()
    try:
        kept = sorted(r["event_id"] for r in in_window(staged, WINDOW).collect())
    finally:
        monkeypatch.undo()
        time.tzset()
    assert kept == ["t1", "t2"]  # from 1 Jan 00:00 UTC, up to (not including) 22 Jan 00:00 UTC


def test_a_broken_parquet_file_in_staged_is_skipped_and_named_not_fatal(spark, tmp_path):
    settings = land(tmp_path)
    expected = build(spark, settings, BuildRequest(WINDOW, country="DE"))
    staged = settings.data_root / settings.names.bucket("staged") / "sales" / "year=2024" / "month=01"
    whole = next(staged.glob("*.parquet")).read_bytes()
    (staged / "part-cut.parquet").write_bytes(whole[: len(whole) // 2])  # a copy cut short
    (staged / "part-text.parquet").write_bytes(b"item_id,quantity\nA,3\n")  # not parquet at all
    again = build(spark, settings, BuildRequest(WINDOW, country="DE"))
    assert sorted(Path(uri).name for uri in again["skipped_files"]) == ["part-cut.parquet", "part-text.parquet"]
    assert read_dataset(settings, again, "target") == read_dataset(settings, expected, "target")

    from query.engine import run_local

    assert run_local("SELECT count(*) FROM demand.sales_once", settings).rows == [
        (len({s["event_id"] for s in SALES}),)
    ]


def _corrupt_a_page(path: Path) -> None:
    """Overwrite the header of the quantity column's first page: magic bytes and footer stay whole."""
    meta = pq.read_metadata(path)
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    column = meta.row_group(0).column(names.index("quantity"))
    start = min(filter(None, (column.dictionary_page_offset, column.data_page_offset)))
    data = bytearray(path.read_bytes())
    data[start : start + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))


def test_a_parquet_file_whose_pages_do_not_decode_is_skipped_and_named_by_the_build_and_the_queries(spark, tmp_path):
    """A file with whole magic bytes and footer but a corrupt page: the build leaves it out whole (no half-read
    rows) and names it, and a local query that fails on it runs again without it."""
    settings = land(tmp_path)
    expected = build(spark, settings, BuildRequest(WINDOW, country="DE"))
    extra = land(tmp_path / "extra", [sale(f"x{i}", "2024-01-09T10:00:00Z", "A", 1 + i % 5) for i in range(500)])
    (landed,) = (extra.data_root / extra.names.bucket("staged") / "sales").rglob("*.parquet")
    _corrupt_a_page(landed)
    staged = settings.data_root / settings.names.bucket("staged") / "sales" / "year=2024" / "month=01"
    (staged / "part-corrupt.parquet").write_bytes(landed.read_bytes())

    again = build(spark, settings, BuildRequest(WINDOW, country="DE"))
    assert [Path(uri).name for uri in again["skipped_files"]] == ["part-corrupt.parquet"]
    assert read_dataset(settings, again, "target") == read_dataset(settings, expected, "target")

    from query.engine import run_local

    total = run_local("SELECT count(*), sum(quantity) FROM demand.sales", settings).rows  # fails once, runs again
    assert total == [(len(SALES), sum(s["quantity"] for s in SALES))]
    import duckdb

    with pytest.raises(duckdb.Error):  # the file does fail on its own (DuckDB's error names no file)
        duckdb.sql(f"SELECT sum(quantity) FROM read_parquet('{staged / 'part-corrupt.parquet'}')").fetchall()


def outlier(event: dict, code: str, demand_units: float | None, baseline: float | None = None) -> dict:
    """The split's outlier record of a sale (the fields flink_jobs.detector writes)."""
    record = {**event, "outlier_score": 60.0, "outlier_code": code, "outlier_reason": code, "detector": "test"}
    return {**record, "detector_version": "0", "baseline_quantity": baseline, "demand_units": demand_units}


def test_outlier_lines_add_their_demand_units_to_the_target_but_never_set_the_price(spark, tmp_path):
    """A spike adds its usual line, a price deviation its units, a price-0 line nothing; an outlier landed twice, or
    also landed clean, counts once; an outlier file landed before the field existed reads as no credit."""
    clean = [sale("c1", "2024-01-02T10:00:00Z", "A", 5), sale("c2", "2024-01-09T10:00:00Z", "A", 3)]
    spike = outlier(sale("o1", "2024-01-03T10:00:00Z", "A", 500, order="big"), "quantity_spike", 5.0, baseline=5.0)
    outliers = [
        spike,
        spike,  # a second delivery
        outlier(sale("o2", "2024-01-10T10:00:00Z", "A", 4, price=20.0), "price_deviation", 4.0),
        outlier(sale("o3", "2024-01-10T11:00:00Z", "A", 2, price=0.0), "zero_price", 0.0),
        outlier(clean[1], "quantity_spike", 3.0),  # the same event also landed clean (a split run twice)
    ]
    settings = land(tmp_path, clean)
    (tmp_path / "split" / "outliers").mkdir()
    (tmp_path / "split" / "outliers" / "part-0").write_text("\n".join(json.dumps(o) for o in outliers) + "\n")
    deliver(tmp_path / "split", LocalObjectStore(settings.data_root), settings.names.buckets)
    old = outlier(sale("o4", "2024-01-16T10:00:00Z", "A", 900), "quantity_spike", None, baseline=5.0)
    old_schema = OUTLIER.arrow_schema().remove(OUTLIER.arrow_schema().get_field_index("demand_units"))
    landed = settings.data_root / settings.names.bucket("analysis") / "outliers" / "year=2024" / "month=01"
    event_time = pd.Timestamp(old["event_time"])
    row = {f.name: [event_time if f.name == "event_time" else old.get(f.name)] for f in old_schema}
    pq.write_table(pa.Table.from_pydict(row, schema=old_schema), landed / "part-before-demand-units.parquet")

    manifest = build(spark, settings, BuildRequest(WINDOW, country="DE"))
    target = [(r["timestamp"], float(r["demand"])) for r in read_dataset(settings, manifest, "target")]
    assert target == [("2024-01-01", 5.0 + 5.0), ("2024-01-08", 3.0 + 4.0), ("2024-01-15", 0.0)]
    related = [float(r["price"]) for r in read_dataset(settings, manifest, "related")]
    assert related == [2.0] * 5  # neither the spike nor the price deviation's 20.0 moves the price
