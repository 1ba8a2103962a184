"""The `demand` command line: the product's face, on top of every stage. Each module of demand/commands/ holds
one typer app; the list below mounts them (a group under its name, single commands at the top level)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import typer

from core.settings import Settings
from demand.commands import (
    anomalies,
    backfill,
    flink,
    forecast,
    generate,
    glue,
    land,
    local,
    push,
    query,
    report,
    schemas,
    serve,
    stock,
    stream,
    totals,
    whatif,
)
from local_stack.stack import local_settings

app = typer.Typer(
    help="Anomaly-aware streaming pipeline for retail demand forecasting.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)

# (module, group name); None mounts the module's commands at the top level. In the order `--help` lists them.
COMMANDS: list[tuple[typer.Typer, str | None]] = [
    (local.app, "local"),
    (generate.app, None),
    (push.app, None),
    (stream.app, "stream"),
    (flink.app, "flink"),
    (land.app, None),
    (backfill.app, None),
    (glue.app, "glue"),
    (forecast.app, "forecast"),
    (query.app, None),
    (serve.app, None),
    (report.app, None),
    (stock.app, None),
    (whatif.app, None),
    (totals.app, None),
    (anomalies.app, "anomalies"),
    (schemas.app, "schemas"),
]


@app.callback()
def main(
    ctx: typer.Context,
    prefix: str = typer.Option(None, help="Resource name prefix (env DEMAND_PREFIX, default demand)."),
    data_root: Path = typer.Option(None, help="Local object store root (env DEMAND_DATA_ROOT, default .demand)."),
    endpoint_url: str = typer.Option(None, help="AWS endpoint (moto/LocalStack) (env DEMAND_ENDPOINT_URL)."),
    port: int = typer.Option(None, help="Local moto server port (env DEMAND_LOCAL_PORT, default 4566)."),
) -> None:
    """Build the one Settings object from environment and flags; commands find it in ctx.obj. On the local runtime
    without an endpoint, the AWS APIs are those of the local stack (`demand local up`)."""
    # Library chatter (short-history and rank warnings of the forecasting models) is not the user's business.
    warnings.filterwarnings("ignore", module=r"statsforecast\..*")
    flags: dict[str, Any] = {
        "prefix": prefix,
        "data_root": data_root,
        "endpoint_url": endpoint_url,
        "local_port": port,
    }
    ctx.obj = local_settings(Settings(**{k: v for k, v in flags.items() if v is not None}))


for _commands, _name in COMMANDS:
    app.add_typer(_commands, name=_name)
