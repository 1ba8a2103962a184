"""`demand local up|down|status`: the moto server and the pipeline's resources on this machine."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from core.settings import Settings
from demand import output
from local_stack import stack as local_stack

app = typer.Typer(help="Run the local stack: a moto server on 127.0.0.1 plus streams, tables and buckets.")


def _env(settings: Settings, endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": settings.region,
        "DEMAND_PREFIX": settings.prefix,
        "DEMAND_DATA_ROOT": str(settings.data_root),
    }


@app.command("up")
def up_command(
    ctx: typer.Context,
    port: int = typer.Option(None, help="Port on 127.0.0.1 (default: the global --port, env DEMAND_LOCAL_PORT, 4566)."),
    as_json: bool = typer.Option(False, "--json", help="Print state, created resources and environment as JSON."),
) -> None:
    """Start the moto server in the background (or reuse it) and create every resource. Safe to re-run."""
    settings = ctx.obj
    try:
        with Console(stderr=True).status("starting the local stack..."):
            state, started, created = local_stack.up(settings, port=port)
    except local_stack.LocalStackError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        raise typer.Exit(1) from None
    settings = settings.model_copy(update={"endpoint_url": state.endpoint, "local_port": state.port})
    env = _env(settings, state.endpoint)
    if as_json:
        typer.echo(json.dumps({"started": started, "server": state.__dict__, "created": created, "env": env}))
        return
    verb = "started" if started else "already running"
    typer.echo(f"moto server {verb}: {state.endpoint} (pid {state.pid}, log {state.log})")
    made = sum(len(v) for v in created.values())
    typer.echo(f"resources for prefix {settings.prefix!r} are ready ({made} created now); use this environment:")
    typer.echo("export " + " ".join(f"{k}={v}" for k, v in env.items()))
    typer.echo("stop it with: demand local down")


@app.command("down")
def down_command(
    ctx: typer.Context,
    reset: bool = typer.Option(
        False, "--reset", help="Also forget what the streams hold (the next `up` starts them empty)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Stop the server that `demand local up` started (only that process) and remove its state file. The streams'
    records stay in the Kinesis journal and come back with the next `up`, unless --reset."""
    stopped = local_stack.down(ctx.obj, reset=reset)
    if as_json:
        typer.echo(json.dumps({"stopped": stopped.__dict__ if stopped else None}))
    elif stopped:
        typer.echo(f"stopped moto server pid {stopped.pid} on port {stopped.port}")
    else:
        typer.echo("no local stack was running")


@app.command("status")
def status_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Show the server, the streams (with shard counts), tables, topic, Glue database and buckets."""
    settings = ctx.obj
    status = local_stack.describe(settings)
    if as_json:
        typer.echo(json.dumps(status))
        return
    server = status["server"]
    table = Table(title=f"local stack: {status['endpoint']}")
    table.add_column("kind")
    table.add_column("name")
    table.add_column("state")
    table.add_row("server", f"pid {server.get('pid', '-')}", "running" if server["running"] else "stopped")
    for name, info in status["streams"].items():
        table.add_row("stream", name, f"{info['status']}, {info['shards']} shards" if info else "missing")
    for name, state in status["tables"].items():
        table.add_row("table", name, state or "missing")
    if status["streams"]:
        table.add_row("topic", settings.names.notify_topic, "exists" if status["topic"] else "missing")
        table.add_row("glue database", settings.names.glue_database, "exists" if status["glue_database"] else "missing")
    for name, exists in status["buckets"].items():
        table.add_row("bucket", name, "exists" if exists else "missing")
    output.stdout().print(table)
