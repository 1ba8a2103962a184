"""The forecast API on real enriched data (enrich job on local Spark) with its cache in moto's DynamoDB."""

from __future__ import annotations

import json
import socket
import time
import uuid

import httpx
import pytest
from factories import outlier, sale
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from core import aws
from core.cache_generation import LATEST_RUN_KEY, record_enriched_run
from core.object_store import LocalObjectStore
from core.settings import Settings
from demand.cli import app as cli
from glue_jobs.enrich_forecast import enrich_run
from local_stack.stack import ensure_resources
from streaming.landing import deliver

RUN_ID = "run42"
INPUT_BASE = "datasets/W/2024-01-22/"


def build_enriched(spark, settings: Settings) -> None:
    """Land sales, outliers and a product, then enrich a two-item forecast export: the API's whole input."""
    store = LocalObjectStore(settings.data_root)
    split = settings.data_root.parent / f"split-{settings.prefix}"
    for folder in ("clean", "outliers", "reference"):
        (split / folder).mkdir(parents=True)
    actuals = [
        sale("s1", "2024-01-02T10:00:00Z", "A", 10),
        sale("s2", "2024-01-09T10:00:00Z", "A", 6),
        sale("s3", "2024-01-16T10:00:00Z", "A", 2),
        sale("s4", "2024-01-17T10:00:00Z", "A", 3, store="s2"),
        sale("s5", "2024-01-16T10:00:00Z", "B", 1),
    ]
    (split / "clean" / "part-0").write_text("\n".join(json.dumps(s) for s in actuals))
    outliers = [
        outlier("o1", "2024-01-03T10:00:00Z", "A", "quantity_spike"),
        outlier("o2", "2024-01-10T10:00:00Z", "A", "quantity_spike", store="s2"),
        outlier("o3", "2024-01-11T10:00:00Z", "A", "price_deviation"),
        outlier("o4", "2024-01-12T10:00:00Z", "B", "quantity_spike"),
    ]
    (split / "outliers" / "part-0").write_text("\n".join(json.dumps(o) for o in outliers))
    product = {"event_type": "product", "schema_version": 1, "event_id": "p", "event_time": "2023-01-01T00:00:00Z",
               "item_id": "A", "category": "snacks", "brand": "Crispy", "status": "active"}  # fmt: skip
    (split / "reference" / "part-0").write_text(json.dumps(product))
    deliver(split, store, settings.names.buckets)

    input_bucket = settings.names.bucket("forecast-input")
    store.put(input_bucket, INPUT_BASE + "target/part-0.csv",
              b"item_id,timestamp,demand\nA,2024-01-01,10\nA,2024-01-08,6\nA,2024-01-15,5\n"
              b"B,2024-01-15,1\n")  # fmt: skip
    input_manifest = {"frequency": "W", "window_start": "2024-01-01", "window_end": "2024-01-22", "horizon": 2,
                      "with_location": False, "datasets": {"target": {"path": INPUT_BASE + "target/"}}}  # fmt: skip
    store.put(input_bucket, INPUT_BASE + "manifest.json", json.dumps(input_manifest).encode())
    enrich_export(spark, settings, RUN_ID, "2024-01-22T06:00:00Z",
                  b"item_id,date,p10,p50,p90\nA,2024-01-22T00:00:00Z,2,5,9\nA,2024-01-29T00:00:00Z,1,4,8\n"
                  b"B,2024-01-22T00:00:00Z,0,1,2\nB,2024-01-29T00:00:00Z,0,1,3\n", COHERENT_CSV)  # fmt: skip


# The run's backtest rows (forecast_orchestrator/export.py's metrics.csv, the columns the report reads).
METRICS_CSV = (
    b"window,cutoff,model,avg_wQL,WAPE\n1,2023-12-04,LightGBM,0.25,0.35\n2,2023-12-18,LightGBM,0.22,0.31\n"
    b"1,2023-12-04,ensemble,0.24,0.34\n2,2023-12-18,ensemble,0.21,0.29\nsummary,,ensemble,0.22,0.30\n"
)


