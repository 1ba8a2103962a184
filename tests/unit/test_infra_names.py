"""The infrastructure names what the code uses: one definition (core.settings, core.contracts,
core.tables, flink_jobs.properties), two templates (CloudFormation, Terraform), no drift."""

from __future__ import annotations

import importlib.util
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from cfnlint.decode import cfn_yaml

from core.settings import BUCKET_ROLES, ResourceNames
from core.tables import LANDED
from flink_jobs import properties

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "cloudformation" / "pipeline.yaml"
TERRAFORM = ROOT / "infra" / "terraform"
NAMES = ResourceNames("demand")


def _load_generator() -> Any:
    # infra/ is not an installed package: load the generator by path (works from any directory).
    spec = importlib.util.spec_from_file_location("infra_generate", ROOT / "infra" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TABLE_CONTRACTS = _load_generator().TABLE_CONTRACTS


# --------------------------------------------------------------------------------------------- CloudFormation
@cache
def template() -> dict[str, Any]:
    return cfn_yaml.load(str(TEMPLATE))


def resources(type_: str) -> dict[str, dict[str, Any]]:
    return {k: r.get("Properties", {}) for k, r in template()["Resources"].items() if r["Type"] == type_}


def resolve(value: Any) -> Any:
    """Evaluate the intrinsic functions our names use, with every parameter at its default."""
    defaults = {name: p.get("Default") for name, p in template()["Parameters"].items()}
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return defaults.get(arg, f"<{arg}>")
        if fn == "Fn::Sub":
            text = arg if isinstance(arg, str) else arg[0]
            return re.sub(r"\$\{([\w:.]+)\}", lambda m: str(defaults.get(m[1], f"<{m[1]}>")), text)
        if fn == "Fn::Join":
            return arg[0].join(resolve(part) for part in resolve(arg[1]))
        if fn == "Fn::Split":
            return resolve(arg[1]).split(arg[0])
    return value


def names_of(type_: str, key: str) -> set[str]:
    return {resolve(props[key]) for props in resources(type_).values()}


def test_stream_names_are_the_code_names_and_encrypted():
    streams = resources("AWS::Kinesis::Stream")
    assert {resolve(s["Name"]) for s in streams.values()} == set(NAMES.streams)
    for stream in streams.values():
        assert stream["StreamEncryption"]["EncryptionType"] == "KMS"
        assert stream["StreamModeDetails"] == {"StreamMode": {"Ref": "StreamMode"}}
    assert template()["Parameters"]["StreamMode"]["AllowedValues"] == ["ON_DEMAND", "PROVISIONED"]


def test_a_bucket_per_role_with_the_code_names_and_the_hardening():
    buckets = resources("AWS::S3::Bucket")
    data = {k: b for k, b in buckets.items() if k != "AccessLogsBucket"}
    assert {resolve(b["BucketName"]) for b in data.values()} == set(NAMES.buckets.values())
    policies = {resolve(p["Bucket"]) for p in resources("AWS::S3::BucketPolicy").values()}
    for logical, bucket in data.items():
        sse = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms", logical
        assert all(bucket["PublicAccessBlockConfiguration"].values()), logical
        assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}, logical
        assert bucket["LifecycleConfiguration"]["Rules"], logical
        assert bucket["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "AccessLogsBucket"}, logical
        assert f"<{logical}>" in policies, f"{logical} has no TLS-only bucket policy"
    for policy in resources("AWS::S3::BucketPolicy").values():
        deny = policy["PolicyDocument"]["Statement"][0]
        assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_dynamodb_tables_keys_ttl_encryption_and_recovery():
    tables = {resolve(t["TableName"]): t for t in resources("AWS::DynamoDB::Table").values()}
    assert set(tables) == set(NAMES.tables)
    for name, key in NAMES.table_keys.items():
        assert tables[name]["KeySchema"] == [{"AttributeName": key, "KeyType": "HASH"}]
        assert tables[name]["SSESpecification"]["SSEEnabled"] is True
        assert tables[name]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert tables[NAMES.api_cache_table]["TimeToLiveSpecification"]["AttributeName"] == "expires_at"


def test_topic_and_glue_database_names():
    assert names_of("AWS::SNS::Topic", "TopicName") == {NAMES.notify_topic, NAMES.alerts_topic}
    assert {resolve(d["DatabaseInput"]["Name"]) for d in resources("AWS::Glue::Database").values()} == {
        NAMES.glue_database
    }
    assert ResourceNames("my-shop").glue_database == "my_shop"  # the Join/Split mirrors str.replace


def test_flink_property_groups_are_those_the_job_reads():
    (app,) = resources("AWS::KinesisAnalyticsV2::Application").values()
    assert app["RuntimeEnvironment"] == "FLINK-2_3"
    groups = {
        g["PropertyGroupId"]: g["PropertyMap"]
        for g in app["ApplicationConfiguration"]["EnvironmentProperties"]["PropertyGroups"]
    }
    assert groups[properties.RUN_OPTIONS_GROUP] == properties.RUN_OPTIONS
    assert set(groups[properties.PROPERTY_GROUP]) == set(properties.PROPERTIES)
    assert set(groups) == {properties.RUN_OPTIONS_GROUP, properties.PROPERTY_GROUP}
    streams = groups[properties.PROPERTY_GROUP]
    assert resolve(streams["input.stream"]) == "<SalesEventsStream>"
    by_logical = {k: resolve(r["Name"]) for k, r in resources("AWS::Kinesis::Stream").items()}
    for key, (_, _, table) in properties.AWS_SINKS.items():  # each output's stream is its table's landing stream
        logical = streams[key]["Ref"]
        assert by_logical[logical] == NAMES.landing_stream(table), key


def test_glue_tables_follow_the_contracts_and_the_landing_layout():
    tables = {t["TableInput"]["Name"]: t["TableInput"] for t in resources("AWS::Glue::Table").values()}
    assert set(tables) == set(TABLE_CONTRACTS)
    landings = LANDED
    for name, contract in TABLE_CONTRACTS.items():
        columns = tables[name]["StorageDescriptor"]["Columns"]
        assert columns == contract.glue_columns(), name
        landing = landings[name]
        assert landing.contract is contract
        bucket_logical = {"staged": "StagedBucket", "analysis": "AnalysisBucket", "rejected": "RejectedBucket"}
        location = tables[name]["StorageDescriptor"]["Location"]["Fn::Sub"]
        assert location == f"s3://${{{bucket_logical[landing.bucket_role]}}}/{landing.prefix}/"


def _delivery_table(delivery: dict[str, Any]) -> str:
    logical = delivery["ExtendedS3DestinationConfiguration"]["DataFormatConversionConfiguration"]["SchemaConfiguration"]
    return template()["Resources"][logical["TableName"]["Ref"]]["Properties"]["TableInput"]["Name"]


def test_every_output_of_the_aws_job_reaches_its_table_as_parquet_in_the_landing_layout():
    """The AWS job writes each output to a stream (properties.AWS_SINKS); that stream's Firehose must read it, convert
    it with the table's schema, and write the table's bucket and prefix: what the local landing writes for the same
    output (streaming/landing.py), and what the Glue build and Athena read."""
    from streaming.landing import table_for

    deliveries = resources("AWS::KinesisFirehose::DeliveryStream")
    by_stream = {resolve(d["DeliveryStreamName"]): d for d in deliveries.values()}
    assert set(by_stream) == {NAMES.landing_stream(table) for _, _, table in properties.AWS_SINKS.values()}
    bucket_logical = {"staged": "StagedBucket", "analysis": "AnalysisBucket", "rejected": "RejectedBucket"}
    for output, event_type, table in properties.AWS_SINKS.values():
        assert table_for(output, event_type).name == table  # the local landing routes it to the same table
        delivery = by_stream[NAMES.landing_stream(table)]
        source = delivery["KinesisStreamSourceConfiguration"]["KinesisStreamARN"]["Fn::GetAtt"][0]
        assert resolve(template()["Resources"][source]["Properties"]["Name"]) == NAMES.landing_stream(table)
        s3 = delivery["ExtendedS3DestinationConfiguration"]
        assert s3["BucketARN"] == {"Fn::GetAtt": [bucket_logical[LANDED[table].bucket_role], "Arn"]}, table
        assert s3["Prefix"] == LANDED[table].firehose_prefix
        assert _delivery_table(delivery) == table
        assert "!{firehose:error-output-type}" in s3["ErrorOutputPrefix"]
        conversion = s3["DataFormatConversionConfiguration"]
        assert conversion["Enabled"] is True
        assert "ParquetSerDe" in conversion["OutputFormatConfiguration"]["Serializer"]
        assert s3["BufferingHints"]["SizeInMBs"] == {"Ref": "FirehoseBufferMB"}
        (query,) = [p["ParameterValue"] for proc in s3["ProcessingConfiguration"]["Processors"]
                    for p in proc["Parameters"] if p["ParameterName"] == "MetadataExtractionQuery"]  # fmt: skip
        assert query == LANDED[table].firehose_jq, table


def test_the_roles_let_each_output_travel_its_way_and_no_further():
    roles = {k: r for k, r in resources("AWS::IAM::Role").items()}

    def allowed(role: str, sid: str) -> list:
        (statement,) = [s for p in roles[role]["Policies"] for s in p["PolicyDocument"]["Statement"] if s["Sid"] == sid]
        return statement["Resource"]

    streams = sorted(
        k for k, r in resources("AWS::Kinesis::Stream").items() if resolve(r["Name"]) != NAMES.sales_events_stream
    )
    assert sorted(r["Fn::GetAtt"][0] for r in allowed("FlinkRole", "WriteOutputs")) == streams
    assert sorted(r["Fn::GetAtt"][0] for r in allowed("FirehoseRole", "ReadStreams")) == streams
    flink_actions = {a for p in roles["FlinkRole"]["Policies"] for s in p["PolicyDocument"]["Statement"]
                     for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}  # fmt: skip
    assert not {a for a in flink_actions if a.startswith("s3:Put")}  # the job writes no object itself
    schemas = {resolve(r).rsplit("/", 1)[-1] for r in allowed("FirehoseRole", "ReadSchema")}
    assert {table for _, _, table in properties.AWS_SINKS.values()} <= schemas


def test_no_role_allows_every_action_on_every_resource():
    for logical, role in resources("AWS::IAM::Role").items():
        for policy in role.get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert not any(a == "*" or a.endswith(":*") for a in actions), (logical, statement)
                if statement.get("Resource") == "*":
                    # only APIs without resource-level permissions
                    assert all(a.split(":")[0] in {"cloudwatch", "logs", "xray"} for a in actions), logical


def test_every_taggable_resource_has_project_and_tenant_tags():
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    for logical, resource in template()["Resources"].items():
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource["Type"]).schema
        if "Tags" not in schema.get("properties", {}):
            continue
        tags = resource["Properties"].get("Tags")
        keys = set(tags) if isinstance(tags, dict) else {t["Key"] for t in tags or []}
        assert {"project", "tenant"} <= keys, logical


