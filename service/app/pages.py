"""The operator's pages: recent plans at `/`, one plan at `/plans/{plan_id}/view`, the login form, and the
API docs (`/docs`, `/redoc`) from the Swagger UI and ReDoc files that the `fastapi-offline` package ships.

Server-rendered from the plan log (jinja2); every asset is served by this service, and a Content-Security-
Policy tells the browser to fetch nothing from anywhere else. Every page answers HEAD as well as GET, and
quotes a value from the URL it refuses cut (`shown_id`)."""

from __future__ import annotations

import asyncio
import functools
import json
import os
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, Undefined, select_autoescape
from starlette.requests import ClientDisconnect

from service.app import access
from service.app.errors import TooLarge
from service.app.plan_view import build
from service.app.planning import PlanService, Unavailable
from service.app.pool_svg import pool_svg
from service.app.routes import _PLAN_ID, RepeatedQuery, read_capped, refuse_repeated_query, shown_id
from service.app.store import iso_time

HERE = os.path.dirname(os.path.abspath(__file__))
STATUSES = ("optimal", "feasible", "fallback", "infeasible")
PAGE_ROWS = 50
# The sign-in form is a token and a `next` path: a body past this is no sign-in, and is not read on.
LOGIN_BODY_BYTES = 8192

# The operator's pages run no inline script and load nothing from elsewhere.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
# The sign-in page can fetch nothing from this service (it has no token yet): its style is inline.
LOGIN_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
             "frame-ancestors 'none'; base-uri 'none'")
# Swagger UI and ReDoc start from an inline script and style their own elements; still nothing from elsewhere.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'")

templates = Environment(loader=FileSystemLoader(os.path.join(HERE, "templates")),
                        autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
router = APIRouter(include_in_schema=False, dependencies=[Depends(refuse_repeated_query)])


def docs_assets() -> str:
    """The folder of Swagger UI's and ReDoc's files inside the installed fastapi-offline package."""
    import fastapi_offline

    return os.path.join(os.path.dirname(os.path.abspath(fastapi_offline.__file__)), "static")


# ReDoc's side menu shows a logo fetched from its vendor's CDN (rendered unconditionally); the copy this
# service serves shows an empty inline picture instead, so the page asks nothing of the outside world.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
EMPTY_SVG = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/%3E"


@functools.cache
def redoc_bundle() -> bytes:
    with open(os.path.join(docs_assets(), "redoc.standalone.js"), "rb") as f:
        return f.read().replace(REDOC_LOGO.encode(), EMPTY_SVG.encode())


def install(app: FastAPI) -> None:
    """The pages, the docs and the static files (under /static)."""
    app.include_router(router)
    app.mount("/static/docs", StaticFiles(directory=docs_assets()), name="docs-static")
    app.mount("/static", StaticFiles(directory=os.path.join(HERE, "static")), name="static")


def _page(name: str, status_code: int = 200, csp: str = PAGE_CSP, **context: Any) -> HTMLResponse:
    html = templates.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code, headers={"Content-Security-Policy": csp,
                                                                "Cache-Control": "no-store"})


def is_page(request: Request) -> bool:
    """Whether the request was routed to one of these pages (they answer errors as pages, not JSON)."""
    return request.scope.get("route") in router.routes


def repeated_query_page(exc: RepeatedQuery) -> HTMLResponse:
    """The operator's pages refuse a repeated parameter as an error page (a 422), not a page read one way."""
    return _page("error.html", 422, message=f"{exc} ({', '.join(map(shown_id, exc.values))}): give it once")


def _svc(request: Request) -> PlanService:
    return request.app.state.service


def _fmt(value: float | None, spec: str) -> str:
    """A number for a page; '-' where there is none (an older record may lack a field)."""
    return "-" if value is None or isinstance(value, Undefined) else format(value, spec)


def _utc(unix_s: float) -> str:
    """A record's time as the pages show it: ISO 8601 to the second, UTC."""
    return iso_time(unix_s)[:19].replace("T", " ")


templates.filters["fmt"] = _fmt
templates.filters["utc"] = _utc


@router.head("/")
@router.get("/", response_class=HTMLResponse)
async def index(request: Request, status: str | None = Query(None), before: str | None = Query(None)) -> Response:
    if status == "":
        status = None
    problems = []
    if status is not None and status not in STATUSES:
        problems.append(f"status {shown_id(status)} is not one of {', '.join(STATUSES)}")
        status = None
    if before is not None and not _PLAN_ID.fullmatch(before):
        problems.append(f"before {shown_id(before)} is not a plan id")
        before = None
    try:
        rows = await _svc(request).recent(PAGE_ROWS + 1, status, before)
    except KeyError:
        problems.append(f"before {before!r}: no such plan")
        rows = await _svc(request).recent(PAGE_ROWS + 1, status, None)
    except Unavailable as exc:
        return _page("error.html", 503, message=str(exc))
    more = len(rows) > PAGE_ROWS
    rows = rows[:PAGE_ROWS]
    return _page("index.html", plans=rows, status=status, statuses=STATUSES, problems=problems,
                 next_before=rows[-1].plan_id if more else None, paged=before is not None)