# The run's coherent totals (forecast_orchestrator/totals.py's export): the items' expected demand adds up to their
# categories' and to the total's.
COHERENT_CSV = "\n".join(
    ["level,item_id,location,category,date,p10,p50,p90,mean,base_p50,method,backtest_wape,base_backtest_wape"]
    + [f"{level},{item},,{category},{day}T00:00:00Z,{mean - 3},{mean - 0.5},{mean + 4},{mean},{mean + 1},wls_struct,"
       f"{wape},{wape + 0.1}"
       for level, item, category, wape, means in (
           ("total", "", "", 0.2, (6.7, 5.9)), ("category", "", "snacks", 0.3, (5.5, 4.5)),
           ("category", "", "drinks", 0.5, (1.2, 1.4)), ("item", "A", "snacks", 0.3, (5.5, 4.5)),
           ("item", "B", "drinks", 0.5, (1.2, 1.4)))
       for day, mean in zip(("2024-01-22", "2024-01-29"), means, strict=True)]
).encode()  # fmt: skip


def enrich_export(
    spark, settings: Settings, run_id: str, started_at: str, forecast_csv: bytes, coherent_csv: bytes | None = None
) -> None:
    """A forecast run's export over the landed inputs, enriched, and the API cache told (as the job does)."""
    store = LocalObjectStore(settings.data_root)
    export_bucket = settings.names.bucket("forecast-export")
    store.put(export_bucket, f"exports/{run_id}/forecast/forecast.csv", forecast_csv)
    store.put(export_bucket, f"exports/{run_id}/accuracy-metrics/metrics.csv", METRICS_CSV)
    coherent_keys = [f"exports/{run_id}/coherent/part-00000.csv"] if coherent_csv else []
    for key in coherent_keys:
        store.put(export_bucket, key, coherent_csv)
    export_manifest = {
        "run_id": run_id, "run_started_at": started_at, "backend": "statsforecast",
        "predictor_id": "sf-1", "accuracy": {"avg_wQL": 0.21, "WAPE": 0.3}, "frequency": "W",
        "input_bucket": settings.names.bucket("forecast-input"), "input_manifest_key": INPUT_BASE + "manifest.json",
        "forecast_keys": [f"exports/{run_id}/forecast/forecast.csv"], "coherent_keys": coherent_keys,
    }  # fmt: skip
    store.put(export_bucket, f"exports/{run_id}/manifest.json", json.dumps(export_manifest).encode())
    enrich_run(spark, settings, f"exports/{run_id}/manifest.json", recent_periods=2)
    if settings.endpoint_url:  # there is an API cache to tell (the report tests run without DynamoDB)
        record_enriched_run(settings, run_id)


def save_scenario_model(settings: Settings, run_id: str = RUN_ID) -> None:
    """The scenario model the forecast step keeps (forecast_orchestrator/whatif.py), fitted on a year of weekly demand
    of items A and B that follows their price (elasticity -1.5), with the run's two forecast weeks as horizon."""
    import numpy as np
    import pandas as pd

    from forecast_orchestrator.global_model import GlobalModel, GlobalModelConfig
    from forecast_orchestrator.series import ForecastInputs
    from forecast_orchestrator.whatif import build_model

    rng = np.random.default_rng(4)
    weeks = pd.date_range("2023-01-02", "2024-01-29", freq="W-MON")
    rows = []
    for item, base in (("A", 5.0), ("B", 1.0)):
        price = rng.choice([1.6, 2.0, 2.4], len(weeks))
        demand = rng.poisson(base * (price / 2.0) ** -1.5)
        rows += [(item, w, float(y), p, 0, 0.0, 0) for w, y, p in zip(weeks, demand, price, strict=True)]
    frame = pd.DataFrame(rows, columns=["unique_id", "ds", "y", "price", "promotion_flag", "discount", "holiday_flag"])
    target = frame[frame["ds"] < "2024-01-22"].reset_index(drop=True)
    metadata = pd.DataFrame({"item_id": ["A", "B"], "category": ["snacks", "drinks"], "brand": ["x", "y"]})
    manifest = {"frequency": "W", "window_start": "2023-01-02", "window_end": "2024-01-22", "horizon": 2}
    inputs = ForecastInputs(manifest, target, frame.drop(columns="y"), metadata)
    fitted = GlobalModel(GlobalModelConfig(trees=40, min_leaf=3, threads=1)).fit(inputs, target, with_response=True)
    selection = pd.DataFrame({"unique_id": ["A", "B"], "model": "LightGBM", "weight": 1.0, "loss": 0.0})
    model = build_model(run_id, "W", 2, fitted, inputs.future(), metadata, selection)
    model.save(LocalObjectStore(settings.data_root), settings.names.bucket("forecast-export"))