def test_every_parameter_and_output_is_documented():
    for section in ("Parameters", "Outputs"):
        for name, item in template()[section].items():
            assert len(item.get("Description", "")) > 10, f"{section}.{name}"
    readme = (ROOT / "infra" / "README.md").read_text()
    for name in template()["Parameters"]:
        assert f"`{name}`" in readme, f"parameter {name} missing from infra/README.md"


# --------------------------------------------------------------------------------------------- Terraform
def _one(value: Any) -> Any:
    return value[0] if isinstance(value, list) and len(value) == 1 else value


@cache
def terraform() -> dict[str, Any]:
    merged: dict[str, Any] = {"resource": {}, "locals": {}, "variable": {}, "data": {}, "provider": {}}
    for path in sorted(TERRAFORM.glob("*.tf")):
        parsed = hcl2.load(path.open())
        for block in parsed.get("resource", []):
            for type_, named in block.items():
                merged["resource"].setdefault(type_, {}).update(named)
        for block in parsed.get("locals", []):
            merged["locals"].update({k: _one(v) for k, v in block.items()})
        for block in parsed.get("variable", []):
            merged["variable"].update({k: {a: _one(b) for a, b in v.items()} for k, v in block.items()})
        for block in parsed.get("provider", []):
            merged["provider"].update(block)
    return merged


