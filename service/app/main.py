"""The app factory: one FastAPI app per call, with its own settings, metrics, pools and plan log."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from models.errors import loc_to_path
from service.app import access, openapi, pages
from service.app.config import Settings, describe, from_env
from service.app.errors import error_response
from service.app.metrics import Metrics
from service.app.middleware import RequestContext
from service.app.planning import Planner, PlanService, Replanner
from service.app.routes import RepeatedQuery, router

log = logging.getLogger("meridian.service")

DESCRIPTION = """Meridian plans where AI jobs run each scheduling epoch (contract v1, placement-v1.md).

POST a request to `/plan`; the answer is a plan with a `plan_id`, recorded before it is returned
and readable again at `/plans/{plan_id}`; `/plans` lists them, newest first. Errors are JSON with the field
path and value at fault. People read the plans at `/` (the operator page) and `/plans/{plan_id}/view`."""


def create_app(settings: Settings | None = None, planner: Planner | None = None,
               fallback: Planner | None = None, replanner: Replanner | None = None,
               fleet_key: Callable[[Any], str] | None = None) -> FastAPI:
    """`planner` defaults to `placement.plan` (and `fallback` to `placement.greedy_plan`), imported at startup;
    `replanner` and `fleet_key` (warm re-planning, keyed by fleet) to `placement.replan`'s, and stay off where
    a `planner` is given without them.
    With a token configured (settings.api_token or api_token_file), every route but the probes requires it."""
    settings = settings or from_env()
    token = access.load_token(settings)
    metrics = Metrics()
    service = PlanService(settings, metrics, planner, fallback, replanner, fleet_key)
    gc_timer = _gc_timer(metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        lag = asyncio.create_task(_watch_loop_lag(metrics))
        gc.callbacks.append(gc_timer)
        log.info("started", extra={"settings": describe(settings)})
        try:
            yield
        finally:
            log.info("stopping: finishing in-flight plans")
            lag.cancel()
            gc.callbacks.remove(gc_timer)
            await service.stop()
            log.info("stopped")

    app = FastAPI(title="Meridian", version="1.0.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.service = service
    app.state.settings = settings
    app.state.token = token
    app.include_router(router)
    pages.install(app)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(RepeatedQuery, _repeated_query)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    if token is not None:
        app.add_middleware(access.RequireToken, token=token, refuse=pages.refuse)
    app.add_middleware(RequestContext, metrics=metrics)    # outermost: a 401 gets its request id and metrics
    openapi.install(app, bearer=token is not None)
    return app


def _gc_timer(metrics: Metrics) -> Callable[[str, dict[str, Any]], None]:
    """A gc callback that records each collection's pause (the whole process stops for it)."""
    started = [0.0]

    def timer(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif started[0]:
            metrics.gc_pause.labels(str(info.get("generation"))).observe(time.perf_counter() - started[0])

    return timer


async def _watch_loop_lag(metrics: Metrics, period_s: float = 0.05) -> None:
    """Sleep `period_s` over and over and record how late each wake-up is: the event loop's own latency."""
    loop = asyncio.get_running_loop()
    while True:
        t0 = loop.time()
        await asyncio.sleep(period_s)
        metrics.loop_lag.observe(max(0.0, loop.time() - t0 - period_s))


async def _validation_error(request: Request, exc: Any) -> JSONResponse:
    """FastAPI's own checks of query and header parameters, in the service's error format."""
    errors = [{"path": loc_to_path(tuple(e.get("loc", ()))), "value": _jsonable(e.get("input")),
               "message": e.get("msg", "invalid")} for e in exc.errors()]
    return error_response(422, "bad_request", f"{len(errors)} error(s) in the request", errors=errors)


async def _repeated_query(request: Request, exc: RepeatedQuery) -> Response:
    """A query parameter given more than once, on any route: a 422 naming it (an error page on the pages)."""
    if pages.is_page(request):
        return pages.repeated_query_page(exc)
    if request.url.path == "/plan":
        request.app.state.service.metrics.rejected.labels("bad_request").inc()
    return error_response(422, "bad_request", str(exc), errors=[exc.field_error()])


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, kind, str(exc.detail), headers=getattr(exc, "headers", None))


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