def enriched_stack(spark, moto_server: str, root, name: str) -> Settings:
    """Settings on the session's moto server (own prefix), its resources created, the enriched run written with
    its scenario model."""
    settings = Settings(endpoint_url=moto_server, data_root=root, prefix=f"t{uuid.uuid4().hex[:6]}-{name}")
    ensure_resources(settings)
    build_enriched(spark, settings)
    save_scenario_model(settings)
    return settings


@pytest.fixture(scope="module")
def served(spark, moto_server, tmp_path_factory) -> Settings:
    return enriched_stack(spark, moto_server, tmp_path_factory.mktemp("api") / "root", "api")


@pytest.fixture
def client(served):
    return TestClient(create_app(served))


def test_forecast_is_filled_from_the_query_layer_then_served_from_dynamodb(served, client):
    first = client.get("/items/A/forecast")
    assert first.status_code == 200
    body = first.json()
    assert body["cache"] == "miss" and first.headers["X-Cache"] == "miss"
    assert [(r["forecast_date"][:10], r["p10"], r["p50"], r["p90"]) for r in body["forecast"]] == [
        ("2024-01-22", 2.0, 5.0, 9.0),
        ("2024-01-29", 1.0, 4.0, 8.0),
    ]
    assert {(r["category"], r["run_id"], r["predictor"]) for r in body["forecast"]} == {("snacks", RUN_ID, "sf-1")}
    # Weekly actual demand from the sales table (weeks start on Monday): 10, 6, 2 + 3.
    assert [(r["period"][:10], r["demand"]) for r in body["history"]] == [
        ("2024-01-01", 10.0),
        ("2024-01-08", 6.0),
        ("2024-01-15", 5.0),
    ]

    item = aws.client("dynamodb", served).get_item(TableName=served.names.api_cache_table, Key={"item_id": {"S": "A"}})[
        "Item"
    ]
    expires_at = int(item["expires_at"]["N"])
    assert time.time() + 3500 < expires_at <= time.time() + 3600
    assert json.loads(item["payload"]["S"])["forecast"] == body["forecast"]

    second = client.get("/items/A/forecast")
    assert second.status_code == 200 and second.json()["cache"] == "hit" and second.headers["X-Cache"] == "hit"
    assert second.json()["forecast"] == body["forecast"] and second.json()["history"] == body["history"]


def test_a_newly_enriched_run_is_served_at_once_not_after_the_ttl(spark, settings, tmp_path):
    settings = settings.model_copy(update={"data_root": tmp_path / "root"})
    ensure_resources(settings)
    build_enriched(spark, settings)
    client = TestClient(create_app(settings, cache_ttl=3600))

    first, second = client.get("/items/A/forecast").json(), client.get("/items/A/forecast").json()
    assert (first["cache"], second["cache"]) == ("miss", "hit")
    assert [(r["run_id"], r["p50"]) for r in second["forecast"]] == [(RUN_ID, 5.0), (RUN_ID, 4.0)]

    new_run = b"item_id,date,p10,p50,p90\nA,2024-01-29T00:00:00Z,3,7,12\nA,2024-02-05T00:00:00Z,2,6,11\n"
    enrich_export(spark, settings, "run43", "2024-01-29T06:00:00Z", new_run)
    after = client.get("/items/A/forecast")
    assert after.status_code == 200 and after.json()["cache"] == "miss"
    assert [(r["run_id"], r["p50"]) for r in after.json()["forecast"]] == [("run43", 7.0), ("run43", 6.0)]
    again = client.get("/items/A/forecast").json()
    assert again["cache"] == "hit" and again["forecast"] == after.json()["forecast"]

    dynamodb, table = aws.client("dynamodb", settings), settings.names.api_cache_table
    latest = dynamodb.get_item(TableName=table, Key={"item_id": {"S": LATEST_RUN_KEY}})["Item"]
    entry = dynamodb.get_item(TableName=table, Key={"item_id": {"S": "A"}})["Item"]
    assert latest["run_id"]["S"] == "run43" and entry["generation"] == latest["generation"] == {"N": "2"}