def tf_render(text: str, **values: str) -> str:
    """Substitute var.* defaults (and given locals) into a Terraform string."""
    defaults = {k: v.get("default") for k, v in terraform()["variable"].items()}
    text = re.sub(r"\$\{var\.(\w+)\}", lambda m: str(defaults[m[1]]), text)
    return re.sub(r"\$\{([\w.]+)\}", lambda m: values.get(m[1], m[0]), text)


def test_terraform_names_are_the_code_names():
    tf = terraform()
    local = tf["locals"]
    assert terraform()["variable"]["prefix"]["default"] == NAMES.prefix
    assert {tf_render(v) for v in local["streams"].values()} == set(NAMES.streams)
    assert local["bucket_roles"] == list(BUCKET_ROLES)
    assert _one(tf["resource"]["aws_s3_bucket"]["data"]["bucket"]) == "${each.value}"
    each_bucket = re.fullmatch(r'\$\{\{for role in local.bucket_roles : role => "(.+)"\}\}', local["buckets"])
    assert each_bucket, local["buckets"]
    assert {tf_render(each_bucket[1], role=r) for r in BUCKET_ROLES} == set(NAMES.buckets.values())
    table = tf["resource"]["aws_dynamodb_table"]["this"]
    assert {tf_render(_one(table["name"]), **{"each.key": k}) for k in local["dynamodb_tables"]} == set(NAMES.tables)
    assert local["dynamodb_tables"]["forecast-cache"]["ttl"] == "expires_at"
    assert tf_render(_one(tf["resource"]["aws_sns_topic"]["notifications"]["name"])) == NAMES.notify_topic
    assert local["glue_database"] == '${replace(var.prefix,"-","_")}'