@router.head("/plans/{plan_id}/view")
@router.get("/plans/{plan_id}/view", response_class=HTMLResponse)
async def plan_page(plan_id: str, request: Request) -> Response:
    if not _PLAN_ID.fullmatch(plan_id):
        return _page("error.html", 404,
                     message=f"no plan {shown_id(plan_id)}: plan ids are 32 lowercase hex digits")
    try:
        rec = await _svc(request).get_plan(plan_id)
    except Unavailable as exc:
        return _page("error.html", 503, message=str(exc))
    if rec is None:
        return _page("error.html", 404, message=f"no plan {plan_id!r}")
    view = build(rec)
    return _page("plan.html", view=view, rec=rec, svg=pool_svg(view.pools), response=view.response,
                 stats=view.response.get("stats") or {})


@router.head("/login")
@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = Query("/")) -> Response:
    return login_page(_local(next), 200 if request.app.state.token else 404, None)


@router.post("/login")
async def login(request: Request) -> Response:
    token = request.app.state.token
    if not token:
        return login_page("/", 404, None)
    try:
        raw = await read_login_form(request)
    except TooLarge:
        return _refused_form(413, f"the sign-in form is more than {LOGIN_BODY_BYTES} bytes: send the token "
                             "and the page to return to, nothing else")
    except TimeoutError:
        return _refused_form(408, "the sign-in form did not arrive within "
                             f"{request.app.state.settings.body_timeout_s:g} s (--body-timeout-s)")
    except ClientDisconnect:
        return Response(status_code=400)          # the caller left; nobody reads this
    form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    nxt = _local((form.get("next") or ["/"])[0])
    offered = (form.get("token") or [""])[0].strip()
    if not access.token_matches(token, offered):
        return login_page(nxt, 401, "That token is not the one this service was started with.")
    resp = RedirectResponse(nxt, status_code=303)
    resp.set_cookie(access.COOKIE, access.session_value(token), httponly=True, samesite="strict",
                    secure=request.url.scheme == "https", path="/")
    return resp


async def read_login_form(request: Request) -> bytes:
    """The sign-in form's body, read to LOGIN_BODY_BYTES at most and within --body-timeout-s. `/login` is open
    to anyone who reaches the service, so reading its whole body (as `request.body()` does) would let a caller
    with no token make the server hold gigabytes, or wait forever on a body that never ends."""
    return await asyncio.wait_for(read_capped(request, LOGIN_BODY_BYTES),
                                  timeout=request.app.state.settings.body_timeout_s)


def _refused_form(status_code: int, message: str) -> HTMLResponse:
    page = _page("error.html", status_code, message=message)
    page.headers["Connection"] = "close"           # the rest of the body is not read: the connection cannot go on
    return page


def login_page(nxt: str, status_code: int, problem: str | None) -> HTMLResponse:
    if status_code == 404:
        return _page("error.html", 404, message="this service runs without a token: there is nothing to log in to")
    return _page("login.html", status_code, csp=LOGIN_CSP, next=nxt, problem=problem)


def refuse(scope: dict[str, Any], wants_html: bool) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The 401 of the token check: the login form for a browser asking for a page, the JSON error otherwise."""
    from service.app.logs import request_id_var

    challenge = (b"www-authenticate", b'Bearer realm="meridian"')
    if wants_html:
        path = scope.get("path", "/")
        qs = scope.get("query_string", b"").decode("latin-1")
        page = login_page(_local(path + (f"?{qs}" if qs else "")), 401, None)
        headers = [(k.encode(), v.encode()) for k, v in page.headers.items() if k != "content-length"]
        return 401, [*headers, challenge], page.body
    body = json.dumps({"error": "unauthorized", "message": "missing or wrong API token: send "
                       "'Authorization: Bearer TOKEN' (the token the service was started with)",
                       "request_id": request_id_var.get()}).encode()
    return 401, [(b"content-type", b"application/json"), challenge], body


def _local(path: str) -> str:
    """A redirect target on this service only (never //host or a scheme: no open redirect)."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return quote(path, safe="/?&=%:-_.~")


@router.head("/docs")
@router.get("/docs", response_class=HTMLResponse)
async def swagger(request: Request) -> Response:
    page = get_swagger_ui_html(openapi_url="/openapi.json", title="Meridian API",
                               swagger_js_url="/static/docs/swagger-ui-bundle.js",
                               swagger_css_url="/static/docs/swagger-ui.css",
                               swagger_favicon_url="/static/docs/favicon.png",
                               swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": False})
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page


@router.head("/static/docs/redoc.standalone.js")
@router.get("/static/docs/redoc.standalone.js")
async def redoc_script() -> Response:
    return Response(redoc_bundle(), media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "public, max-age=3600"})


@router.head("/redoc")
@router.get("/redoc", response_class=HTMLResponse)
async def redoc(request: Request) -> Response:
    page = get_redoc_html(openapi_url="/openapi.json", title="Meridian API reference",
                          redoc_js_url="/static/docs/redoc.standalone.js",
                          redoc_favicon_url="/static/docs/favicon.png", with_google_fonts=False)
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page