def test_enrich_forecast_command_tells_the_cache(spark, served):
    def generation() -> int:
        key = {"item_id": {"S": LATEST_RUN_KEY}}
        item = aws.client("dynamodb", served).get_item(TableName=served.names.api_cache_table, Key=key)["Item"]
        return int(item["generation"]["N"])

    before = generation()
    flags = ["--prefix", served.prefix, "--data-root", str(served.data_root), "--endpoint-url", served.endpoint_url]
    result = CliRunner().invoke(cli, [*flags, "glue", "run", "enrich-forecast", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1])["api_cache_generation"] == before + 1 == generation()


def test_an_expired_cache_item_is_a_miss(served):
    client = TestClient(create_app(served, cache_ttl=1))
    assert client.get("/items/B/forecast").json()["cache"] == "miss"
    time.sleep(2.1)
    assert client.get("/items/B/forecast").json()["cache"] == "miss"


def test_unknown_item_is_404_with_a_message_and_the_404_is_cached(client):
    reply = client.get("/items/NOPE/forecast")
    assert reply.status_code == 404 and reply.headers["X-Cache"] == "miss"
    assert "NOPE" in reply.json()["detail"]
    again = client.get("/items/NOPE/forecast")  # from DynamoDB: no query for an item that has no forecast
    assert again.status_code == 404 and again.headers["X-Cache"] == "hit" and "NOPE" in again.json()["detail"]


def test_history_is_the_year_before_the_forecast_not_the_whole_sales_table(served):
    from api.queries import QueryLayer

    layer = QueryLayer(served)
    weeks = [r["period"][:10] for r in layer.history("A", "2024-01-22")]
    assert weeks and all("2023-01-23" <= w < "2024-01-22" for w in weeks)
    assert layer.history("A", "2026-01-05") == []  # nothing sold in the year before


@pytest.mark.parametrize(
    "url",
    [
        "/items/A'%20OR%201=1--/forecast",
        "/items/%3Bdrop/forecast",
        "/items/" + "x" * 65 + "/forecast",
        "/outliers?limit=0",
        "/outliers?limit=1001",
        "/outliers?since=2024-13-45",
        "/outliers?item_id=A'--",
        "/outliers?code=Quantity Spike",
    ],
)
def test_bad_input_is_422(client, url):
    reply = client.get(url)
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"]


def test_outliers_filters(client):
    every = client.get("/outliers").json()["outliers"]
    assert [o["event_id"] for o in every] == ["o4", "o3", "o2", "o1"]
    assert [o["event_id"] for o in client.get("/outliers?item_id=A&code=quantity_spike").json()["outliers"]] == [
        "o2",
        "o1",
    ]
    assert [o["event_id"] for o in client.get("/outliers?store_id=s2").json()["outliers"]] == ["o2"]
    assert [o["event_id"] for o in client.get("/outliers?since=2024-01-11&limit=1").json()["outliers"]] == ["o4"]
    assert every[0]["outlier_reason"] and every[0]["outlier_score"] == 12.0


