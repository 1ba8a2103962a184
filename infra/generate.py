"""Write the code-derived parts of the infrastructure: Glue columns, partitions and wheels, Flink properties, the ASL.

The columns come from core.contracts (Contract.glue_columns()), the partition keys and projection from core/tables.py,
the property groups from flink_jobs/properties.py, the Step Functions definition from
forecast_orchestrator.state_machine.definition() (the same document as state_machine.asl.json), each Glue job's
wheels from glue_jobs/packages.py and the lock's installed builds (scripts/vendor.py names them). They are written
between `# BEGIN GENERATED ...` / `# END GENERATED ...` markers in the CloudFormation template and into
infra/terraform/generated.tf, so neither template is edited by hand where the code defines something.
`python infra/generate.py --check` exits 1 when a template is stale (tests run it).

The definition keeps the `${ForecastStepFunctionArn}` placeholder of the step Lambda: CloudFormation fills it
from DefinitionSubstitutions, Terraform with replace() on the jsonencode()d local (in HCL the literal is
written `$${ForecastStepFunctionArn}`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from pathlib import Path

from core.contracts import Contract
from core.tables import LANDED
from flink_jobs import properties
from forecast_orchestrator import state_machine
from glue_jobs.packages import GLUE_JOB_PACKAGES, GLUE_RUNTIME, INSTALLER_OPTION

INFRA = Path(__file__).resolve().parent
TEMPLATE = INFRA / "cloudformation" / "pipeline.yaml"
TERRAFORM_GENERATED = INFRA / "terraform" / "generated.tf"
WIDTH = 120  # generated lines stay this short where a value allows it

# Glue table -> contract: the landed tables of core/tables.py (the templates define them; enrich_forecast registers
# the enriched table itself).
TABLE_CONTRACTS: dict[str, Contract] = {name: table.contract for name, table in LANDED.items()}

_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)# BEGIN GENERATED columns (?P<name>\w+)\n.*?^[ \t]*# END GENERATED columns (?P=name)\n",
    re.DOTALL | re.MULTILINE,
)


_PARTITION_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)# BEGIN GENERATED (?P<kind>partitions|partition_keys) (?P<name>\w+)\n.*?"
    r"^[ \t]*# END GENERATED (?P=kind) (?P=name)\n",
    re.DOTALL | re.MULTILINE,
)
# Bucket role -> the template's logical bucket resource, for the location templates.
_BUCKETS = {"staged": "StagedBucket", "analysis": "AnalysisBucket", "rejected": "RejectedBucket"}

_DEFINITION_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)# BEGIN GENERATED definition\b[^\n]*\n.*?^[ \t]*# END GENERATED definition\n",
    re.DOTALL | re.MULTILINE,
)


_MODULES_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)# BEGIN GENERATED python_modules (?P<name>\w+)\n.*?"
    r"^[ \t]*# END GENERATED python_modules (?P=name)\n",
    re.DOTALL | re.MULTILINE,
)


def glue_wheels(job: str) -> list[str]:
    """The wheel files the Glue job installs (artefacts/glue/wheels/, built by make package with scripts/vendor.py)."""
    spec = importlib.util.spec_from_file_location("vendor", INFRA.parent / "scripts" / "vendor.py")
    assert spec and spec.loader
    vendor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vendor)
    return [vendor.wheel_file(name) for name in vendor.wheel_names(GLUE_JOB_PACKAGES[job], GLUE_RUNTIME)]


def _cfn_python_modules(match: re.Match[str]) -> str:
    indent, job = match["indent"], match["name"]
    if job not in GLUE_JOB_PACKAGES:
        raise KeyError(f"{TEMPLATE}: GENERATED python_modules block for unknown Glue job {job!r}")
    lines = [f"{indent}# BEGIN GENERATED python_modules {job}", f'{indent}"--additional-python-modules": !Join']
    lines.append(f'{indent}  - ","')
    for i, wheel in enumerate(glue_wheels(job)):
        item = "  - - " if i == 0 else "    - "
        lines.append(f'{indent}{item}!Sub "s3://${{ArtefactsBucket}}/${{ArtefactsPrefix}}/glue/wheels/{wheel}"')
    lines.append(f'{indent}"--python-modules-installer-option": {json.dumps(INSTALLER_OPTION)}')
    lines.append(f"{indent}# END GENERATED python_modules {job}")
    return "\n".join(lines) + "\n"


def _json_block(value: object, indent: str, column: int) -> str:
    """JSON, a nested value on one line when it fits in WIDTH from `column`, else one item per line."""
    inline = json.dumps(value)
    if column + len(inline) <= WIDTH or not isinstance(value, (dict, list)) or not value:
        return inline
    inner = indent + "  "
    if isinstance(value, dict):
        keys = {k: f"{json.dumps(k)}: " for k in value}
        items = [keys[k] + _json_block(v, inner, len(inner) + len(keys[k]) + 1) for k, v in value.items()]
        return "{\n" + ",\n".join(inner + item for item in items) + f"\n{indent}}}"
    items = [_json_block(v, inner, len(inner) + 1) for v in value]
    return "[\n" + ",\n".join(inner + item for item in items) + f"\n{indent}]"


def _cfn_definition(indent: str) -> str:
    """`Definition:` as a JSON (= YAML flow) mapping, indented below the key."""
    lines = [f"{indent}# BEGIN GENERATED definition (forecast_orchestrator/state_machine.py definition())"]
    body = _json_block(state_machine.definition(), indent + "  ", len(indent) + len("Definition: "))
    lines.append(f"{indent}Definition: {body}")
    lines.append(f"{indent}# END GENERATED definition")
    return "\n".join(lines) + "\n"


def _cfn_columns(contract: Contract, indent: str) -> str:
    lines = [f"{indent}# BEGIN GENERATED columns {contract.name}"]
    lines += [f"{indent}- {json.dumps(col)}" for col in contract.glue_columns()]
    lines.append(f"{indent}# END GENERATED columns {contract.name}")
    return "\n".join(lines) + "\n"


def _cfn_partitions(match: re.Match[str]) -> str:
    """A table's partition projection parameters and location template, or its partition keys (core/tables.py)."""
    indent, kind, name = match["indent"], match["kind"], match["name"]
    if name not in LANDED:
        raise KeyError(f"{TEMPLATE}: GENERATED {kind} block for unknown table {name!r}")
    table = LANDED[name]
    lines = [f"{indent}# BEGIN GENERATED {kind} {name}"]
    if kind == "partitions":
        lines += [f"{indent}{key}: {json.dumps(value)}" for key, value in table.projection().items()]
        location = table.location_template("${" + _BUCKETS[table.bucket_role] + "}").replace("${y", "${!y")
        location = location.replace("${m", "${!m")
        lines.append(f'{indent}storage.location.template: !Sub "{location}"')
    else:
        lines += [f"{indent}- {{Name: {key}, Type: string}}" for key in table.partitions]
    lines.append(f"{indent}# END GENERATED {kind} {name}")
    return "\n".join(lines) + "\n"


