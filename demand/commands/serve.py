"""`demand serve`: the forecast API and dashboard page on uvicorn."""

from __future__ import annotations

import os

import typer

app = typer.Typer()


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    api_key: str = typer.Option(
        None, envvar="DEMAND_API_KEY", help="Require this key in X-API-Key (env DEMAND_API_KEY)."
    ),
    cache_ttl: int = typer.Option(3600, min=1, help="Seconds a cached forecast lives in DynamoDB."),
) -> None:
    """Serve GET /items/{id}/forecast, /outliers, /anomalies, /overview, /health, the OpenAPI docs (/docs), the page."""
    import uvicorn

    from api.app import create_app

    settings = ctx.obj  # runtime local: the cache table is on the local moto server (cli.main)
    if api_key is None and "DEMAND_API_KEY" in os.environ:  # click reads an empty variable as unset
        api_key = os.environ["DEMAND_API_KEY"]
    try:
        app_ = create_app(settings, api_key=api_key, cache_ttl=cache_ttl)
    except ValueError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        raise typer.Exit(2) from None
    typer.echo(f"forecast API on http://{host}:{port}/ (docs at /docs), cache {settings.names.api_cache_table}")
    uvicorn.run(app_, host=host, port=port, log_level="warning")
