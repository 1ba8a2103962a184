"""Each deployment bundle (scripts/package.sh) carries every first-party package its entry points import."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = {
    "core",
    "streaming",
    "flink_jobs",
    "glue_jobs",
    "forecast_orchestrator",
    "query",
    "api",
    "local_stack",
    "demand",
}


def imported_packages(module: Path, seen: set[Path] | None = None) -> set[str]:
    """First-party top-level packages a module needs, following first-party imports transitively."""
    seen = seen if seen is not None else set()
    if module in seen or not module.exists():
        return set()
    seen.add(module)
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] in FIRST_PARTY:
                found.add(name.split(".")[0])
                path = ROOT / Path(*name.split("."))
                for candidate in (path.with_suffix(".py"), path / "__init__.py"):
                    found |= imported_packages(candidate, seen)
    return found


def bundle(name: str) -> set[str]:
    line = next(
        row for row in (ROOT / "scripts/package.sh").read_text().splitlines() if re.search(rf"zip_tree .*/{name}", row)
    )
    return set(line.split()[2:])


@pytest.mark.parametrize(
    ("zip_name", "entry"),
    [
        ("demand_pipeline.zip", "glue_jobs/build_forecast_inputs.py"),
        ("demand_pipeline.zip", "glue_jobs/enrich_forecast.py"),
        ("demand_pipeline.zip", "glue_jobs/forecast_steps.py"),
        ("orchestrator.zip", "forecast_orchestrator/handlers.py"),
        ("outlier-split.zip", "flink_jobs/outlier_split.py"),
    ],
)
def test_bundle_carries_what_its_entry_point_imports(zip_name, entry):
    needed = imported_packages(ROOT / entry)
    assert needed <= bundle(zip_name), f"{zip_name} lacks {needed - bundle(zip_name)} for {entry}"


def test_flink_application_jar_holds_the_connector_and_the_jobs_operators(tmp_path):
    import io
    import os
    import subprocess
    import sys
    import zipfile

    from flink_jobs.properties import RUN_OPTIONS

    connector = tmp_path / "connector.jar"  # stands in for flink-sql-connector-kinesis (not downloadable here)
    with zipfile.ZipFile(connector, "w") as jar:
        jar.writestr("org/apache/flink/connector/kinesis/Stand.class", b"\xca\xfe\xba\xbe")
    env = {**os.environ, "ARTEFACTS_DIR": str(tmp_path / "art"), "KINESIS_CONNECTOR_JAR": str(connector)}
    env["PY"] = sys.executable
    done = subprocess.run(["scripts/package.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(tmp_path / "art/flink/outlier-split.zip") as app:
        inner = zipfile.ZipFile(io.BytesIO(app.read(RUN_OPTIONS["jarfile"])))
        assert {
            "org/apache/flink/connector/kinesis/Stand.class",
            "demand/flink/MicroBatcher.class",
            "demand/flink/SplitLines.class",
        } <= set(inner.namelist())
        assert "flink_jobs/outlier_split.py" in app.namelist()
        app.extractall(tmp_path / "app")
    # Managed Flink installs nothing: in an interpreter that sees only the zip (and no site-packages: -I -S), the job
    # imports and judges records with the packages the zip carries under pyFiles. PyFlink is the runtime's own.
    check = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[1] + '/' + sys.argv[2]]\n"
        "import flink_jobs.outlier_split\n"
        "from flink_jobs.judge import Judge\n"
        "from flink_jobs.detector import Detector\n"
        "out, _ = Judge(Detector(), 'zip')([b'not json'], [None], [None], {}.get)\n"
        "print(out['rejected'][0].decode())\n"
    )
    site = RUN_OPTIONS["pyFiles"].rstrip("/")
    run = subprocess.run([sys.executable, "-I", "-S", "-c", check, str(tmp_path / "app"), site],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert '"error_code":"invalid_json"' in run.stdout
    assert (tmp_path / "app" / site / "pydantic_core").is_dir()


def test_the_lambda_bundle_imports_on_the_lambda_runtime_without_the_ensembles_libraries(tmp_path):
    """The orchestrator Lambda gets its bundle and the runtime's boto3, nothing else: in an interpreter that sees only
    those, the handler imports, picks the Glue backend, and loads neither pandas nor the models."""
    import os
    import subprocess
    import sys
    import zipfile

    env = {**os.environ, "ARTEFACTS_DIR": str(tmp_path / "art"), "PY": sys.executable}
    done = subprocess.run(["scripts/package.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    zipfile.ZipFile(tmp_path / "art/lambda/orchestrator.zip").extractall(tmp_path / "bundle")
    runtime = tmp_path / "runtime.zip"  # what the Lambda runtime provides: boto3 and its requirements
    subprocess.run([sys.executable, str(ROOT / "scripts/vendor.py"), str(runtime), ".", "boto3"], check=True,
                   capture_output=True)  # fmt: skip
    zipfile.ZipFile(runtime).extractall(tmp_path / "runtime")
    check = (
        "import sys; sys.path[:0] = sys.argv[1:3]\n"
        "from forecast_orchestrator import handlers\n"
        "from core.settings import Settings\n"
        "rt = handlers.Runtime.build(Settings(runtime='aws', model_job='demand-forecast-steps'))\n"
        "heavy = [m for m in ('pandas', 'numpy', 'pyarrow', 'statsforecast', 'lightgbm') if m in sys.modules]\n"
        "print(type(rt.backend).__name__, heavy)\n"
    )
    run = subprocess.run([sys.executable, "-I", "-S", "-c", check, str(tmp_path / "bundle"), str(tmp_path / "runtime")],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "GlueEnsembleBackend []"