def render_template(text: str) -> str:
    """The template text with every GENERATED block rewritten from the code (columns, partitions, definition)."""
    contracts = {c.name: c for c in TABLE_CONTRACTS.values()}

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in contracts:
            raise KeyError(f"{TEMPLATE}: GENERATED block for unknown contract {name!r}")
        return _cfn_columns(contracts[name], match["indent"])

    text = _BLOCK.sub(replace, text)
    text = _PARTITION_BLOCK.sub(_cfn_partitions, text)
    text, found = _MODULES_BLOCK.subn(_cfn_python_modules, text)
    if found != len(GLUE_JOB_PACKAGES):
        raise ValueError(f"{TEMPLATE}: expected a GENERATED python_modules block per Glue job, found {found}")
    text, found = _DEFINITION_BLOCK.subn(lambda m: _cfn_definition(m["indent"]), text)
    if found != 1:
        raise ValueError(f"{TEMPLATE}: expected one GENERATED definition block, found {found}")
    return text


def _hcl(value: object) -> str:
    """A JSON scalar, list or object as an HCL expression; `${` and `%{` escaped so they stay literal."""
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _hcl_key(key: str) -> str:
    return key if _IDENTIFIER.fullmatch(key) and key not in {"true", "false", "null"} else _hcl(key)


def _hcl_inline(value: object) -> str:
    if isinstance(value, dict) and value:
        return "{ " + ", ".join(f"{_hcl_key(k)} = {_hcl_inline(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_hcl_inline(v) for v in value) + "]"
    return _hcl(value)


