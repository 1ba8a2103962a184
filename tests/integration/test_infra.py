"""The infrastructure templates lint clean, pass checkov, and the CloudFormation stack deploys to moto.

moto implements only part of CloudFormation: the deploy test creates the stack from a copy of the template
holding the resource types moto supports (streams, buckets, tables, topic, roles, Lambda, state machine,
rules, alarms...), with references to the dropped resources (Glue, Firehose, Managed Flink) replaced by
placeholder strings, and then checks through the service APIs that the resources exist under the names
the code uses (core.settings.ResourceNames).
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from core.settings import BUCKET_ROLES, ResourceNames

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "cloudformation" / "pipeline.yaml"
TERRAFORM = ROOT / "infra" / "terraform"
BIN = Path(sys.executable).parent
NAMES = ResourceNames("demand")
ARTEFACTS_BUCKET = "demand-artefacts-test"


def _run(*cmd: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_cfn_lint_passes_on_the_template():
    result = _run(str(BIN / "cfn-lint"), str(TEMPLATE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_parts_are_up_to_date():
    result = _run(sys.executable, str(ROOT / "infra" / "generate.py"), "--check")
    assert result.returncode == 0, result.stderr


def _checkov(framework: str, target: list[str]) -> dict[str, Any]:
    # --skip-download: no call to the Bridgecrew platform (no network in tests).
    result = _run(str(BIN / "checkov"), *target, "--framework", framework, "--skip-download", "-o", "json", "--compact")
    assert result.stdout, result.stderr
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


@pytest.mark.parametrize(
    ("framework", "target"),
    [("cloudformation", ["-f", str(TEMPLATE)]), ("terraform", ["-d", str(TERRAFORM)])],
    ids=["cloudformation", "terraform"],
)
def test_checkov_passes_and_every_suppression_has_a_reason(framework, target):
    report = _checkov(framework, target)
    failed = [(c["check_id"], c["resource"], c["check_name"]) for c in report["results"]["failed_checks"]]
    assert not failed, failed
    assert report["summary"]["passed"] > 100
    for check in report["results"].get("skipped_checks", []):
        assert len(check["check_result"].get("suppress_comment") or "") > 20, check["check_id"]


# --------------------------------------------------------------------------------------------- moto deploy
def _load_template() -> dict[str, Any]:
    from cfnlint.decode import cfn_yaml

    return json.loads(json.dumps(cfn_yaml.load(str(TEMPLATE)), default=str))


def _stub_references(node: Any, dropped: set[str]) -> Any:
    """Replace Ref/GetAtt/${..} of dropped resources with placeholder strings."""
    if isinstance(node, list):
        return [_stub_references(item, dropped) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"} and node["Ref"] in dropped:
        return f"stub-{node['Ref'].lower()}"
    if set(node) == {"Fn::GetAtt"}:
        target = node["Fn::GetAtt"]
        logical = target[0] if isinstance(target, list) else target.split(".")[0]
        if logical in dropped:
            return f"arn:aws:stub:us-east-1:123456789012:{logical.lower()}"
    if set(node) == {"Fn::Sub"}:
        sub = node["Fn::Sub"]
        text, variables = (sub[0], sub[1]) if isinstance(sub, list) else (sub, None)
        pattern = r"\$\{(" + "|".join(map(re.escape, dropped)) + r")(\.[A-Za-z.]+)?\}"
        text = re.sub(pattern, lambda m: f"stub-{m[1].lower()}", text) if dropped else text
        return {"Fn::Sub": [text, _stub_references(variables, dropped)] if variables is not None else text}
    return {key: _stub_references(value, dropped) for key, value in node.items()}


def moto_deployable(template: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """The template restricted to the resource types moto's CloudFormation implements."""
    from moto.cloudformation.parsing import resource_class_from_type

    resources = template["Resources"]
    dropped = {k for k, r in resources.items() if resource_class_from_type(r["Type"]) is None}
    kept = {k: _stub_references(r, dropped) for k, r in resources.items() if k not in dropped}
    # moto 5.2.5 reads KMS key tags as TagKey/TagValue (the KMS API shape), not CloudFormation's Key/Value.
    for resource in kept.values():
        if resource["Type"] == "AWS::KMS::Key":
            tags = resource["Properties"].get("Tags", [])
            resource["Properties"]["Tags"] = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in tags]
        # moto 5.2.5 reads only DefinitionString; Definition + DefinitionSubstitutions is the same as this Fn::Sub.
        if resource["Type"] == "AWS::StepFunctions::StateMachine" and "Definition" in resource["Properties"]:
            props = resource["Properties"]
            # moto's Fn::Sub is string.Template, whose "$$" means "$": keep the context object's "$$." paths.
            definition = json.dumps(props.pop("Definition")).replace("$$", "$$$$")
            props["DefinitionString"] = {"Fn::Sub": [definition, props.pop("DefinitionSubstitutions", {})]}
    copy = dict(template, Resources=kept)
    copy.pop("Outputs", None)  # outputs may name dropped resources
    return copy, {resources[k]["Type"] for k in dropped}


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def aws(moto_endpoint):
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    return lambda service: session.client(service, endpoint_url=moto_endpoint)


