"""The forecast API (FastAPI), built by `create_app(settings)`; `demand serve` runs it with uvicorn."""

# No `from __future__ import annotations`: FastAPI resolves Annotated[..., Depends(local)] at definition time.
import secrets
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field

from alerts.delivery import record_feedback
from alerts.rules import SEVERITY_MARGIN
from api import stock_table
from api.cache import ForecastCache
from api.queries import QueryLayer, no_totals
from api.stock import NoForecast, StockError, project
from core.contracts import ANOMALY_DIRECTIONS, ANOMALY_LEVELS, HIERARCHY_LEVELS
from core.object_store import object_store
from core.settings import Settings
from forecast_orchestrator.drivers import drivers
from forecast_orchestrator.whatif import Scenario, UnknownItem, WhatIfError, load_model, score

# Item and store ids as the contracts allow them (max 64 chars), restricted to characters ids really use.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
CODE_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
PAGE = Path(__file__).parent / "static" / "index.html"

ItemId = Annotated[str, PathParam(pattern=ID_PATTERN, description="product id, e.g. item-001")]
Level = Literal[HIERARCHY_LEVELS]  # type: ignore[valid-type]
AnomalyLevel = Literal[ANOMALY_LEVELS]  # type: ignore[valid-type]
Direction = Literal[ANOMALY_DIRECTIONS]  # type: ignore[valid-type]