def test_items_overview_health_and_openapi(client):
    assert [i["item_id"] for i in client.get("/items").json()["items"]] == ["A", "B"]
    overview = client.get("/overview").json()
    assert overview["accuracy"][0]["run_id"] == RUN_ID and overview["accuracy"][0]["wape"] == 0.3
    assert {r["outlier_code"]: r["outliers"] for r in overview["outliers_by_code"]} == {
        "quantity_spike": 3.0,
        "price_deviation": 1.0,
    }
    assert client.get("/health").json()["status"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/items/{item_id}/forecast", "/outliers", "/health"} <= set(paths)


def test_api_key_when_configured(served):
    client = TestClient(create_app(served, api_key="s3cret"))
    assert client.get("/items/A/forecast").status_code == 401
    assert client.get("/outliers", headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get("/items/A/forecast", headers={"X-API-Key": "s3cret"}).status_code == 200
    assert client.get("/health").status_code == 200  # probes need no key


def test_the_openapi_spec_says_what_the_api_answers(served):
    def spec(api_key=None) -> dict:
        return TestClient(create_app(served, api_key=api_key)).get("/openapi.json").json()

    def parameters(doc: dict, path: str) -> list[str]:
        return [p["name"] for p in doc["paths"][path]["get"].get("parameters", [])]

    def responses(doc: dict, path: str) -> set[str]:
        return set(doc["paths"][path]["get"]["responses"])

    open_, keyed = spec(), spec("s3cret")
    assert "securitySchemes" not in open_.get("components", {})  # no key configured: no key in the spec
    assert responses(open_, "/items/{item_id}/forecast") == {"200", "404", "422"}
    assert responses(open_, "/outliers") == {"200", "422"}
    assert keyed["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    assert responses(keyed, "/items/{item_id}/forecast") == {"200", "401", "404", "422"}
    assert "401" in responses(keyed, "/overview") and "401" not in responses(keyed, "/health")
    assert parameters(open_, "/items/{item_id}/forecast") == parameters(keyed, "/items/{item_id}/forecast")


# --- runtime aws: the query layer on Athena (moto's), the cache on DynamoDB -------------------------------
def _athena_rows(columns: list[str], rows: list[list[str | None]]) -> dict:
    """One queued moto Athena result, as Athena pages it: a header row, then every value as text (null: no value)."""
    cells = [[{"VarCharValue": v} if v is not None else {} for v in row] for row in [columns, *rows]]
    return {"rows": [{"Data": c} for c in cells], "column_info": [{"Name": c, "Type": "varchar"} for c in columns]}


def _queries(athena, settings: Settings) -> list[dict]:
    ids = athena.list_query_executions(WorkGroup=settings.names.athena_workgroup)["QueryExecutionIds"]
    runs = [athena.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]
    return sorted(runs, key=lambda r: r["Status"]["SubmissionDateTime"])


def test_athena_mode_queries_athena_and_caches_in_dynamodb(moto_server, tmp_path):
    # A region of its own: moto's queue of Athena results is per account and region, shared by the session.
    settings = Settings(runtime="aws", endpoint_url=moto_server, region="ap-southeast-2", data_root=tmp_path,
                        prefix=f"t{uuid.uuid4().hex[:6]}-athena")  # fmt: skip
    ensure_resources(settings)
    athena = aws.client("athena", settings)
    athena.create_work_group(Name=settings.names.athena_workgroup, Configuration={})  # infra/ creates it on AWS
    client = TestClient(create_app(settings))

    unknown = client.get("/items/NOPE/forecast")  # moto answers with no rows, as Athena does for an unknown item
    assert unknown.status_code == 404 and "NOPE" in unknown.json()["detail"]
    [query] = _queries(athena, settings)
    assert f"FROM {settings.names.glue_database}.latest_forecast WHERE item_id = 'NOPE'" in query["Query"]
    assert query["QueryExecutionContext"]["Database"] == settings.names.glue_database
    assert query["Status"]["State"] == "SUCCEEDED"

    forecast_columns = ["forecast_date", "location", "p10", "p50", "p90", "category", "run_id", "predictor", "backend"]
    forecast = [
        ["2024-01-22 00:00:00.000", None, "2.0", "5.0", "9.0", "snacks", RUN_ID, "sf-1", "statsforecast"],
        ["2024-01-29 00:00:00.000", None, "1.0", "4.0", "8.0", "snacks", RUN_ID, "sf-1", "statsforecast"],
    ]
    history = [["2024-01-15 00:00:00.000", "5.0"], ["2024-01-08 00:00:00.000", "6.0"]]  # newest first, as queried
    queued = {"region": settings.region, "results": [_athena_rows(forecast_columns, forecast),
                                                     _athena_rows(["period", "demand"], history)]}  # fmt: skip
    httpx.post(f"{moto_server}/moto-api/static/athena/query-results", json=queued).raise_for_status()

    first = client.get("/items/A/forecast")
    assert first.status_code == 200 and first.json()["cache"] == "miss"
    body = first.json()
    assert [(r["forecast_date"], r["location"], r["p10"], r["p50"], r["p90"]) for r in body["forecast"]] == [
        ("2024-01-22 00:00:00.000", None, 2.0, 5.0, 9.0),
        ("2024-01-29 00:00:00.000", None, 1.0, 4.0, 8.0),
    ]  # Athena's text turned into numbers
    assert [(h["period"][:10], h["demand"]) for h in body["history"]] == [("2024-01-08", 6.0), ("2024-01-15", 5.0)]
    assert len(_queries(athena, settings)) == 3

    second = client.get("/items/A/forecast")
    assert second.json()["cache"] == "hit" and second.json()["forecast"] == body["forecast"]
    assert len(_queries(athena, settings)) == 3  # a hit asks DynamoDB only


def test_dynamodb_down_the_api_answers_from_the_query_layer(served):
    """The cache is an optimisation: with DynamoDB unreachable the API answers the same forecast, uncached."""
    up = TestClient(create_app(served)).get("/items/A/forecast").json()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once the socket closes
    down = served.model_copy(update={"endpoint_url": dead})
    reply = TestClient(create_app(down)).get("/items/A/forecast")
    assert reply.status_code == 200 and reply.headers["X-Cache"] == "bypass"
    assert reply.json()["forecast"] == up["forecast"] and reply.json()["history"] == up["history"]


def test_an_answer_too_big_for_a_dynamodb_item_is_served_not_cached(served):
    from api.cache import ForecastCache

    cache = ForecastCache(served)
    assert cache.put("huge", {"forecast": ["x" * 1000] * 500}, generation=0) is None  # 500 KB > DynamoDB's 400 KB
    assert cache.get("huge").payload is None


def _value(schema: dict):
    """A hypothesis strategy for a parameter: mostly values its schema allows, sometimes any text (the API must then
    answer 422, never fail)."""
    from hypothesis import strategies as st

    schema = next((s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"), schema)
    if schema.get("type") == "integer":
        valid = st.integers(schema.get("minimum", -(10**6)), schema.get("maximum", 10**6))
    elif schema.get("format") == "date":
        valid = st.dates().map(str)
    else:
        valid = st.from_regex(schema["pattern"], fullmatch=True) if "pattern" in schema else st.text(max_size=20)
    return st.one_of(valid, valid, st.text(max_size=70), st.integers().map(str))


def test_the_api_answers_every_request_its_spec_allows_as_the_spec_says(served):
    """A property run of the OpenAPI spec (what schemathesis does, bounded): for each operation, generated parameters
    get one of the documented status codes with a JSON body, and never a server error."""
    from urllib.parse import quote

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    client = TestClient(create_app(served, api_key="s3cret"))
    spec = client.get("/openapi.json").json()

    def checker(path: str, operation: dict):
        documented = {int(code) for code in operation["responses"]}
        params = {p["name"]: (p["in"], _value(p["schema"])) for p in operation.get("parameters", [])}
        keyed = "401" in operation["responses"]
        draws = st.fixed_dictionaries({}, optional={name: strategy for name, (_, strategy) in params.items()})

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(values=draws, with_key=st.booleans())
        def check(values, with_key):
            url = path
            for name, (where, _) in params.items():
                if where == "path":
                    url = url.replace("{" + name + "}", quote(str(values.pop(name, "item-1")), safe="") or "x")
            headers = {"X-API-Key": "s3cret"} if with_key or not keyed else {}
            reply = client.get(url, params={k: str(v) for k, v in values.items()}, headers=headers)
            assert reply.status_code < 500, (url, values, reply.text)
            assert reply.status_code in documented, (url, values, reply.status_code, reply.text)
            reply.json()

        return check

    def poster(path: str, operation: dict):
        """A body operation (POST /whatif): mostly scenarios shaped as the schema says with values in and out of its
        ranges, sometimes any JSON."""
        documented = {int(code) for code in operation["responses"]}
        number = st.floats(-2, 12, allow_nan=False)
        change = st.fixed_dictionaries({}, optional={
            "items": st.lists(st.sampled_from(["A", "B", "Z", ""]), max_size=3),
            "categories": st.lists(st.text(max_size=8)), "start": st.dates().map(str),
            "end": st.one_of(st.dates().map(str), st.text(max_size=5)), "price_factor": number, "price": number,
            "promotion": st.booleans(), "discount": number, "extra": st.integers()})  # fmt: skip
        shaped = st.fixed_dictionaries(
            {"changes": st.lists(change, max_size=3)}, optional={"items": st.lists(st.text())}
        )
        finite = st.floats(allow_nan=False, allow_infinity=False)  # JSON has neither
        anything = st.recursive(st.none() | st.booleans() | finite | st.text(max_size=10),
                                lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                             max_size=3))  # fmt: skip

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(body=st.one_of(shaped, shaped, shaped, anything), with_key=st.booleans())
        def check(body, with_key):
            headers = {"X-API-Key": "s3cret"} if with_key else {}
            reply = client.post(path, json=body, headers=headers)
            assert reply.status_code < 500, (body, reply.text)
            assert reply.status_code in documented, (body, reply.status_code, reply.text)
            reply.json()

        return check

    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            (checker if method == "get" else poster)(path, operation)()


def test_stock_projection_finds_the_shortage_and_suggests_an_order(served):
    """Item A's forecast: p50 5 then 4, p90 9 then 8 (two weeks from 2024-01-22). Nine units last two weeks at p50
    and one week at p90; with a lead time of one week the order must go out in the first week."""
    client = TestClient(create_app(served))
    plan = client.get("/items/A/stock", params={"on_hand": 9.5, "lead_time": 1, "service_level": 0.9}).json()
    assert plan["quantile"] == "p90"
    assert [p["stock_p50"] for p in plan["periods"]] == [4.5, 0.5]
    assert plan["shortage_p50"] is None and plan["shortage_service"] == "2024-01-29"  # 9.5 - 9 - 8 < 0
    assert plan["order_quantity"] == 7.5 and plan["order_by"] == "2024-01-22" and plan["late"] is False
    short = client.get("/items/A/stock", params={"on_hand": 6}).json()
    assert short["shortage_p50"] == "2024-01-29" and short["shortage_service"] == "2024-01-22" and short["late"]
    assert client.get("/items/NOPE/stock", params={"on_hand": 1}).status_code == 404
    assert client.get("/items/A/stock", params={"on_hand": -1}).status_code == 422
    assert client.get("/items/A/stock", params={"on_hand": 1, "service_level": 0.99}).status_code == 422  # no p99


def test_demand_stock_reads_the_on_hand_csv_and_names_what_it_cannot_plan(served, tmp_path):
    stock = tmp_path / "stock.csv"
    stock.write_text("item_id,on_hand,lead_time\nA,9.5,1\nB,0,2\nNOPE,3,1\n")
    env = {"DEMAND_DATA_ROOT": str(served.data_root), "DEMAND_PREFIX": served.prefix}
    result = CliRunner().invoke(cli, ["--endpoint-url", served.endpoint_url, "stock", "--on-hand", str(stock),
                                      "--format", "json"], env=env)  # fmt: skip
    assert result.exit_code == 1
    plans = json.loads(result.stdout)["plans"]
    assert [(p["item_id"], p["shortage_service"], p["order_quantity"]) for p in plans] == [
        ("A", "2024-01-29", 7.5),
        ("B", "2024-01-22", 5.0),  # B's p90: 2 then 3
    ]
    assert "NOPE" in result.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("item_id,on_hand\nA,lots\n")
    # wide enough that rich's error panel never wraps the message (its width follows the temporary path's length)
    rejected = CliRunner().invoke(cli, ["stock", "--on-hand", str(bad)], env={**env, "COLUMNS": "400"})
    assert rejected.exit_code == 2 and "row 2" in rejected.output


def test_stock_recorded_once_in_dynamodb_is_what_the_cli_and_the_api_plan_from(served, tmp_path):
    """`demand stock --on-hand CSV --save` records the stock on hand in the stock-on-hand table; then `demand stock`
    without a CSV and GET /items/{id}/stock without on_hand plan from it, lead times included."""
    stock = tmp_path / "stock.csv"
    stock.write_text("item_id,on_hand,lead_time\nA,9.5,1\nB,0,2\nB,0.5,2\n")  # B twice: its last row counts
    env = {"DEMAND_DATA_ROOT": str(served.data_root), "DEMAND_PREFIX": served.prefix, "COLUMNS": "400"}
    base = ["--endpoint-url", served.endpoint_url, "stock"]
    saved = CliRunner().invoke(cli, [*base, "--on-hand", str(stock), "--save", "--format", "json"], env=env)
    assert saved.exit_code == 0, saved.output
    assert "recorded the stock of 2 series" in saved.stderr
    again = CliRunner().invoke(cli, [*base, "--format", "json"], env=env)
    assert again.exit_code == 0, again.output
    plans = [
        (p["item_id"], p["on_hand"], p["lead_time"], p["shortage_service"]) for p in json.loads(again.stdout)["plans"]
    ]
    assert plans == [("A", 9.5, 1, "2024-01-29"), ("B", 0.5, 2, "2024-01-22")]
    client = TestClient(create_app(served))
    plan = client.get("/items/A/stock").json()
    assert (plan["on_hand"], plan["lead_time"], plan["order_quantity"]) == (9.5, 1, 7.5)
    assert client.get("/items/A/stock", params={"lead_time": 0}).json()["lead_time"] == 0  # the request's wins
    missing = client.get("/items/A/stock", params={"location": "S9"})
    assert missing.status_code == 404 and "no stock on hand for item A at S9" in missing.json()["detail"]
    refused = CliRunner().invoke(cli, [*base, "--save"], env=env)
    assert refused.exit_code == 2 and "--on-hand" in refused.output


def test_whatif_scores_a_price_cut_on_the_latest_runs_model_and_refuses_what_it_cannot_score(served, client):
    answer = client.post("/whatif", json={"changes": [{"items": ["A"], "price_factor": 0.8}]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["run_id"] == RUN_ID and [s["item_id"] for s in body["series"]] == ["A"]
    (series,) = body["series"]
    assert [p["date"] for p in series["periods"]] == ["2024-01-22", "2024-01-29"]
    assert series["totals"]["scenario_units"] >= series["totals"]["baseline_units"]
    assert all(p["scenario_price"] == round(0.8 * p["baseline_price"], 4) for p in series["periods"])
    assert client.post("/whatif", json={"changes": [{"items": ["Z"], "price_factor": 0.8}]}).status_code == 422
    assert client.post("/whatif", json={"changes": []}).status_code == 422
    assert client.post("/whatif", json={"changes": [{"price": 2, "price_factor": 0.9}]}).status_code == 422


def test_drivers_name_the_ensembles_models_and_what_moves_the_forecast(client):
    reply = client.get("/items/A/drivers")
    assert reply.status_code == 200, reply.text
    (series,) = reply.json()["series"]
    assert series["ensemble"] == [{"model": "LightGBM", "weight": 1.0}]
    assert set(series["drivers"]) == {"recent_demand", "seasonality", "price", "promotion", "holiday", "item_and_store"}
    assert [p["date"] for p in series["periods"]] == ["2024-01-22", "2024-01-29"]
    assert all(d["effect"] > 0 for d in series["drivers"].values())
    assert client.get("/items/Z/drivers").status_code == 404


def test_totals_serve_each_level_of_the_coherent_forecast_with_its_accuracy(client):
    total = client.get("/totals").json()
    assert [(r["forecast_date"][:10], r["mean"]) for r in total["rows"]] == [("2024-01-22", 6.7), ("2024-01-29", 5.9)]
    by_level = {
        (a["level"], a["method"], a["backtest_wape"], round(a["base_backtest_wape"], 6)) for a in total["accuracy"]
    }
    assert ("total", "wls_struct", 0.2, 0.3) in by_level and len(by_level) == 3
    categories = client.get("/totals", params={"level": "category"}).json()["rows"]
    assert {r["category"] for r in categories} == {"snacks", "drinks"}
    for day in ("2024-01-22", "2024-01-29"):
        parts = sum(r["mean"] for r in categories if r["forecast_date"].startswith(day))
        assert parts == pytest.approx(next(r["mean"] for r in total["rows"] if r["forecast_date"].startswith(day)))
    snacks = client.get("/totals", params={"level": "category", "key": "snacks"}).json()["rows"]
    assert [r["mean"] for r in snacks] == [5.5, 4.5]
    missing = client.get("/totals", params={"level": "store"})
    assert missing.status_code == 404 and "no coherent totals at level store" in missing.json()["detail"]
    assert client.get("/totals", params={"level": "region"}).status_code == 422