def _hcl_block(value: object, indent: str, column: int) -> str:
    """A nested value as HCL: on one line when it fits in WIDTH from `column`, else one attribute per line
    (`=` of consecutive one-line attributes aligned, as terraform fmt does)."""
    inline = _hcl_inline(value)
    if column + len(inline) <= WIDTH or not isinstance(value, (dict, list)) or not value:
        return inline
    inner = indent + "  "
    if isinstance(value, list):
        return "[\n" + "".join(f"{inner}{_hcl_block(v, inner, len(inner) + 1)},\n" for v in value) + f"{indent}]"
    lines: list[str] = []
    run: list[tuple[str, object]] = []  # consecutive attributes that fit on one line, aligned together

    def flush() -> None:
        width = max((len(k) for k, _ in run), default=0)
        lines.extend(f"{inner}{k.ljust(width)} = {_hcl_inline(v)}" for k, v in run)
        run.clear()

    for key, item in value.items():
        name = _hcl_key(key)
        rendered = _hcl_block(item, inner, len(inner) + len(name) + 3)
        if "\n" in rendered:
            flush()
            lines.append(f"{inner}{name} = {rendered}")
        else:
            run.append((name, item))
    flush()
    return "{\n" + "\n".join(lines) + f"\n{indent}}}"


def render_terraform() -> str:
    """infra/terraform/generated.tf: table columns, Flink property keys and the state machine as locals."""
    out = [
        "# GENERATED by infra/generate.py from core/contracts.py, flink_jobs/properties.py,",
        "# forecast_orchestrator/state_machine.py and glue_jobs/packages.py. Do not edit.",
        "",
        "locals {",
        "  glue_table_columns = {",
    ]
    for table, contract in TABLE_CONTRACTS.items():
        out.append(f"    {table} = [")
        for col in contract.glue_columns():
            out.append(
                f"      {{ name = {_hcl(col['Name'])}, type = {_hcl(col['Type'])}, comment = {_hcl(col['Comment'])} }},"
            )
        out.append("    ]")
    out.append("  }")
    out.append("")
    sales = LANDED["sales"]  # every landed table has the same time keys
    out.append(f"  partition_keys_list  = {_hcl(list(sales.partitions))}")
    out.append(f"  partition_projection = {_hcl_inline(sales.projection())}")
    out.append(f"  partition_path       = {_hcl('/'.join(f'{k}=${{{k}}}' for k in sales.partitions))}")
    out.append(f"  partition_keys       = {_hcl(sales.firehose_prefix.removeprefix(sales.prefix + '/').rstrip('/'))}")
    out.append("  landing_jq = {")
    for name, landed in LANDED.items():
        out.append(f"    {name} = {_hcl(landed.firehose_jq)}")
    out.append("  }")
    out.append("")
    out.append(f"  flink_run_options_group = {_hcl(properties.RUN_OPTIONS_GROUP)}")
    out.append("  flink_run_options = {")
    for key, value in properties.RUN_OPTIONS.items():
        out.append(f"    {_hcl(key)} = {_hcl(value)}")
    out.append("  }")
    out.append(f"  flink_property_group = {_hcl(properties.PROPERTY_GROUP)}")
    out.append(f"  flink_property_keys  = {_hcl(sorted(properties.PROPERTIES))}")
    out.append("")
    out.append("  # glue_jobs/packages.py: the wheels each Glue job installs (pip option glue_installer_option)")
    out.append(f"  glue_installer_option = {_hcl(INSTALLER_OPTION)}")
    out.append("  glue_wheels = {")
    for job in GLUE_JOB_PACKAGES:
        out.append(f"    {job} = [")
        out += [f"      {_hcl(wheel)}," for wheel in glue_wheels(job)]
        out.append("    ]")
    out.append("  }")
    out.append("")
    out.append("  # forecast_orchestrator/state_machine.py definition(). The string $${ForecastStepFunctionArn} is the")
    out.append("  # literal ${ForecastStepFunctionArn}; main.tf replaces it with the orchestrator Lambda's ARN.")
    out.append(f"  sfn_definition = {_hcl_block(state_machine.definition(), '  ', len('  sfn_definition = '))}")
    out.append("}")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated part is stale; write nothing")
    args = parser.parse_args(argv)

    wanted = {TEMPLATE: render_template(TEMPLATE.read_text()), TERRAFORM_GENERATED: render_terraform()}
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(INFRA.parent)} (run python infra/generate.py)", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path])
        print(f"wrote {path.relative_to(INFRA.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
