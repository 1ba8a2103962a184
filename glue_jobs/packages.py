"""What each Glue job installs at start: the third-party distributions its code imports, as wheels of the lock's builds.

Glue 5.0 brings Spark and the AWS SDK; everything else a job imports (with what it requires) is rebuilt from this
environment into `artefacts/glue/wheels/` by `make package` and named in the job's `--additional-python-modules`,
installed with `--no-index`, so a job start reaches no package index. The templates' lists are generated from here
(infra/generate.py).
"""

from __future__ import annotations

# Every job imports core/: its settings (pydantic) and holiday calendar.
CORE_PACKAGES = ("pydantic", "pydantic-settings", "holidays")

GLUE_JOB_PACKAGES: dict[str, tuple[str, ...]] = {
    "build_forecast_inputs": CORE_PACKAGES,
    "enrich_forecast": CORE_PACKAGES,
    # the forecast inputs' loader (pandas) and the negative-binomial tails (scipy)
    "detect_demand_anomalies": (*CORE_PACKAGES, "scipy"),
    # the open ensemble's import, train, forecast and export steps
    "forecast_steps": (*CORE_PACKAGES, "statsforecast", "fugue", "mlforecast", "lightgbm"),
}

# What the Glue 5.0 runtime itself provides (with what they require): never shipped, never replaced.
GLUE_RUNTIME = ("pyspark", "boto3")

# The job's pip options: the wheels only, nothing from an index.
INSTALLER_OPTION = "--no-index"
