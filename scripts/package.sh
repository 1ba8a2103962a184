#!/usr/bin/env bash
# `make package`: build the deployment artefacts under artefacts/ (no network, no AWS).
#
#   artefacts/flink/outlier-split.zip      Managed Flink application: flink_jobs/ + streaming/ + core/ + site_packages/
#                                          (+ lib/flink-sql-connector-kinesis.jar if you fetched it, see below)
#   artefacts/glue/<job>.py                Glue 5.0 entry scripts (glue_jobs/*.py with a main)
#   artefacts/glue/demand_pipeline.zip     the packages the Glue scripts import (--extra-py-files)
#   artefacts/glue/wheels/*.whl            the third-party packages they import, as wheels of the lock's builds
#                                          (--additional-python-modules, installed with --no-index)
#   artefacts/lambda/orchestrator.zip      forecast orchestrator Lambda bundle (+ pydantic; boto3 is the runtime's)
#   artefacts/SHA256SUMS                   checksums of the above
#
# scripts/deploy.sh uploads artefacts/ under s3://<artefacts bucket>/<release>/ and deploys the stack.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${ARTEFACTS_DIR:-artefacts}
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

# The Kinesis SQL connector for Flink 2.x (named, never downloaded here: tests and the local run do not need it).
CONNECTOR_VERSION=${KINESIS_CONNECTOR_VERSION:-6.0.0-2.0}
CONNECTOR_JAR="flink-sql-connector-kinesis-${CONNECTOR_VERSION}.jar"
CONNECTOR_URL="https://repo1.maven.org/maven2/org/apache/flink/flink-sql-connector-kinesis/${CONNECTOR_VERSION}/${CONNECTOR_JAR}"
CONNECTOR_CACHE=${KINESIS_CONNECTOR_JAR:-${XDG_CACHE_HOME:-$HOME/.cache}/demand/jars/${CONNECTOR_JAR}}
# Managed Flink finds it through the run options in flink_jobs/properties.py (jarfile = lib/...).
JAR_IN_ZIP=$("$PY" -c 'from flink_jobs.properties import RUN_OPTIONS; print(RUN_OPTIONS["jarfile"])')

rm -rf "$OUT"
mkdir -p "$OUT"/flink "$OUT"/glue "$OUT"/lambda

# zip_tree OUTPUT DIR...: python packages without caches, paths relative to the repository root.
zip_tree() {
  local output=$1; shift
  "$PY" - "$output" "$@" <<'PYZIP'
import sys, zipfile
from pathlib import Path
output, *roots = sys.argv[1:]
with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as zf:
    for root in roots:
        base = Path(root)
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts or path.suffix in {".pyc", ".pyo"}:
                continue
            zf.write(path, str(path))
print(f"  {output}: {len(zipfile.ZipFile(output).namelist())} files")
PYZIP
}

echo "Flink application"
zip_tree "$OUT/flink/outlier-split.zip" flink_jobs streaming core
# Managed Flink installs nothing: the packages the job imports go into the zip, under the pyFiles folder.
SITE=$("$PY" -c 'from flink_jobs.properties import RUN_OPTIONS; print(RUN_OPTIONS["pyFiles"].rstrip("/"))')
PACKAGES=$("$PY" -c 'from flink_jobs.properties import FLINK_JOB_PACKAGES; print(" ".join(FLINK_JOB_PACKAGES))')
# shellcheck disable=SC2086
echo "  + $SITE/: $("$PY" scripts/vendor.py "$OUT/flink/outlier-split.zip" "$SITE" $PACKAGES)"
# Managed Flink takes one jar file: the connector's, with the job's own operators (flink_jobs/java) added.
OWN_JAR=$("$PY" -m flink_jobs.jars)
CONNECTOR=""
[ -f "$CONNECTOR_CACHE" ] && CONNECTOR="$CONNECTOR_CACHE"
"$PY" - "$OUT/flink/outlier-split.zip" "$JAR_IN_ZIP" "$OWN_JAR" "$CONNECTOR" <<'PYJAR'
import io, sys, zipfile
app, jar_in_zip, own, connector = sys.argv[1:]
merged = io.BytesIO()
with zipfile.ZipFile(merged, "w", zipfile.ZIP_DEFLATED) as out:
    for source in filter(None, (connector, own)):
        with zipfile.ZipFile(source) as jar:
            for entry in jar.infolist():
                out.writestr(entry, jar.read(entry))
with zipfile.ZipFile(app, "a") as zf:
    zf.writestr(jar_in_zip, merged.getvalue())
PYJAR
if [ -n "$CONNECTOR" ]; then
  echo "  + $JAR_IN_ZIP ($CONNECTOR_JAR + the job's operators)"
else
  cat >&2 <<MSG
  note: the Kinesis connector is not bundled ($JAR_IN_ZIP holds only the job's own operators).
        On a machine that reaches Maven Central:
          mkdir -p "$(dirname "$CONNECTOR_CACHE")" && curl -fL -o $CONNECTOR_CACHE $CONNECTOR_URL
        then run make package again (KINESIS_CONNECTOR_VERSION overrides $CONNECTOR_VERSION; check it matches
        the Flink runtime of the application, FLINK-2_3).
MSG
fi

echo "Glue scripts"
for script in glue_jobs/build_forecast_inputs.py glue_jobs/enrich_forecast.py glue_jobs/forecast_steps.py; do
  if [ -f "$script" ]; then cp "$script" "$OUT/glue/"; echo "  $OUT/glue/$(basename "$script")"
  else echo "  warning: $script does not exist yet; the Glue job will fail until it does" >&2; fi
done
zip_tree "$OUT/glue/demand_pipeline.zip" glue_jobs forecast_orchestrator alerts core
# Every job's wheels (glue_jobs/packages.py) in one folder; the templates name each job's own (infra/generate.py).
WHEELS=$("$PY" -c 'from glue_jobs.packages import GLUE_JOB_PACKAGES as P; print(" ".join(sorted({n for v in P.values() for n in v})))')
RUNTIME=$("$PY" -c 'from glue_jobs.packages import GLUE_RUNTIME; print(" ".join(GLUE_RUNTIME))')
# shellcheck disable=SC2086
echo "  $OUT/glue/wheels/: $("$PY" scripts/vendor.py --wheels "$OUT/glue/wheels" $WHEELS --without $RUNTIME | wc -w) wheels"

echo "Lambda bundle"
zip_tree "$OUT/lambda/orchestrator.zip" forecast_orchestrator core
# The Lambda runtime brings boto3 and nothing else we import: the rest goes into the bundle's root.
PACKAGES=$("$PY" -c 'from forecast_orchestrator.handlers import LAMBDA_PACKAGES; print(" ".join(LAMBDA_PACKAGES))')
# shellcheck disable=SC2086
echo "  + $("$PY" scripts/vendor.py "$OUT/lambda/orchestrator.zip" . $PACKAGES)"

(cd "$OUT" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > SHA256SUMS)
echo "artefacts ready in $OUT/ (deploy with: make deploy)"
