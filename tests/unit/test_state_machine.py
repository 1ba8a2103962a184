"""The workflow definition (ASL) and its local interpreter: polling with back-off, retries, catch."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from forecast_orchestrator.backends import RetryableStepError, backoff
from forecast_orchestrator.state_machine import ASL_PATH, asl_json, definition, run_local


def test_checked_in_asl_is_the_generated_one():
    assert ASL_PATH.read_text() == asl_json(), (
        "run: python -c 'from forecast_orchestrator.state_machine import *; ASL_PATH.write_text(asl_json())'"
    )


def test_every_transition_targets_an_existing_state_and_every_task_can_fail_into_record_failure():
    states = definition()["States"]
    targets = set()
    for name, state in states.items():
        targets.update(filter(None, [state.get("Next"), state.get("Default")]))
        targets.update(c["Next"] for c in state.get("Choices", []))
        targets.update(c["Next"] for c in state.get("Catch", []))
        if state["Type"] == "Task" and name != "RecordFailure":
            assert state["Catch"][0]["Next"] == "RecordFailure"
            assert "RetryableStepError" in state["Retry"][0]["ErrorEquals"]
    assert targets <= set(states)
    assert set(states) - targets == {"StartRun"}


def throttled() -> ClientError:
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "CreateAutoPredictor")


def throttled_step() -> RetryableStepError:
    """What the step Lambda raises (and Step Functions sees, by class name) when an AWS call is throttled."""
    return RetryableStepError("train_predictor: ThrottlingException: slow down")


class Steps:
    """A scripted step function: records the calls, polls twice before training is done."""

    def __init__(self, fail_step=None, throttle_times=0, duplicate=False, error=throttled_step):
        self.calls = []
        self.payloads = []
        self.error = error
        self.fail_step = fail_step
        self.throttle_times = throttle_times
        self.duplicate = duplicate
        self.polls = 0

    def __call__(self, payload):
        step, run = payload["step"], dict(payload["run"])
        self.calls.append(step)
        self.payloads.append(payload)
        if step == self.fail_step:
            raise ValueError(f"{step} broke")
        if step == "train_predictor" and self.throttle_times:
            self.throttle_times -= 1
            raise self.error()
        if step == "start_run":
            return {**run, "duplicate": self.duplicate}
        if step in ("train_predictor", "check_training"):
            self.polls += step == "check_training"
            done = self.polls >= 2
            return {**run, "status": "DONE" if done else "IN_PROGRESS", "wait_seconds": backoff(run)}
        return {**run, "status": "DONE", "last": step}


def test_happy_path_polls_with_backoff_until_done():
    steps = Steps()
    waits = []
    status, out = run_local(steps, {"manifest_key": "m"}, max_wait_seconds=0, on_state=waits.append)
    assert status == "SUCCEEDED"
    assert steps.calls == [
        "start_run", "import_datasets", "train_predictor", "check_training", "check_training",
        "get_accuracy", "accuracy_gate", "create_forecast", "export_forecast", "notify",
    ]  # fmt: skip
    assert waits.count("TrainPredictorWait") == 2
    assert out["last"] == "notify"


def test_backoff_doubles_and_is_capped():
    seq, run = [], {}
    for _ in range(8):
        run["wait_seconds"] = backoff(run)
        seq.append(run["wait_seconds"])
    assert seq == [15, 30, 60, 120, 240, 300, 300, 300]


def test_throttling_is_retried_and_the_run_completes():
    steps = Steps(throttle_times=2)
    status, _ = run_local(steps, {}, max_wait_seconds=0)
    assert status == "SUCCEEDED"
    assert steps.calls.count("train_predictor") == 3


def test_a_failing_step_is_caught_recorded_and_the_run_fails():
    steps = Steps(fail_step="create_forecast")
    status, out = run_local(steps, {}, max_wait_seconds=0)
    assert status == "FAILED"
    assert steps.calls[-1] == "record_failure"
    assert "notify" not in steps.calls
    # RecordFailure received the error, as Step Functions' Catch with ResultPath $.error passes it
    assert out["last"] == "record_failure"


def test_endless_throttling_ends_in_record_failure():
    steps = Steps(throttle_times=100)
    status, _ = run_local(steps, {}, max_wait_seconds=0)
    assert status == "FAILED"
    assert steps.calls.count("train_predictor") == 7  # first try + MaxAttempts 6


def test_duplicate_trigger_stops_after_start():
    steps = Steps(duplicate=True)
    status, _ = run_local(steps, {}, max_wait_seconds=0)
    assert status == "SUCCEEDED" and steps.calls == ["start_run"]


def test_asl_is_json_serialisable_and_parameters_pass_the_run():
    doc = json.loads(asl_json())
    assert doc["States"]["TrainPredictor"]["Parameters"]["Payload"] == {"step": "train_predictor", "run.$": "$"}


@pytest.mark.parametrize("bad", [{"step": "nope", "run": {}}])
def test_unknown_step_is_a_clear_error(bad):
    from forecast_orchestrator.handlers import dispatch

    with pytest.raises(ValueError, match="unknown step 'nope'"):
        dispatch(bad, rt=None)


def test_a_botocore_error_code_is_not_what_step_functions_matches():
    """A Lambda reports an exception's class name: a raw ClientError is "ClientError", whatever its code, and is not
    retried on AWS; the local interpreter matches the same way."""
    steps = Steps(throttle_times=1, error=throttled)
    status, out = run_local(steps, {}, max_wait_seconds=0)
    assert status == "FAILED" and steps.calls.count("train_predictor") == 1
    assert out["error"]["Error"] == "ClientError"


def test_every_retried_error_name_is_one_a_step_lambda_reports():
    from forecast_orchestrator import handlers

    for state in definition()["States"].values():
        for retrier in state.get("Retry", []):
            for name in retrier["ErrorEquals"]:
                assert name.startswith("Lambda.") or issubclass(getattr(handlers, name), Exception), name


def test_a_throttled_aws_call_in_a_step_reaches_step_functions_as_a_retryable_error(tmp_path):
    import boto3
    from botocore.stub import Stubber

    from core.object_store import LocalObjectStore
    from core.settings import Settings
    from forecast_orchestrator.handlers import Runtime, dispatch

    dynamodb = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    stub = Stubber(dynamodb)
    stub.add_client_error("update_item", "ProvisionedThroughputExceededException", "slow down")
    stub.activate()
    rt = Runtime(Settings(data_root=tmp_path), LocalObjectStore(tmp_path), lambda service: dynamodb, backend=None)
    with pytest.raises(RetryableStepError, match="record_failure: ProvisionedThroughputExceededException"):
        dispatch({"step": "record_failure", "run": {"run_id": "r1", "error": {"Error": "x"}}}, rt)


def test_start_run_gets_the_execution_id_from_the_context_object():
    steps = Steps(duplicate=True)
    run_local(steps, {"manifest_key": "m"}, max_wait_seconds=0, execution_id="arn:aws:states:eu-west-1:1:execution:x:1")
    assert steps.payloads[0]["execution_id"] == "arn:aws:states:eu-west-1:1:execution:x:1"
    assert definition()["TimeoutSeconds"] == 48 * 3600  # an execution never outlives its run claim
