"""HTTP routes of the API: POST /plan, GET /plans, GET /plans/{plan_id}, /healthz, /readyz, /metrics.

Every GET route answers HEAD too (RFC 9110 9.3.2: the same status and headers, no body); FastAPI adds
HEAD to no route by itself, so each GET route carries a `@router.head` beside it, kept out of the schema."""

from __future__ import annotations

import asyncio
import re
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect

from models import BadRequest, PlanResponse
from service.app.admission import Overloaded
from service.app.errors import ErrorBody, TooLarge, error_response
from service.app.metrics import CONTENT_TYPE
from service.app.openapi import request_body_spec
from service.app.planning import Conflict, EngineFailed, PlanService, Unavailable

_PLAN_ID = re.compile(r"[0-9a-f]{32}")


class Timing(BaseModel):
    queue_s: float = Field(description="time the plan waited for a worker")
    solve_s: float = Field(description="time the engine took")
    time_budget_s: float = Field(description="the time limit the engine got: the request's, or less when the "
                                 "server cut it under load")


class StoredPlan(BaseModel):
    plan_id: str
    created_at: str = Field(description="ISO 8601, UTC")
    idempotency_key: str | None
    request_digest: str = Field(description="sha256 of the normalized request")
    status: str
    timing: Timing
    request: dict[str, Any] = Field(description="the request as it was sent")
    response: PlanResponse = Field(description="the response as it was returned")


class Listed(BaseModel):
    plan_id: str
    created_at: str = Field(description="ISO 8601, UTC")
    status: str
    objective: float | None
    gap: float | None
    engine: str | None = Field(description="the stage that produced the plan (cpsat, greedy); null for plans "
                               "recorded before this column existed")
    unplaced: int | None = Field(description="jobs the plan leaves waiting")
    timing: Timing
    time_limit_s: float | None = Field(description="the request's policy.time_limit_s")
    budget_cut: bool | None = Field(description="whether the server cut the time limit under load")
    idempotency_key: str | None
    request_digest: str


class PlanPage(BaseModel):
    plans: list[Listed] = Field(description="newest first")
    next_before: str | None = Field(description="pass as `before` for the next (older) page; null on the last")
    next: str | None = Field(description="the next page's URL, or null")


def _svc(request: Request) -> PlanService:
    return request.app.state.service


async def read_capped(request: Request, cap: int) -> bytes:
    """The body, refused (413) as soon as it is known to pass `cap` bytes, declared or streamed."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise TooLarge(int(declared), cap)
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > cap:
            raise TooLarge(None, cap)
    return bytes(buf)


_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "the Idempotency-Key was used for a different request"},
    408: {"model": ErrorBody, "description": "the body did not arrive in time (--body-timeout-s)"},
    413: {"model": ErrorBody, "description": "the body is larger than this server accepts"},
    422: {"model": ErrorBody, "description": "a bad request: malformed JSON, a wrong type, a contract rule, a size "
          "cap; `errors` names each field path and value"},
    429: {"model": ErrorBody, "description": "overloaded: retry after the `Retry-After` header's seconds"},
    415: {"model": ErrorBody, "description": "the body is not sent as application/json, or is sent with a "
          "Content-Encoding other than identity"},
    503: {"model": ErrorBody, "description": "cannot plan now (engine missing, plan log down, shutting down)"},
}


def json_content_type(request: Request) -> bool:
    """Whether the body is declared JSON (`application/json`, or a `+json` type). Required: a browser
    can post `text/plain` or form data to a loopback service from any page without asking, but never
    `application/json` without a CORS preflight, which this service does not answer."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return ctype == "application/json" or (ctype.startswith("application/") and ctype.endswith("+json"))


def repeated_query(request: Request) -> str | None:
    """A query parameter given more than once (`?dry_run=true&dry_run=false`), which is refused rather
    than read one way or the other."""
    seen: set[str] = set()
    for k, _ in request.query_params.multi_items():
        if k in seen:
            return k
        seen.add(k)
    return None


class RepeatedQuery(Exception):
    """A query parameter given more than once; the app's handler answers it (JSON 422, or an error page for
    the operator's pages)."""

    def __init__(self, name: str, values: list[str]):
        super().__init__(f"query parameter {name!r} is given more than once")
        self.name = name
        self.values = values

    def field_error(self) -> dict[str, Any]:
        return {"path": f"query.{self.name}", "value": self.values, "message": "given more than once"}