def test_terraform_flink_properties_and_columns_match_the_code():
    local = terraform()["locals"]
    assert set(local["flink_properties"]) == set(properties.PROPERTIES)
    assert set(local["flink_property_keys"]) == set(properties.PROPERTIES)
    assert local["flink_run_options"] == properties.RUN_OPTIONS
    for table, contract in TABLE_CONTRACTS.items():
        columns = [
            {"Name": c["name"], "Type": c["type"], "Comment": c["comment"]} for c in local["glue_table_columns"][table]
        ]
        assert columns == contract.glue_columns(), table
    app = terraform()["resource"]["aws_kinesisanalyticsv2_application"]["outlier_split"]
    assert _one(app["runtime_environment"]) == "FLINK-2_3"


def test_terraform_lands_every_output_of_the_aws_job_in_its_table():
    local = terraform()["locals"]
    assert set(local["streams"]) == {s.removeprefix("demand-") for s in NAMES.streams}
    by_table = {landing["table"]: (stream, landing) for stream, landing in local["landings"].items()}
    assert set(by_table) == {table for _, _, table in properties.AWS_SINKS.values()}
    for key, (_, _, table) in properties.AWS_SINKS.items():
        stream, landing = by_table[table]
        assert tf_render(local["streams"][stream]) == NAMES.landing_stream(table)
        assert local["flink_properties"][key] == f'${{aws_kinesis_stream.this["{stream}"].name}}'
        assert landing["bucket"] == LANDED[table].bucket_role
        assert f"{landing['prefix']}/{local['partition_keys']}/" == LANDED[table].firehose_prefix
        assert local["landing_jq"][table] == LANDED[table].firehose_jq


# CloudFormation type -> Terraform type(s) describing the same thing.
_TF_EQUIVALENT = {
    "AWS::KMS::Key": "aws_kms_key",
    "AWS::KMS::Alias": "aws_kms_alias",
    "AWS::Kinesis::Stream": "aws_kinesis_stream",
    "AWS::S3::Bucket": "aws_s3_bucket",
    "AWS::S3::BucketPolicy": "aws_s3_bucket_policy",
    "AWS::Glue::Database": "aws_glue_catalog_database",
    "AWS::Glue::Table": "aws_glue_catalog_table",
    "AWS::Glue::Job": "aws_glue_job",
    "AWS::Glue::Trigger": "aws_glue_trigger",
    "AWS::Glue::SecurityConfiguration": "aws_glue_security_configuration",
    "AWS::Logs::LogGroup": "aws_cloudwatch_log_group",
    "AWS::Logs::LogStream": "aws_cloudwatch_log_stream",
    "AWS::IAM::Role": "aws_iam_role",
    "AWS::KinesisAnalyticsV2::Application": "aws_kinesisanalyticsv2_application",
    "AWS::KinesisAnalyticsV2::ApplicationCloudWatchLoggingOption": "aws_kinesisanalyticsv2_application",
    "AWS::KinesisFirehose::DeliveryStream": "aws_kinesis_firehose_delivery_stream",
    "AWS::DynamoDB::Table": "aws_dynamodb_table",
    "AWS::SNS::Topic": "aws_sns_topic",
    "AWS::SNS::TopicPolicy": "aws_sns_topic_policy",
    "AWS::SQS::Queue": "aws_sqs_queue",
    "AWS::Lambda::Function": "aws_lambda_function",
    "AWS::Lambda::Permission": "aws_lambda_permission",
    "AWS::StepFunctions::StateMachine": "aws_sfn_state_machine",
    "AWS::Events::Rule": "aws_cloudwatch_event_rule",
    "AWS::Athena::WorkGroup": "aws_athena_workgroup",
    "AWS::Athena::NamedQuery": "aws_athena_named_query",
    "AWS::CloudWatch::Alarm": "aws_cloudwatch_metric_alarm",
}


