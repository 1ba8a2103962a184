"""The `demand` command line: the product's face. Each stage registers its commands from demand/commands/."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import typer

from demand.settings import Settings

app = typer.Typer(
    help="Anomaly-aware streaming pipeline for retail demand forecasting.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    ctx: typer.Context,
    prefix: str = typer.Option(None, help="Resource name prefix (env DEMAND_PREFIX, default demand)."),
    data_root: Path = typer.Option(None, help="Local object store root (env DEMAND_DATA_ROOT, default .demand)."),
    endpoint_url: str = typer.Option(None, help="AWS endpoint (moto/LocalStack) (env DEMAND_ENDPOINT_URL)."),
    port: int = typer.Option(None, help="Local moto server port (env DEMAND_LOCAL_PORT, default 4566)."),
) -> None:
    """Build the one Settings object from environment and flags; commands find it in ctx.obj."""
    # Library chatter (short-history and rank warnings of the forecasting models) is not the user's business.
    warnings.filterwarnings("ignore", module=r"statsforecast\..*")
    overrides = {"prefix": prefix, "data_root": data_root, "endpoint_url": endpoint_url, "local_port": port}
    ctx.obj = Settings(**{k: v for k, v in overrides.items() if v is not None})


# One module per stage; each exposes register(app).
for _name in sorted(p.stem for p in (Path(__file__).parent / "commands").glob("[a-z]*.py")):
    importlib.import_module(f"demand.commands.{_name}").register(app)