async def refuse_repeated_query(request: Request) -> None:
    """A dependency of every route (API and pages): FastAPI would silently read the last of a repeated
    parameter, so `?status=a&status=b` means whatever the framework picks; refuse it instead. Runs before
    the route's own parameters are checked and before any body is read, so nothing is half done. `async`
    (it only reads the query string): a plain function is run in a worker thread, a hop per request that
    held the interpreter's lock for about 6 % of a loaded server's time."""
    twice = repeated_query(request)
    if twice is not None:
        raise RepeatedQuery(twice, request.query_params.getlist(twice))


def repeated_idempotency_key(request: Request) -> list[str] | None:
    """Every value of the Idempotency-Key header when it is given more than once, else None. The framework
    reads the first and ignores the rest, so a request sent with `a` and `b` was recorded under `a` alone: a
    retry that sends `b` planned and recorded it a second time. Refused, as a repeated query parameter is."""
    keys = request.headers.getlist("idempotency-key")
    return keys if len(keys) > 1 else None


def identity_encoded(request: Request) -> str | None:
    """The request's Content-Encoding when it is anything but `identity`, else None. This server decodes
    no content encodings: a gzip body read as JSON would be refused as malformed at best, and a body that
    only claims an encoding would be planned as something the client did not mean."""
    tokens = [t.strip().lower() for v in request.headers.getlist("content-encoding") for t in v.split(",")]
    if all(t in ("", "identity") for t in tokens):
        return None
    return ", ".join(request.headers.getlist("content-encoding"))[:80]


def shown_id(plan_id: str) -> str:
    """A plan id (or another value from the URL) as an error message or page quotes it: at most 40 characters
    of it, so an answer does not grow with the URL it refuses."""
    return repr(plan_id if len(plan_id) <= 40 else plan_id[:40] + "...")


router = APIRouter(dependencies=[Depends(refuse_repeated_query)])


@router.post(
    "/plan",
    summary="Plan one scheduling epoch",
    description="Validates a contract v1 request, plans it, records the plan durably and returns it with its "
    "`plan_id`. `dry_run=true` plans without recording (no `plan_id`). A repeated `Idempotency-Key` "
    "returns the recorded plan; the same key with a different request is a 409. An infeasible request "
    "(protected premium jobs cannot all stay placed) is a 200 with `status: infeasible`.",
    response_model=None,
    responses={200: {"model": PlanResponse, "description": "the plan"}, **_ERRORS},
    openapi_extra={"requestBody": request_body_spec()},
)
async def post_plan(
    request: Request,
    dry_run: bool = Query(False, description="plan without recording it"),
    warm: bool = Query(True, description="the fleet's previous plan may answer warm (a request that differs from "
                       "it by at most 1 % of its jobs; `stats.replan` says so); false plans it in full"),
    idempotency_key: str | None = Header(
        None, alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[!-~]+$",
        description="a client-chosen token (visible ASCII); a repeat returns the recorded plan (ignored with "
        "dry_run)"),
) -> Response:
    svc = _svc(request)
    if not json_content_type(request):
        svc.metrics.rejected.labels("content_type").inc()
        return error_response(415, "unsupported_media_type", "POST /plan takes a JSON body: send it with "
                              f"Content-Type: application/json (got {request.headers.get('content-type', 'none')[:80]!r})")
    encoding = identity_encoded(request)
    if encoding is not None:
        svc.metrics.rejected.labels("content_encoding").inc()
        return error_response(415, "unsupported_media_type", "POST /plan takes an unencoded body: this server "
                              f"decodes no Content-Encoding (got {encoding!r}); send it without one",
                              errors=[{"path": "header.Content-Encoding", "value": encoding,
                                       "message": "only identity is accepted"}])
    keys = repeated_idempotency_key(request)
    if keys is not None:
        svc.metrics.rejected.labels("bad_request").inc()
        return error_response(422, "bad_request", "1 error(s) in the request",
                              errors=[{"path": "header.Idempotency-Key", "value": [k[:80] for k in keys[:10]],
                                       "message": "given more than once"}])
    try:
        try:
            body = await asyncio.wait_for(read_capped(request, svc.settings.max_body_bytes),
                                          timeout=svc.settings.body_timeout_s)
        except TimeoutError:
            svc.metrics.rejected.labels("body_timeout").inc()
            return error_response(408, "request_timeout", f"the request body did not arrive within "
                                  f"{svc.settings.body_timeout_s:g} s (--body-timeout-s)", headers={"Connection": "close"})
        except ClientDisconnect:
            return Response(status_code=400)          # the caller left; nobody reads this
        outcome = await svc.handle(body, dry_run, idempotency_key, warm)
    except TooLarge as exc:
        svc.metrics.rejected.labels("too_large").inc()
        return error_response(413, "payload_too_large", str(exc), headers={"Connection": "close"})
    except BadRequest as exc:
        svc.metrics.rejected.labels("bad_request").inc()
        return error_response(422, "bad_request", f"{len(exc.errors)} error(s) in the request",
                              errors=[e.to_dict() for e in exc.errors[:100]])
    except Overloaded as exc:
        return error_response(429, "overloaded", str(exc), headers={"Retry-After": str(exc.retry_after_s)},
                              retry_after_s=exc.retry_after_s)
    except Conflict as exc:
        svc.metrics.rejected.labels("idempotency_conflict").inc()
        return error_response(409, "idempotency_conflict", str(exc))
    except Unavailable as exc:
        return error_response(503, "unavailable", str(exc), headers={"Retry-After": "5"})
    except EngineFailed as exc:
        # validation admits only values the engine's arithmetic carries, so this is an engine fault on one
        # request; the service answers for the request (not a 500) and stays up for the next
        return error_response(422, "engine_failed", str(exc))
    headers = {}
    if outcome.plan_id:
        headers["Location"] = f"/plans/{outcome.plan_id}"
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    if outcome.budget_s is not None:
        headers["X-Meridian-Time-Budget-S"] = f"{outcome.budget_s:.3f}"
    if outcome.replanned:
        headers["X-Meridian-Replan"] = "warm"
    return Response(outcome.body, media_type="application/json", headers=headers)