class Feedback(BaseModel):
    """Why a demand anomaly was expected (a school's yearly order, a planned closure)."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field("", max_length=1000, description="why the anomaly was expected")


def create_app(
    settings: Settings, api_key: str | None = None, cache_ttl: int = 3600, query: QueryLayer | None = None
) -> FastAPI:
    """The API over the settings' query layer and DynamoDB cache table; with api_key, data routes need X-API-Key.
    An empty or blank key is an error, not "no key": a key set to nothing by mistake must not open the API."""
    if api_key is not None and not api_key.strip():
        raise ValueError("the API key is empty (DEMAND_API_KEY or --api-key): set a key, or leave it unset for no key")
    app = FastAPI(
        title="demand forecast API",
        version="1",
        description="Latest quantile forecast of a product (cached in DynamoDB), outliers and accuracy.",
    )
    cache = ForecastCache(settings, cache_ttl)
    layer = query or QueryLayer(settings)
    key_header = APIKeyHeader(name="X-API-Key", auto_error=False)

    def check_key(given: Annotated[str | None, Depends(key_header)]) -> None:
        if api_key and not (given and secrets.compare_digest(given.encode(), api_key.encode())):
            raise HTTPException(401, "missing or wrong API key: send it in the X-API-Key header")

    # The key's header and its 401 are in the OpenAPI spec only when the API has a key: the spec says what the API does.
    guarded = [Depends(check_key)] if api_key else []
    denied: dict[int | str, dict[str, Any]] = {401: {"description": "missing or wrong X-API-Key"}} if api_key else {}

    @app.get("/health", tags=["meta"])
    def health() -> dict:
        return {"status": "ok", "runtime": settings.runtime, "cache_table": cache.table}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text())

    @app.get("/items", dependencies=guarded, responses=denied, tags=["forecast"])
    def items() -> dict:
        """Products with a forecast in the latest run, the most forecast units (p50 over the horizon) first."""
        return {"items": layer.items()}

    @app.get(
        "/items/{item_id}/forecast",
        dependencies=guarded,
        responses={**denied, 404: {"description": "no forecast for the item in the latest run"}},
        tags=["forecast"],
    )
    def forecast(item_id: ItemId, response: Response) -> dict:
        """The latest run's p10/p50/p90 forecast of the product and its recent weekly demand."""
        missing = f"no forecast for item {item_id!r} in the latest run"
        cached = cache.get(item_id)
        if cached.payload is not None:
            if cached.payload.get("missing"):  # a 404 is cached too, until the next enriched run
                raise HTTPException(404, missing, headers={"X-Cache": "hit"})
            response.headers["X-Cache"] = "hit"
            return {**cached.payload, "cache": "hit"}
        rows = layer.forecast(item_id)
        if not rows:
            cache.put(item_id, {"missing": True}, cached.generation)
            raise HTTPException(404, missing, headers={"X-Cache": "miss"})
        until = min(r["forecast_date"] for r in rows)
        payload: dict[str, Any] = {"item_id": item_id, "forecast": rows, "history": layer.history(item_id, until)}
        payload["expires_at"] = cache.put(item_id, payload, cached.generation)
        state = "miss" if payload["expires_at"] is not None else "bypass"  # bypass: not cached (unavailable, too big)
        response.headers["X-Cache"] = state
        return {**payload, "cache": state}

    @app.get(
        "/items/{item_id}/stock",
        dependencies=guarded,
        responses={
            **denied,
            404: {"description": "no forecast for the item (and location) in the latest run, or no stock on hand"},
        },
        tags=["planning"],
    )
    def stock(
        item_id: ItemId,
        on_hand: Annotated[
            float | None, Query(ge=0, description="units in stock now (default: the stock-on-hand table's)")
        ] = None,
        lead_time: Annotated[
            int | None, Query(ge=0, le=104, description="periods from order to delivery (default: the table's, or 1)")
        ] = None,
        service_level: Annotated[float, Query(ge=0.5, lt=1, description="share of periods served in full")] = 0.9,
        location: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    ) -> dict:
        """Projected stock per period at p50 and at the service level's quantile, the first shortage of each, and a
        suggested order (quantity and the latest period to place it). Without `on_hand`, the stock and lead time
        recorded in the stock-on-hand table (`demand stock --save`) are used."""
        if on_hand is None:
            recorded = stock_table.lookup(settings, item_id, location)
            if recorded is None:
                raise HTTPException(404, stock_table.missing(settings, item_id, location))
            on_hand, lead_time = recorded.on_hand, lead_time if lead_time is not None else recorded.lead_time
        lead = 1 if lead_time is None else lead_time
        try:
            return project(item_id, layer.forecast(item_id), on_hand, lead, service_level, location).as_dict()
        except StockError as exc:
            raise HTTPException(404 if isinstance(exc, NoForecast) else 422, str(exc)) from None

    scenario_models: dict[str, Any] = {}  # run_id -> its scenario model (the latest run's only)

    def latest_model() -> Any:
        """The latest run's scenario model (loaded once per run); 404 before the first run, 422 when it kept none."""
        run_id = layer.latest_run()
        if run_id is None:
            raise HTTPException(404, "no forecast yet: run the forecast workflow and the enrichment first")
        if run_id not in scenario_models:
            bucket = settings.names.bucket("forecast-export")
            try:
                model = load_model(object_store(settings), bucket, run_id)
            except WhatIfError as exc:
                raise HTTPException(422, str(exc)) from None
            scenario_models.clear()
            scenario_models[run_id] = model
        return scenario_models[run_id]

    unscorable = {
        **denied,
        404: {"description": "no forecast run yet, or no forecast of the item in it"},
        422: {"description": "the request cannot be answered (the reason says why)"},
    }

    @app.post("/whatif", dependencies=guarded, responses=unscorable, tags=["planning"])
    def whatif(scenario: Scenario) -> dict:
        """Score a scenario of prices and promotions on the latest run's global model (no retraining): baseline and
        scenario quantiles per series and period, units and revenue per series and in total. Series whose published
        forecast does not use the global model say so (`uses_related` false, `note`)."""
        model = latest_model()
        try:
            return score(model, scenario)
        except WhatIfError as exc:
            raise HTTPException(422, str(exc)) from None

    @app.get("/items/{item_id}/drivers", dependencies=guarded, responses=unscorable, tags=["planning"])
    def item_drivers(item_id: ItemId) -> dict:
        """What the item's forecast is made of: the ensemble's models and weights, and what moves the global model's
        median (recent demand, seasonality, price, promotion, holiday, item and store) per period and on average."""
        model = latest_model()
        try:
            return drivers(model, [item_id])
        except WhatIfError as exc:
            raise HTTPException(404 if isinstance(exc, UnknownItem) else 422, str(exc)) from None

    @app.get("/outliers", dependencies=guarded, responses=denied, tags=["outliers"])
    def outliers(
        item_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
        store_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
        code: Annotated[str | None, Query(pattern=CODE_PATTERN, description="outlier reason code")] = None,
        since: Annotated[date | None, Query(description="only outliers on or after this day (YYYY-MM-DD)")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict:
        """Outlier sales, newest first, with the detector's reason."""
        filters = {"item_id": item_id, "store_id": store_id, "outlier_code": code, "since": since}
        return {"outliers": layer.outliers(filters, limit)}

    @app.get("/totals", dependencies=guarded, responses=unscorable, tags=["planning"])
    def totals(
        level: Annotated[Level, Query(description="total, category, store, item or item_store")] = "total",
        key: Annotated[str | None, Query(pattern=ID_PATTERN, description="one category, store or item")] = None,
    ) -> dict:
        """The latest run's coherent forecasts of one level (each period's expected demand, `mean`, is the sum of the
        level below), with the level's backtest WAPE before and after reconciliation."""
        rows = layer.totals(level, key)
        if not rows:
            raise HTTPException(404, no_totals(level, key))
        return {"level": level, "rows": rows, "accuracy": layer.totals_accuracy()}

    @app.get("/anomalies", dependencies=guarded, responses=denied, tags=["anomalies"])
    def anomalies(
        level: Annotated[
            AnomalyLevel | None, Query(description="total, category, store, item, item_store or channel")
        ] = None,
        min_severity: Annotated[int, Query(ge=0, le=100, description="the least severity (50: the threshold)")] = 0,
        direction: Annotated[Direction | None, Query(description="spike or drop")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> dict:
        """The latest detection's demand anomalies, most severe first: direction, span, expected band,
        contributors and `suppressed_by` (the feedback that marked the pattern as expected)."""
        return {"rows": layer.anomalies(level, min_severity, direction, limit)}

    @app.post(
        "/anomalies/{anomaly_id}/feedback",
        dependencies=guarded,
        responses={**denied, 404: {"description": "no anomaly of that id in the latest detection"}},
        tags=["anomalies"],
        description="Mark an anomaly as expected (with a note); answers the stored feedback. From the next detection "
        f"on, the anomalies of its pattern (the same series and direction, up to {SEVERITY_MARGIN} severity points "
        "above it) carry `suppressed_by` and alert no more.",
    )
    def anomaly_feedback(
        anomaly_id: Annotated[str, PathParam(pattern=ID_PATTERN, description="an anomaly_id of GET /anomalies")],
        body: Feedback | None = None,
    ) -> dict:
        """Record the feedback on one anomaly of the latest detection (the description above says what it does)."""
        found = layer.anomaly(anomaly_id)
        if found is None:
            raise HTTPException(404, f"no anomaly {anomaly_id!r} in the latest detection: GET /anomalies lists them")
        return record_feedback(settings, found, body.note if body else "")

    @app.get("/overview", dependencies=guarded, responses=denied, tags=["overview"])
    def overview() -> dict:
        """Accuracy of every run and outlier counts by reason code (the dashboard's overview)."""
        return {"accuracy": layer.accuracy(), "outliers_by_code": layer.outliers_by_code()}

    @app.middleware("http")
    async def no_store(request: Request, call_next):
        reply = await call_next(request)
        reply.headers.setdefault("Cache-Control", "no-store")
        return reply

    return app