def _for_each_len(for_each: Any) -> int:
    """How many instances a for_each over a literal map, a local or another resource makes."""
    if isinstance(for_each, dict):
        return len(for_each)
    local = terraform()["locals"]
    ref = re.fullmatch(r"\$\{(local|aws_\w+)\.(\w+)\}", for_each)
    assert ref, f"cannot count for_each={for_each!r}"
    if ref[1] != "local":
        return _for_each_len(_one(terraform()["resource"][ref[1]][ref[2]]["for_each"]))
    value = local[ref[2]]
    comprehension = re.fullmatch(r"\$\{\{for \w+ in local\.(\w+) :.*\}\}", value) if isinstance(value, str) else None
    return len(local[comprehension[1]]) if comprehension else len(value)


def _tf_count(type_: str) -> int:
    """Instances of a Terraform resource type."""
    blocks = terraform()["resource"].get(type_, {}).values()
    return sum(1 if b.get("for_each") is None else _for_each_len(_one(b["for_each"])) for b in blocks)


@pytest.mark.parametrize("cfn_type", sorted(_TF_EQUIVALENT))
def test_terraform_describes_the_same_resources(cfn_type):
    cfn_count = len(resources(cfn_type))
    tf_type = _TF_EQUIVALENT[cfn_type]
    assert cfn_count, f"{cfn_type} is not in the template any more; update _TF_EQUIVALENT"
    if cfn_type == "AWS::KinesisAnalyticsV2::ApplicationCloudWatchLoggingOption":
        app = terraform()["resource"][tf_type]["outlier_split"]
        assert "cloudwatch_logging_options" in app  # a block of the application in Terraform
        return
    assert _tf_count(tf_type) == cfn_count, (cfn_type, tf_type)


def test_every_template_type_has_a_terraform_equivalent():
    assert {r["Type"] for r in template()["Resources"].values()} <= set(_TF_EQUIVALENT)


def test_terraform_tags_every_resource_with_project_and_tenant():
    (provider,) = (
        terraform()["provider"]["aws"]
        if isinstance(terraform()["provider"]["aws"], list)
        else [terraform()["provider"]["aws"]]
    )
    tags = _one(_one(provider["default_tags"])["tags"])
    assert tags == {"project": "${var.project}", "tenant": "${var.tenant}"}


def test_athena_projects_the_partitions_the_landing_writes():
    from datetime import datetime

    when = datetime(2009, 12, 7, 5)  # real history is inside the projected years too
    values = {"year": "2009", "month": "12"}
    for table in resources("AWS::Glue::Table").values():
        name, parameters = table["TableInput"]["Name"], table["TableInput"]["Parameters"]
        assert {k: v for k, v in parameters.items() if k.startswith("projection.")} == LANDED[name].projection()
        low, high = (int(y) for y in parameters["projection.year.range"].split(","))
        assert low <= when.year <= high
        template_text = parameters["storage.location.template"]["Fn::Sub"]
        rendered = re.sub(r"\$\{!(\w+)\}", lambda m: values[m[1]], template_text)
        bucket = rendered.split("/")[2]
        assert rendered == f"s3://{bucket}/{LANDED[name].partition(when)}", name
        assert [k["Name"] for k in table["TableInput"]["PartitionKeys"]] == list(LANDED[name].partitions)
    local = terraform()["locals"]
    assert local["partition_keys_list"] == list(LANDED["sales"].partitions)
    assert local["partition_projection"] == LANDED["sales"].projection()
    tf_table = terraform()["resource"]["aws_glue_catalog_table"]["landing"]
    assert "local.partition_projection" in str(tf_table["parameters"]) and "local.partition_path" in str(tf_table)
    assert _hcl_literal(local["partition_path"]) == "year=${year}/month=${month}"


