"""The forecast workflow end to end on the local runtime: generated sales -> datasets (Spark) -> the state
machine run in-process (statsforecast backend, DynamoDB and SNS on moto) -> export -> enrichment."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pandas as pd
import pytest

from core.aws import client
from core.object_store import LocalObjectStore
from forecast_orchestrator.workflow import run_forecast
from glue_jobs.build_forecast_inputs import BuildRequest, build
from glue_jobs.enrich_forecast import enrich_run
from glue_jobs.forecast_inputs import RunWindow
from local_stack.stack import ensure_resources
from streaming.generator import GeneratorConfig, generate
from streaming.landing import deliver

pytestmark = pytest.mark.slow

START = date(2023, 1, 2)
WEEKS = 60


@pytest.fixture(scope="module")
def pipeline(spark, moto_server, tmp_path_factory):
    """Sales landed and two dataset builds (consecutive weeks) ready, AWS resources on moto."""
    from core.settings import Settings

    tmp = tmp_path_factory.mktemp("workflow")
    settings = Settings(endpoint_url=moto_server, data_root=tmp / "root", prefix="wf-test", horizon=4)
    ensure_resources(settings)
    data = generate(GeneratorConfig(seed=11, stores=2, items=8, start=START.isoformat(), days=7 * WEEKS))
    split = tmp / "split"
    for folder in ("clean", "reference"):
        (split / folder).mkdir(parents=True)
    sales = [e for e in data.events if e["event_type"] == "sale"]
    other = [e for e in data.events if e["event_type"] != "sale"]
    (split / "clean" / "part-0").write_text("\n".join(json.dumps(e) for e in sales))
    (split / "reference" / "part-0").write_text("\n".join(json.dumps(e) for e in other))
    deliver(split, LocalObjectStore(settings.data_root), settings.names.buckets)
    manifests = []
    for weeks in (WEEKS - 5, WEEKS - 4):
        window = RunWindow(START, START + timedelta(weeks=weeks), "W", horizon=4)
        manifests.append(build(spark, settings, BuildRequest(window))["prefix"] + "manifest.json")
    return settings, manifests


def champion(settings):
    item = client("dynamodb", settings).get_item(
        TableName=settings.names.champion_table, Key={"dataset_group": {"S": "wf_test_default_W"}}
    )
    return json.loads(item["Item"]["record"]["S"])


@pytest.fixture(scope="module")
def first_run(pipeline):
    settings, manifests = pipeline
    states = []
    status, run = run_forecast(settings, manifests[0], on_state=states.append)
    return settings, status, run, states


def test_run_goes_through_every_state_and_exports_the_forecast_layout(first_run):
    settings, status, run, states = first_run
    assert status == "SUCCEEDED", run.get("error")
    assert [s for s in states if not s.endswith("Status")] == [
        "StartRun", "IsDuplicate", "ImportDatasets", "TrainPredictor", "GetAccuracy", "AccuracyGate",
        "CreateForecast", "ExportForecast", "Notify",
    ]  # fmt: skip
    store = LocalObjectStore(settings.data_root)
    bucket = settings.names.bucket("forecast-export")
    manifest = json.loads(store.get(bucket, run["export_manifest"]["key"]))
    forecast = pd.read_csv(store.path(bucket, manifest["forecast_keys"][0]))
    assert list(forecast.columns[:5]) == ["item_id", "date", "p10", "p50", "p90"]
    assert forecast.groupby("item_id").size().eq(4).all()  # the horizon, for every item
    assert (forecast["p10"] <= forecast["p50"]).all() and (forecast["p50"] <= forecast["p90"]).all()
    assert manifest["accuracy"]["WAPE"] > 0 and manifest["accuracy"]["avg_wQL"] > 0
    status_file = json.loads(store.get(bucket, f"runs/{run['run_id']}/status.json"))
    assert status_file["status"] == "SUCCEEDED"
    runs = client("dynamodb", settings).get_item(
        TableName=settings.names.run_table, Key={"run_id": {"S": run["run_id"]}}
    )
    assert runs["Item"]["status"]["S"] == "SUCCEEDED"
    assert champion(settings)["predictor_id"] == run["predictor_id"]


def test_redelivered_trigger_does_not_start_a_duplicate_run(first_run):
    settings, _, run, _ = first_run
    states = []
    status, again = run_forecast(settings, run["manifest_key"], on_state=states.append)
    assert status == "SUCCEEDED" and again["duplicate"] is True
    assert states == ["StartRun", "IsDuplicate", "AlreadyRun"]


def test_gate_keeps_the_champion_when_the_challenger_is_worse(first_run, pipeline):
    settings, _, run, _ = first_run
    _, manifests = pipeline
    # Make the recorded champion look far better than any challenger can be.
    record = {**champion(settings), "avg_wQL": 1e-6, "WAPE": 1e-6}
    client("dynamodb", settings).put_item(
        TableName=settings.names.champion_table,
        Item={
            "dataset_group": {"S": "wf_test_default_W"},
            "predictor_id": {"S": record["predictor_id"]},
            "record": {"S": json.dumps(record)},
        },
    )
    status, second = run_forecast(settings, manifests[1])
    assert status == "SUCCEEDED", second.get("error")
    assert second["gate"]["promoted"] is False
    assert second["forecast_predictor"] == run["predictor_id"] != second["predictor_id"]
    assert champion(settings)["predictor_id"] == run["predictor_id"]


def test_export_is_enriched_with_the_drivers(first_run, spark):
    """The enriched table carries each row's drivers (the global model's factors) and the ensemble's models, so
    Athena can ask what drives a forecast."""
    from forecast_orchestrator.global_model import DRIVERS
    from query.engine import run_local

    settings, _, run, _ = first_run
    result = enrich_run(spark, settings, run["export_manifest"]["key"])
    assert result["rows"] == 8 * 4  # items x horizon
    db = settings.names.glue_database
    columns = ", ".join(f"count(driver_{name})" for name in DRIVERS)
    (counts,) = run_local(f"SELECT count(*), count(ensemble), {columns} FROM {db}.enriched_forecasts", settings).rows
    assert set(counts) == {8 * 4}
    (lowest,) = run_local(f"SELECT min(driver_recent_demand * driver_seasonality) FROM {db}.enriched_forecasts",
                          settings).rows  # fmt: skip
    assert lowest[0] > 0


def test_coherent_totals_add_up_at_every_level_and_athena_can_query_them(first_run, spark):
    """The run forecast the company and each category as well as the items, reconciled: the expected demand of the
    total is the sum of its categories' and of its items' in every period; each level has its backtest accuracy."""
    from query.engine import run_local

    settings, _, run, _ = first_run
    store = LocalObjectStore(settings.data_root)
    bucket = settings.names.bucket("forecast-export")
    manifest = json.loads(store.get(bucket, run["export_manifest"]["key"]))
    assert manifest["coherent_keys"] == [f"exports/{run['run_id']}/coherent/part-00000.csv"]
    accuracy = pd.read_csv(store.path(bucket, f"exports/{run['run_id']}/coherent-accuracy/metrics.csv"))
    assert set(accuracy["level"]) == {"total", "category", "item"} and accuracy["chosen"].sum() == 3
    result = enrich_run(spark, settings, run["export_manifest"]["key"])
    db = settings.names.glue_database
    levels = run_local(f"SELECT level, count(*), count(DISTINCT forecast_date), min(backtest_wape) FROM "
                       f"{db}.coherent_forecasts GROUP BY level ORDER BY level", settings).rows  # fmt: skip
    assert result["coherent"]["rows"] == sum(row[1] for row in levels)
    categories = len({c for c in pd.read_csv(store.path(bucket, manifest["coherent_keys"][0]))["category"].dropna()})
    assert [row[:3] for row in levels] == [("category", categories * 4, 4), ("item", 8 * 4, 4), ("total", 4, 4)]
    assert all(row[3] > 0 for row in levels)
    sums = run_local(
        f"SELECT forecast_date, sum(CASE WHEN level = 'total' THEN mean END), sum(CASE WHEN level = 'category' "
        f"THEN mean END), sum(CASE WHEN level = 'item' THEN mean END), min(p10 - p50), min(p90 - p50) "
        f"FROM {db}.coherent_forecasts GROUP BY forecast_date ORDER BY forecast_date",
        settings,
    ).rows
    for _, total, by_category, by_item, low, high in sums:
        assert total == pytest.approx(by_category, rel=1e-9) == pytest.approx(by_item, rel=1e-9)
        assert total > 0 and low <= 0 <= high


def test_a_what_if_is_answered_by_the_api_and_the_cli_on_the_runs_own_model(first_run, spark):
    """The forecast step kept the run's global model: after the enrichment, POST /whatif and `demand whatif` score a
    price cut on it (no retraining) and answer with a rise; a scenario that matches nothing is a 422 / exit 1."""
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from api.app import create_app
    from demand.cli import app

    settings, _, run, _ = first_run
    enrich_run(spark, settings, run["export_manifest"]["key"])
    client = TestClient(create_app(settings))
    item = "SKU00001"
    answer = client.post("/whatif", json={"changes": [{"items": [item], "price_factor": 0.8}]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["run_id"] == run["run_id"] and body["model"] == "LightGBM"
    assert [s["item_id"] for s in body["series"]] == [item]
    assert body["total"]["scenario_units"] >= body["total"]["baseline_units"] > 0
    nothing = client.post("/whatif", json={"changes": [{"items": ["SKU99999"], "price_factor": 0.8}]})
    assert nothing.status_code == 422 and "matches no series" in nothing.json()["detail"]
    assert client.post("/whatif", json={"changes": [{"items": [item]}]}).status_code == 422  # changes nothing

    env = {"DEMAND_DATA_ROOT": str(settings.data_root), "DEMAND_PREFIX": settings.prefix,
           "AWS_ENDPOINT_URL": settings.endpoint_url}  # fmt: skip
    cli = CliRunner().invoke(app, ["whatif", "--item", item, "--promotion", "--discount", "0.2", "--format", "csv"],
                             env=env)  # fmt: skip
    assert cli.exit_code == 0, cli.output
    rows = cli.stdout.strip().splitlines()
    assert rows[0].startswith("item_id,location,date,baseline_p50,scenario_p50") and len(rows) == 1 + 4
    bad = CliRunner().invoke(app, ["whatif", "--item", "SKU99999", "--price-factor", "0.8"], env=env)
    assert bad.exit_code == 1 and "matches no series" in bad.output


def test_train_and_forecast_run_as_a_glue_job_when_one_is_configured(pipeline):
    """AWS layout (Settings.model_job): every step that reads the datasets starts the Glue job and polls it; the job
    (glue_jobs/forecast_steps.py, run here as Glue would run it, without Spark) writes the step's result. The step
    Lambda's own work needs none of the ensemble's libraries."""
    from forecast_orchestrator import handlers
    from forecast_orchestrator.backends import progress_key
    from glue_jobs import forecast_steps

    settings, manifests = pipeline
    job = "wf-test-forecast-steps"
    glue = client("glue", settings)
    glue.create_job(
        Name=job,
        Role="arn:aws:iam::123456789012:role/wf-test-glue",
        Command={"Name": "glueetl", "ScriptLocation": "s3://wf-test-artifacts/glue/forecast_steps.py"},
    )
    rt = handlers.Runtime.build(settings.model_copy(update={"model_job": job}))
    bucket = settings.names.bucket("forecast-input")
    run = handlers.dispatch({"step": "start_run", "run": {"bucket": bucket, "manifest_key": manifests[1]}}, rt)

    def through_glue(start: str, check: str) -> dict:
        nonlocal run
        run = handlers.dispatch({"step": start, "run": run}, rt)
        assert run["status"] == "IN_PROGRESS" and run["wait_seconds"] == 15
        started = glue.get_job_run(JobName=job, RunId=run["glue_run"]["id"])["JobRun"]
        job_args = ["--JOB_NAME", job, "--use_spark", "false", "--endpoint_url", settings.endpoint_url]
        job_args += ["--data_root", str(settings.data_root), "--horizon", "4"]
        for name, value in started["Arguments"].items():
            job_args += [name, value]
        rt.store.delete(rt.backend.bucket, progress_key(run["run_id"]))
        forecast_steps.main(job_args)  # what Glue runs
        # The job's progress (series done, elapsed, ETA), which a poll of a running job returns in the run's status.
        progress = None
        if start in ("train_predictor", "create_forecast"):
            progress = json.loads(rt.store.get(rt.backend.bucket, progress_key(run["run_id"])))
            assert progress["series_done"] == progress["series_total"] > 0, progress
            assert progress["step"] == {"train_predictor": "train", "create_forecast": "forecast"}[start]
        for _ in range(5):  # moto's job run: STARTING -> RUNNING -> SUCCEEDED, one step per poll
            run = handlers.dispatch({"step": check, "run": run}, rt)
            if run["status"] != "IN_PROGRESS":
                break
            assert run.get("progress") == progress
        assert run["status"] == "DONE", run
        return run

    through_glue("import_datasets", "check_import")
    assert run["imported"]["series"] > 0
    through_glue("train_predictor", "check_training")
    assert run["predictor_id"].startswith("sf-")
    run = handlers.dispatch({"step": "get_accuracy", "run": run}, rt)
    assert 0 < run["accuracy"]["WAPE"] < 1
    run["forecast_predictor"] = run["predictor_id"]
    through_glue("create_forecast", "check_forecast")
    through_glue("export_forecast", "check_export")
    assert run["export"]["keys"], run["export"]


def test_a_run_claim_names_its_execution_and_a_lapsed_claim_is_taken_over(pipeline):
    from forecast_orchestrator.handlers import Runtime, start_run

    settings, manifests = pipeline
    rt = Runtime.build(settings)
    bucket = settings.names.bucket("forecast-input")
    manifest = json.loads(rt.store.get(bucket, manifests[1]))
    key = manifests[1].replace("manifest.json", "claim-test/manifest.json")  # a build of its own key
    rt.store.put(bucket, key, json.dumps({**manifest, "idempotency_key": "claim-test"}).encode())
    trigger = {"bucket": bucket, "manifest_key": key}

    assert start_run({**trigger, "execution_id": "exec-1"}, rt)["duplicate"] is False
    # Step Functions retries StartRun after a put that did succeed: the same execution goes on.
    assert start_run({**trigger, "execution_id": "exec-1"}, rt)["duplicate"] is False
    claimed = start_run({**trigger, "execution_id": "exec-2"}, rt)  # another trigger while exec-1 runs
    assert claimed["duplicate"] is True
    # exec-1 was stopped: its claim stays RUNNING, and lapses with its lease.
    dynamodb, table, run_key = (
        client("dynamodb", settings),
        settings.names.run_table,
        {"run_id": {"S": claimed["run_id"]}},
    )
    dynamodb.update_item(TableName=table, Key=run_key, UpdateExpression="SET lease_until = :t",
                         ExpressionAttributeValues={":t": {"S": "2000-01-01T00:00:00Z"}})  # fmt: skip
    assert start_run({**trigger, "execution_id": "exec-3"}, rt)["duplicate"] is False
    item = dynamodb.get_item(TableName=table, Key=run_key)["Item"]
    assert item["execution_id"]["S"] == "exec-3" and item["status"]["S"] == "RUNNING"
    assert item["lease_until"]["S"] > "2026"
