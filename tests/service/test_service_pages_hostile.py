"""Hostile input at the HTTP edges of the pages and the API: every GET route answers HEAD, every answer
tells the browser not to sniff its type, a page quotes a value from the URL cut, as the API does, and the
sign-in form (open to anyone) reads a bounded body within a time limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from service.app import Settings, create_app
from tests.support.service import example_request

LONG = "x" * 60_000            # httpx sends at most 64 KiB of URL
CUT = "&#39;" + "x" * 40 + "...&#39;"
TOKEN = "s3cret-token-for-the-tests-0123456789"


def _routes(app: FastAPI) -> list[APIRoute]:
    """Every route of the app, the included routers' too."""
    routes, out = list(app.routes), []
    while routes:
        r = routes.pop(0)
        if hasattr(r, "original_router"):
            routes += r.original_router.routes
        elif isinstance(r, APIRoute):
            out.append(r)
    return out


def test_every_get_route_has_a_head_route() -> None:
    routes = _routes(create_app(Settings()))
    get = {r.path for r in routes if "GET" in r.methods}
    head = {r.path for r in routes if "HEAD" in r.methods}
    assert get and get - head == set()


@pytest.mark.parametrize("path", ["/", "/plans/{plan_id}/view", "/plans/nope/view", "/plans", "/plans?limit=0",
                                  "/plans/{plan_id}", "/readyz", "/metrics", "/docs", "/redoc", "/login",
                                  "/static/docs/redoc.standalone.js"])
def test_head_answers_as_get_does_without_a_body(sqlite_client: TestClient, path: str) -> None:
    plan_id = sqlite_client.post("/plan", json=example_request()).json()["plan_id"]
    url = path.format(plan_id=plan_id)
    got, head = sqlite_client.get(url), sqlite_client.head(url)
    assert head.status_code == got.status_code != 405
    assert head.content == b""
    same = ("content-type", "content-security-policy", "cache-control") + (
        ("content-length",) if path != "/metrics" else ())        # (the metrics count the GET itself)
    for name in same:
        assert head.headers.get(name) == got.headers.get(name), name


def test_every_answer_says_nosniff(sqlite_client: TestClient) -> None:
    bad = example_request()
    bad["jobs"][0]["replicas"]["min"] = "<script>alert(1)</script>"
    answers = {"page": sqlite_client.get("/"), "error page": sqlite_client.get("/plans/nope/view"),
               "json": sqlite_client.get("/plans"), "json 422": sqlite_client.post("/plan", json=bad),
               "json 404": sqlite_client.get("/nowhere"), "static": sqlite_client.get("/static/meridian.js"),
               "metrics": sqlite_client.get("/metrics")}
    assert answers["json 422"].status_code == 422 and "<script>" in answers["json 422"].text
    assert {k: r.headers.get("x-content-type-options") for k, r in answers.items()} == dict.fromkeys(answers,
                                                                                                     "nosniff")


def test_the_token_refusal_says_nosniff(tmp_path: Path) -> None:
    settings = Settings(db_path=str(tmp_path / "p.sqlite"), api_token=TOKEN)
    with TestClient(create_app(settings)) as c:
        for accept in ("application/json", "text/html"):
            r = c.get("/plans", headers={"Accept": accept})
            assert r.status_code == 401 and r.headers["x-content-type-options"] == "nosniff", accept


@pytest.mark.parametrize(("url", "problem"), [
    (f"/plans/{LONG}/view", f"no plan {CUT}: plan ids are 32 lowercase hex digits"),
    (f"/?before={LONG}", f"before {CUT} is not a plan id"),
    (f"/?status={LONG}", f"status {CUT} is not one of optimal, feasible, fallback, infeasible"),
    (f"/?status={LONG}&status=y",
     f"query parameter &#39;status&#39; is given more than once ({CUT}, &#39;y&#39;): give it once"),
], ids=["plan page", "before", "status", "status twice"])
def test_a_page_quotes_a_long_url_value_cut(sqlite_client: TestClient, url: str, problem: str) -> None:
    r = sqlite_client.get(url)
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert f'<p class="problem">{problem}</p>' in r.text
    assert "x" * 41 not in r.text and len(r.text) < 2_000


# -- the sign-in form's body ---------------------------------------------------------------------------

MIB = b"t" * (1 << 20)


def _post_login(client: TestClient, chunks: Iterator[bytes], pause_s: float = 0.0) -> tuple[int, int, bytes]:
    """POST /login straight to the app with a body that arrives chunk by chunk (TestClient would read a
    streamed body whole before the app sees any of it): (status, body bytes the app took, answer)."""
    taken, sent = [0], []

    async def receive() -> dict:
        chunk = next(chunks, None)
        if chunk is None:
            if pause_s:
                await asyncio.sleep(pause_s)
            return {"type": "http.request", "body": b"", "more_body": False}
        taken[0] += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/login", "raw_path": b"/login", "root_path": "", "query_string": b"",
             "headers": [(b"host", b"testserver"), (b"content-type", b"application/x-www-form-urlencoded")],
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
    client.portal.call(client.app, scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], taken[0], body


def test_a_sign_in_body_past_its_cap_is_413_and_not_read_on(tmp_path: Path) -> None:
    settings = Settings(db_path=str(tmp_path / "p.sqlite"), api_token=TOKEN)
    with TestClient(create_app(settings)) as c:
        status, taken, body = _post_login(c, iter([MIB] * 256))           # 256 MiB, no Content-Length
    assert (status, taken) == (413, len(MIB))
    assert b"the sign-in form is more than 8192 bytes" in body


def test_a_sign_in_body_that_stalls_is_408(tmp_path: Path) -> None:
    settings = Settings(db_path=str(tmp_path / "p.sqlite"), api_token=TOKEN, body_timeout_s=0.2)
    with TestClient(create_app(settings)) as c:
        started = time.monotonic()
        status, _, body = _post_login(c, iter([f"token={TOKEN}".encode()]), pause_s=5.0)
    assert status == 408 and time.monotonic() - started < 3
    assert b"the sign-in form did not arrive within 0.2 s (--body-timeout-s)" in body