def test_firehose_extracts_the_partition_keys_the_tables_have():
    queries = [
        p["ParameterValue"]
        for d in resources("AWS::KinesisFirehose::DeliveryStream").values()
        for proc in d["ExtendedS3DestinationConfiguration"]["ProcessingConfiguration"]["Processors"]
        for p in proc["Parameters"]
        if p["ParameterName"] == "MetadataExtractionQuery"
    ]
    assert sorted(queries) == sorted(LANDED[t].firehose_jq for _, _, t in properties.AWS_SINKS.values())


# --------------------------------------------------------------------------------------------- state machine
def _hcl_literal(value: Any) -> Any:
    """A parsed HCL value as Terraform evaluates it: escapes decoded, `$${`/`%%{` back to literal `${`/`%{`."""
    if isinstance(value, dict):
        return {k: _hcl_literal(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_hcl_literal(v) for v in value]
    if isinstance(value, str):
        assert not re.search(r"(?<!\$)\$\{|(?<!%)%\{", value.replace("$${", "").replace("%%{", "")), value
        return json.loads(f'"{value}"').replace("$${", "${").replace("%%{", "%{")
    return value


def test_template_state_machine_is_the_orchestrator_definition():
    from forecast_orchestrator.state_machine import ASL_PATH, STEP_FUNCTION, definition

    (machine,) = resources("AWS::StepFunctions::StateMachine").values()
    assert machine["Definition"] == definition() == json.loads(ASL_PATH.read_text())
    assert "DefinitionString" not in machine and "DefinitionS3Location" not in machine
    placeholder = STEP_FUNCTION.removeprefix("${").removesuffix("}")
    assert machine["DefinitionSubstitutions"] == {placeholder: {"Fn::GetAtt": ["OrchestratorFunction", "Arn"]}}
    tasks = [s for s in definition()["States"].values() if s["Type"] == "Task"]
    assert tasks and all(t["Parameters"]["FunctionName"] == STEP_FUNCTION for t in tasks)


def test_terraform_state_machine_is_the_orchestrator_definition():
    from forecast_orchestrator.state_machine import STEP_FUNCTION, definition

    assert _hcl_literal(terraform()["locals"]["sfn_definition"]) == definition()
    machine = terraform()["resource"]["aws_sfn_state_machine"]["forecast"]
    escaped = STEP_FUNCTION.replace("${", "$${")
    assert _one(machine["definition"]) == (
        f'${{replace(jsonencode(local.sfn_definition),"{escaped}",aws_lambda_function.orchestrator.arn)}}'
    )
    main_tf = (TERRAFORM / "main.tf").read_text()
    assert "sfn_steps" not in main_tf and "placeholder" not in main_tf.lower()


def test_state_machine_role_only_invokes_the_orchestrator_function():
    role = resources("AWS::IAM::Role")["StateMachineRole"]
    (policy,) = role["Policies"]
    lambda_statements = [
        s
        for s in policy["PolicyDocument"]["Statement"]
        if any(a.startswith("lambda:") for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))
    ]
    assert lambda_statements == [
        {
            "Sid": "InvokeSteps",
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": [
                {"Fn::GetAtt": ["OrchestratorFunction", "Arn"]},
                {"Fn::Sub": "${OrchestratorFunction.Arn}:*"},
            ],
        }
    ]
    iam_tf = hcl2.load((TERRAFORM / "iam.tf").open())
    (document,) = [
        b["aws_iam_policy_document"]["state_machine"]
        for b in iam_tf["data"]
        if "state_machine" in b.get("aws_iam_policy_document", {})
    ]
    lambda_tf = [s for s in document["statement"] if any(a.startswith("lambda:") for a in _one(s["actions"]))]
    assert [(_one(s["actions"]), _one(s["resources"])) for s in lambda_tf] == [
        (
            ["lambda:InvokeFunction"],
            ["${aws_lambda_function.orchestrator.arn}", "${aws_lambda_function.orchestrator.arn}:*"],
        )
    ]


