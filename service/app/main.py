"""The app factory: one FastAPI app per call, with its own settings, metrics, pools and plan log."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from models.errors import loc_to_path
from service.app import openapi
from service.app.config import Settings, describe, from_env
from service.app.errors import error_response
from service.app.metrics import Metrics
from service.app.middleware import RequestContext
from service.app.planning import Planner, PlanService
from service.app.routes import router

log = logging.getLogger("meridian.service")

DESCRIPTION = """Meridian plans where AI jobs run each scheduling epoch (contract v1, placement-v1.md).

POST a request to `/plan`; the answer is a plan with a `plan_id`, recorded before it is returned
and readable again at `/plans/{plan_id}`. Errors are JSON with the field path and value at fault."""


def create_app(settings: Settings | None = None, planner: Planner | None = None,
               fallback: Planner | None = None) -> FastAPI:
    """`planner` defaults to `placement.plan` (and `fallback` to `placement.greedy_plan`), imported at startup."""
    settings = settings or from_env()
    metrics = Metrics()
    service = PlanService(settings, metrics, planner, fallback)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        log.info("started", extra={"settings": describe(settings)})
        try:
            yield
        finally:
            log.info("stopping: finishing in-flight plans")
            await service.stop()
            log.info("stopped")

    app = FastAPI(title="Meridian", version="1.0.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url="/docs", redoc_url=None)
    app.state.service = service
    app.state.settings = settings
    app.include_router(router)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(RequestContext, metrics=metrics)
    openapi.install(app)
    return app


async def _validation_error(request: Request, exc: Any) -> JSONResponse:
    """FastAPI's own checks of query and header parameters, in the service's error format."""
    errors = [{"path": loc_to_path(tuple(e.get("loc", ()))), "value": _jsonable(e.get("input")),
               "message": e.get("msg", "invalid")} for e in exc.errors()]
    return error_response(422, "bad_request", f"{len(errors)} error(s) in the request", errors=errors)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, kind, str(exc.detail), headers=getattr(exc, "headers", None))


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