@router.head("/plans", include_in_schema=False)
@router.get("/plans", summary="Recent plans, newest first (paginated)", response_model=PlanPage,
            responses={422: _ERRORS[422], 503: _ERRORS[503]})
async def list_plans(
    request: Request,
    limit: int = Query(50, ge=1, le=500, description="plans per page"),
    status: Literal["optimal", "feasible", "fallback", "infeasible"] | None = Query(
        None, description="only plans with this status"),
    before: str | None = Query(None, pattern="^[0-9a-f]{32}$", description="a plan_id: list the plans recorded "
                               "before it (the previous page's `next_before`)"),
) -> Response:
    svc = _svc(request)
    try:
        rows = await svc.recent(limit + 1, status, before)
    except KeyError:
        return error_response(422, "bad_request", "1 error(s) in the request", errors=[
            {"path": "query.before", "value": before, "message": "no plan with this id"}])
    except Unavailable as exc:
        return error_response(503, "unavailable", str(exc), headers={"Retry-After": "5"})
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = rows[-1].plan_id if more else None
    nxt = None
    if cursor:
        nxt = f"/plans?limit={limit}" + (f"&status={status}" if status else "") + f"&before={cursor}"
    return JSONResponse({"plans": [r.to_api() for r in rows], "next_before": cursor, "next": nxt})


@router.head("/plans/{plan_id}", include_in_schema=False)
@router.get("/plans/{plan_id}", summary="A recorded plan with its request", response_model=StoredPlan,
            responses={404: {"model": ErrorBody, "description": "no plan with this id"},
                       503: _ERRORS[503]})
async def get_plan(plan_id: str, request: Request) -> Response:
    svc = _svc(request)
    if not _PLAN_ID.fullmatch(plan_id):
        return error_response(404, "not_found", f"no plan {shown_id(plan_id)}: plan ids are 32 lowercase hex digits")
    try:
        rec = await svc.get_plan(plan_id)
    except Unavailable as exc:
        return error_response(503, "unavailable", str(exc), headers={"Retry-After": "5"})
    if rec is None:
        return error_response(404, "not_found", f"no plan {shown_id(plan_id)}")
    return JSONResponse(rec.to_api())


@router.head("/healthz", include_in_schema=False)
@router.get("/healthz", summary="The process is alive (HEAD too)")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.head("/readyz", include_in_schema=False)
@router.get("/readyz", summary="This instance can plan now",
            responses={503: {"description": "not ready; `checks` says why"}})
async def readyz(request: Request) -> JSONResponse:
    svc = _svc(request)
    checks = await svc.readiness()
    ready = (checks["engine"] == "ok" and checks["store"] == "ok" and checks["draining"] == "no"
             and checks["capacity"] == "ok")
    a = svc.admission
    return JSONResponse({"ready": ready, "checks": checks, "workers": a.workers, "solving": a.running,
                         "queued": a.waiting, "queue_capacity": a.queue},
                        status_code=200 if ready else 503)


@router.head("/metrics", include_in_schema=False)
@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    return Response(_svc(request).metrics.render(), media_type=CONTENT_TYPE)