def test_forecast_input_rule_starts_the_state_machine_with_bucket_and_manifest_key():
    rule = resources("AWS::Events::Rule")["ForecastInputRule"]
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Ref": "ForecastStateMachine"}
    paths = {"bucket": "$.detail.bucket.name", "manifest_key": "$.detail.object.key"}
    template_text = '{"bucket": <bucket>, "manifest_key": <manifest_key>}'
    assert target["InputTransformer"] == {"InputPathsMap": paths, "InputTemplate": template_text}
    tf_target = terraform()["resource"]["aws_cloudwatch_event_target"]["forecast_input_ready"]
    transformer = _one(tf_target["input_transformer"])
    assert _one(transformer["input_paths"]) == paths
    assert _hcl_literal(_one(transformer["input_template"])) == template_text
    # What the transformer produces from an S3 "Object Created" event is what start_run reads.
    event = {"detail": {"bucket": {"name": "demand-forecast-input"}, "object": {"key": "datasets/w=1/manifest.json"}}}
    values = {name: json.dumps(event["detail"][path.split(".")[2]][path.split(".")[3]]) for name, path in paths.items()}
    rendered = json.loads(re.sub(r"<(\w+)>", lambda m: values[m[1]], template_text))
    assert rendered == {"bucket": "demand-forecast-input", "manifest_key": "datasets/w=1/manifest.json"}


# --------------------------------------------------------------------------------------------- Glue job arguments
GLUE_SYSTEM_ARGS = {
    "extra-py-files", "TempDir", "job-language", "enable-metrics", "enable-continuous-cloudwatch-log",
    "enable-glue-datacatalog", "job-bookmark-option", "enable-job-insights", "additional-python-modules",
    "python-modules-installer-option",
}  # fmt: skip


@pytest.mark.parametrize(
    ("job_name", "module"),
    [
        ("build-forecast-inputs", "glue_jobs.build_forecast_inputs"),
        ("enrich-forecast", "glue_jobs.enrich_forecast"),
        ("forecast-steps", "glue_jobs.forecast_steps"),
        ("detect-demand-anomalies", "glue_jobs.detect_demand_anomalies"),
    ],
)
def test_every_glue_job_argument_in_the_template_is_one_the_job_reads(job_name, module):
    import importlib

    from core.settings import Settings

    job = importlib.import_module(module)
    jobs = {resolve(p["Name"]): p for p in resources("AWS::Glue::Job").values()}
    args = jobs[f"demand-{job_name}"]["DefaultArguments"]
    readable = (
        set(job.OPTIONAL) | set(Settings.model_fields) | set(getattr(job, "REQUIRED", ["JOB_NAME", "export_key"]))
    )
    unknown = {a.removeprefix("--") for a in args} - readable - GLUE_SYSTEM_ARGS
    assert not unknown, f"{job_name}: template passes arguments the job ignores: {unknown}"
    script = jobs[f"demand-{job_name}"]["Command"]["ScriptLocation"]
    assert resolve(script).endswith(module.split(".")[1] + ".py")


def test_the_glue_jobs_install_the_locked_builds_from_the_artefacts_bucket_and_no_index():
    """Both templates give each Glue job the wheels of glue_jobs/packages.py (the lock's versions), under the
    release's artefacts prefix, installed with --no-index: a job start reaches no package index."""
    from glue_jobs.packages import GLUE_JOB_PACKAGES, INSTALLER_OPTION

    locked = dict(
        line.strip().split("==") for line in (ROOT / "requirements.lock").read_text().splitlines() if "==" in line
    )
    locked = {name.lower().replace("_", "-"): version for name, version in locked.items()}
    prefix = "s3://None/artefacts/glue/wheels/"  # ArtefactsBucket has no default
    cfn = {}
    for job in resources("AWS::Glue::Job").values():
        args = job["DefaultArguments"]
        name = resolve(job["Name"]).removeprefix("demand-").replace("-", "_")
        assert args["--python-modules-installer-option"] == INSTALLER_OPTION
        wheels = resolve(args["--additional-python-modules"]).split(",")
        assert all(w.startswith(prefix) for w in wheels), wheels
        cfn[name] = [w.removeprefix(prefix) for w in wheels]
    generated = terraform()["locals"]
    assert generated["glue_installer_option"] == INSTALLER_OPTION
    assert generated["glue_wheels"] == cfn
    assert set(cfn) == set(GLUE_JOB_PACKAGES)
    main = (TERRAFORM / "main.tf").read_text()
    assert "local.glue_wheels[each.key]" in main and '"${local.artefacts}/glue/wheels/${w}"' in main
    assert '--python-modules-installer-option" = local.glue_installer_option' in main
    for job, wheels in cfn.items():
        pins = {w.split("-")[0].lower().replace("_", "-"): w.split("-")[1] for w in wheels}
        assert set(GLUE_JOB_PACKAGES[job]) <= set(pins), job
        for name, version in pins.items():
            assert locked[name] == version, (job, name)
        assert not {"pyspark", "boto3", "botocore"} & set(pins)  # the runtime's own
    assert {"statsforecast", "mlforecast", "lightgbm"} <= {w.split("-")[0] for w in cfn["forecast_steps"]}


