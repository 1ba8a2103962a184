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
    for name in _imported(module, members=True):
        if name.split(".")[0] in FIRST_PARTY:
            found.add(name.split(".")[0])
            path = ROOT / Path(*name.split("."))
            for candidate in (path.with_suffix(".py"), path / "__init__.py"):
                found |= imported_packages(candidate, seen)
    return found


def _imported(module: Path, members: bool) -> list[str]:
    """The dotted names a module imports, also inside functions (with members: `from a import b` gives a and a.b)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names += [node.module] + ([f"{node.module}.{a.name}" for a in node.names] if members else [])
    return names


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
        ("demand_pipeline.zip", "glue_jobs/detect_demand_anomalies.py"),
        ("orchestrator.zip", "forecast_orchestrator/handlers.py"),
        ("outlier-split.zip", "flink_jobs/outlier_split.py"),
    ],
)
def test_bundle_carries_what_its_entry_point_imports(zip_name, entry):
    needed = imported_packages(ROOT / entry)
    assert needed <= bundle(zip_name), f"{zip_name} lacks {needed - bundle(zip_name)} for {entry}"


def _glue_imports(entry: Path) -> set[str]:
    """Top-level third-party modules imported by the entry and the first-party modules it reaches."""
    seen: set[Path] = set()
    imported_packages(entry, seen)
    found = {name.split(".")[0] for module in seen for name in _imported(module, members=False)}
    return found - FIRST_PARTY


@pytest.mark.parametrize("job", ["build_forecast_inputs", "enrich_forecast", "forecast_steps"])
def test_each_glue_job_installs_every_third_party_package_its_code_imports(job):
    """What a Glue job's code imports is the Glue runtime's (Spark, awsglue, the AWS SDK), the standard library's,
    or in the job's wheels (glue_jobs/packages.py): a package missing there fails the job at import on AWS."""
    import sys
    from importlib.metadata import packages_distributions

    sys.path.insert(0, str(ROOT / "scripts"))
    from vendor import closure, wheel_names

    from glue_jobs.packages import GLUE_JOB_PACKAGES, GLUE_RUNTIME

    shipped = set(wheel_names(GLUE_JOB_PACKAGES[job], GLUE_RUNTIME))
    runtime = set(closure(list(GLUE_RUNTIME))) | {"awsglue"}
    owners = packages_distributions()
    # imported inside core.contracts' functions that only the Flink job (row type) and the local landing (parquet
    # schema) call
    elsewhere = {"pyflink", "pyarrow"}
    for module in _glue_imports(ROOT / "glue_jobs" / f"{job}.py") - set(sys.stdlib_module_names) - elsewhere:
        dists = {d.lower().replace("_", "-") for d in owners.get(module, [module])}
        assert dists & (shipped | runtime), f"{job} imports {module} ({dists}), neither shipped nor Glue's own"


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    """make package, once for the module: artefacts/ with a stand-in for the Kinesis connector jar."""
    import os
    import subprocess
    import sys
    import zipfile

    tmp = tmp_path_factory.mktemp("package")
    connector = tmp / "connector.jar"  # stands in for flink-sql-connector-kinesis (not downloadable here)
    with zipfile.ZipFile(connector, "w") as jar:
        jar.writestr("org/apache/flink/connector/kinesis/Stand.class", b"\xca\xfe\xba\xbe")
    env = {**os.environ, "ARTEFACTS_DIR": str(tmp / "art"), "KINESIS_CONNECTOR_JAR": str(connector)}
    env["PY"] = sys.executable
    done = subprocess.run(["scripts/package.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return tmp / "art"


def test_flink_application_jar_holds_the_connector_and_the_jobs_operators(artefacts, tmp_path):
    import io
    import subprocess
    import sys
    import zipfile

    from flink_jobs.properties import RUN_OPTIONS

    with zipfile.ZipFile(artefacts / "flink/outlier-split.zip") as app:
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


def test_the_lambda_bundle_imports_on_the_lambda_runtime_without_the_ensembles_libraries(artefacts, tmp_path):
    """The orchestrator Lambda gets its bundle and the runtime's boto3, nothing else: in an interpreter that sees only
    those, the handler imports, picks the Glue backend, and loads neither pandas nor the models."""
    import subprocess
    import sys
    import zipfile

    zipfile.ZipFile(artefacts / "lambda/orchestrator.zip").extractall(tmp_path / "bundle")
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


@pytest.mark.slow
def test_the_forecast_steps_glue_job_installs_its_wheels_with_no_index_and_forecasts(artefacts, tmp_path):
    """Glue 5.0 as far as it can be had here: a clean Python 3.11 venv holding only the runtime's AWS SDK installs the
    job's wheels (the templates' list, from artefacts/glue/wheels/) with pip --no-index, then the job's code from
    demand_pipeline.zip imports and runs the open ensemble on a small data set."""
    import subprocess
    import sys

    from glue_jobs.packages import GLUE_RUNTIME, INSTALLER_OPTION

    generated = (ROOT / "infra/terraform/generated.tf").read_text()
    start = generated.index("forecast_steps = [")
    block = generated[start : generated.index("]", start)]
    wheels = re.findall(r'"([^"]+\.whl)"', block)
    assert wheels and all((artefacts / "glue/wheels" / w).is_file() for w in wheels)
    venv = tmp_path / "glue"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = str(venv / "bin/python")
    sdk = tmp_path / "sdk"  # what Glue provides: the AWS SDK (Spark is left out: the ensemble step does not need it)
    subprocess.run([sys.executable, str(ROOT / "scripts/vendor.py"), "--wheels", str(sdk), "boto3"], check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    for source in ([str(w) for w in sorted(sdk.glob("*.whl"))], [str(artefacts / "glue/wheels" / w) for w in wheels]):
        done = subprocess.run([py, "-m", "pip", "install", "-q", "--no-compile", INSTALLER_OPTION, *source],
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert "pyspark" in GLUE_RUNTIME
    import pickle

    from bench.forecast import DAYS, holdout, weekly_demand
    from streaming.generator import GeneratorConfig

    inputs, _ = holdout(*weekly_demand(GeneratorConfig(seed=3, stores=1, items=4, days=DAYS)))
    (tmp_path / "inputs.pickle").write_bytes(pickle.dumps(inputs))
    check = (
        "import pickle, sys; sys.path.insert(0, sys.argv[1])\n"
        "from forecast_orchestrator.ensemble import EnsembleConfig, EnsembleModel\n"
        "inputs = pickle.loads(open(sys.argv[2], 'rb').read())\n"
        "model = EnsembleModel(EnsembleConfig(backtest_windows=1, n_jobs=1))\n"
        "forecast = model.forecast(inputs, model.train(inputs))\n"
        "print(len(forecast), forecast['unique_id'].nunique() * inputs.horizon)\n"
    )
    code = str(artefacts / "glue/demand_pipeline.zip")
    run = subprocess.run([py, "-I", "-c", check, code, str(tmp_path / "inputs.pickle")], capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows, expected = run.stdout.split()[-2:]
    assert rows == expected != "0"