@pytest.fixture(scope="module")
def deployed_stack(aws):
    """What scripts/deploy.sh does: artefacts bucket with the Lambda bundle, then create the stack."""
    s3 = aws("s3")
    s3.create_bucket(Bucket=ARTEFACTS_BUCKET)
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as zf:
        zf.writestr("forecast_orchestrator/handlers.py", "def handler(event, context):\n    return event\n")
    s3.put_object(Bucket=ARTEFACTS_BUCKET, Key="artefacts/lambda/orchestrator.zip", Body=bundle.getvalue())

    template, dropped_types = moto_deployable(_load_template())
    cfn = aws("cloudformation")
    cfn.create_stack(
        StackName="demand-pipeline",
        TemplateBody=json.dumps(template),
        Parameters=[
            {"ParameterKey": "ArtefactsBucket", "ParameterValue": ARTEFACTS_BUCKET},
            {"ParameterKey": "Tenant", "ParameterValue": "acme"},
        ],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    stack = cfn.describe_stacks(StackName="demand-pipeline")["Stacks"][0]
    resources = cfn.list_stack_resources(StackName="demand-pipeline")["StackResourceSummaries"]
    return {"stack": stack, "resources": resources, "dropped_types": dropped_types}


def test_stack_creates_on_moto(deployed_stack):
    assert deployed_stack["stack"]["StackStatus"] == "CREATE_COMPLETE"
    deployed = {r["ResourceType"] for r in deployed_stack["resources"]}
    # The types moto cannot create are the AWS-only services; everything else deployed.
    assert {"AWS::Kinesis::Stream", "AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::SNS::Topic"} <= deployed
    assert {"AWS::IAM::Role", "AWS::KMS::Key", "AWS::Lambda::Function"} <= deployed
    assert "AWS::KinesisFirehose::DeliveryStream" in deployed_stack["dropped_types"]
    print("moto deployed:", sorted(deployed), "\nnot supported by moto:", sorted(deployed_stack["dropped_types"]))


def test_streams_exist_with_the_code_names(deployed_stack, aws):
    kinesis = aws("kinesis")
    for name in NAMES.streams:
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        assert summary["StreamStatus"] == "ACTIVE"
        # moto's CloudFormation ignores StreamEncryption and StreamModeDetails; the unit tests check the template.


def test_every_bucket_role_exists_encrypted_and_tagged(deployed_stack, aws):
    s3 = aws("s3")
    for role in BUCKET_ROLES:
        bucket = NAMES.bucket(role)
        s3.head_bucket(Bucket=bucket)
        rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
        assert tags["tenant"] == "acme"
        assert tags["project"] == "demand-pipeline"


def test_tables_have_their_keys(deployed_stack, aws):
    dynamodb = aws("dynamodb")
    keys = {NAMES.champion_table: "dataset_group", NAMES.api_cache_table: "item_id", NAMES.run_table: "run_id"}
    for table, key in keys.items():
        description = dynamodb.describe_table(TableName=table)["Table"]
        assert description["KeySchema"] == [{"AttributeName": key, "KeyType": "HASH"}]
    # moto's CloudFormation ignores TimeToLiveSpecification, SSE and PITR; the unit tests check the template.


def test_topic_state_machine_and_roles_exist(deployed_stack, aws):
    topics = [t["TopicArn"] for t in aws("sns").list_topics()["Topics"]]
    assert any(arn.endswith(":" + NAMES.notify_topic) for arn in topics)
    machines = [m["name"] for m in aws("stepfunctions").list_state_machines()["stateMachines"]]
    assert "demand-forecast-orchestrator" in machines
    roles = {r["RoleName"] for r in aws("iam").list_roles()["Roles"]}
    assert {"demand-flink-outlier-split", "demand-firehose-landing", "demand-glue-jobs"} <= roles


def test_s3_trigger_rules_exist(deployed_stack, aws):
    rules = {r["Name"]: r for r in aws("events").list_rules(NamePrefix="demand-")["Rules"]}
    assert {"demand-forecast-input-ready", "demand-forecast-export-ready"} <= set(rules)
    pattern = json.loads(rules["demand-forecast-input-ready"]["EventPattern"])
    assert pattern["detail"]["bucket"]["name"] == [NAMES.bucket("forecast-input")]


def test_state_machine_runs_the_orchestrator_definition(deployed_stack, aws):
    from forecast_orchestrator.state_machine import STEP_FUNCTION, definition

    sfn = aws("stepfunctions")
    (machine,) = [m for m in sfn.list_state_machines()["stateMachines"] if m["name"] == "demand-forecast-orchestrator"]
    deployed = json.loads(sfn.describe_state_machine(stateMachineArn=machine["stateMachineArn"])["definition"])
    function_arn = aws("lambda").get_function(FunctionName="demand-forecast-orchestrator")["Configuration"][
        "FunctionArn"
    ]
    assert deployed == json.loads(json.dumps(definition()).replace(STEP_FUNCTION, function_arn))


def test_forecast_input_rule_passes_bucket_and_manifest_key(deployed_stack, aws):
    (target,) = aws("events").list_targets_by_rule(Rule="demand-forecast-input-ready")["Targets"]
    assert target["Arn"].endswith(":stateMachine:demand-forecast-orchestrator")
    transformer = target["InputTransformer"]
    assert transformer["InputPathsMap"] == {"bucket": "$.detail.bucket.name", "manifest_key": "$.detail.object.key"}
    assert transformer["InputTemplate"] == '{"bucket": <bucket>, "manifest_key": <manifest_key>}'