def test_the_forecast_steps_job_may_write_what_the_ensemble_steps_write():
    """On AWS import, train, forecast and export run in the forecast-steps Glue job (ensemble_on_glue.STEPS): its
    role must write the predictors, the run files (requests, results, progress, forecasts) and the export."""
    from forecast_orchestrator.backends import progress_key
    from forecast_orchestrator.ensemble_on_glue import STEPS, request_key, result_key

    assert set(STEPS) == {"import", "train", "forecast", "export"}
    role = resources("AWS::IAM::Role")["GlueJobRole"]
    (statement,) = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]
                    if s["Sid"] == "WriteModelArtefacts"]  # fmt: skip
    prefixes = {
        resolve(r).split(">/")[-1].split("/")[0] for r in statement["Resource"]
    }  # <ForecastExportBucket.Arn>/...
    written = {progress_key("r"), result_key(request_key("r", "train")), "predictors/p/metrics.parquet", "exports/r/x"}
    assert {key.split("/")[0] for key in written} <= prefixes


def test_the_anomaly_job_may_write_its_table_and_alert_state_and_publish_only_to_the_alerts_topic():
    """detect_demand_anomalies writes demand_anomalies and alerts/ (sent state, feedback) in the analysis bucket and
    publishes to the alerts topic it is given: the role allows exactly that, in both templates."""
    from alerts.delivery import FEEDBACK_PREFIX, SENT_PREFIX
    from core.tables import DEMAND_ANOMALIES

    written = {DEMAND_ANOMALIES.prefix, SENT_PREFIX.split("/")[0], FEEDBACK_PREFIX.split("/")[0]}
    assert DEMAND_ANOMALIES.bucket_role == "analysis"
    statements = {s["Sid"]: s for p in resources("AWS::IAM::Role")["GlueJobRole"]["Policies"]
                  for s in p["PolicyDocument"]["Statement"]}  # fmt: skip
    prefixes = {resolve(r).split("<AnalysisBucket.Arn>/")[-1].split("/")[0]
                for r in statements["WriteAnomaliesAndAlerts"]["Resource"]}  # fmt: skip
    assert prefixes == written
    assert statements["PublishAlerts"] == {"Sid": "PublishAlerts", "Effect": "Allow", "Action": "sns:Publish",
                                           "Resource": {"Ref": "AlertsTopic"}}  # fmt: skip
    job = next(j for j in resources("AWS::Glue::Job").values() if "detect" in resolve(j["Name"]))
    assert job["DefaultArguments"]["--alerts_topic_arn"] == {"Ref": "AlertsTopic"}
    (trigger,) = [t for t in resources("AWS::Glue::Trigger").values() if t["Type"] == "CONDITIONAL"]
    assert trigger["Predicate"]["Conditions"][0]["JobName"] == {"Ref": "BuildForecastInputsJob"}
    assert trigger["Actions"] == [{"JobName": {"Ref": "DetectDemandAnomaliesJob"}}]

    iam_tf = hcl2.load((TERRAFORM / "iam.tf").open())
    (glue,) = [
        b["aws_iam_policy_document"]["glue"] for b in iam_tf["data"] if "glue" in b.get("aws_iam_policy_document", {})
    ]
    tf_statements = {_one(s["sid"]): s for s in glue["statement"]}
    tf_write = tf_statements["WriteAnomaliesAndAlerts"]["resources"]
    assert all(p in str(tf_write) for p in written) and "analysis" in str(tf_write)
    assert _one(tf_statements["PublishAlerts"]["resources"]) == ["${aws_sns_topic.alerts.arn}"]
    assert tf_render(_one(terraform()["resource"]["aws_sns_topic"]["alerts"]["name"])) == NAMES.alerts_topic
