"""Access: with a token, every route but the health probes answers 401 without it; the login form trades it
for a read-only session cookie; a service bound beyond loopback refuses to start without a token; TLS."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount

from service.app import Settings, create_app
from service.app.access import COOKIE, check_start, is_loopback, load_token, session_value
from service.app.config import ConfigError
from service.cli import main
from tests.support.service import (
    EXAMPLE,
    HAS_OPENSSL,
    OPENSSL_SKIP_REASON,
    Server,
    example_request,
    self_signed,
)

TOKEN = "s3cret-token-for-the-tests-0123456789"
PUBLIC = {"/healthz", "/readyz", "/login"}


@pytest.fixture
def app_settings(tmp_path: Path) -> Settings:
    return Settings(db_path=str(tmp_path / "plans.sqlite"), workers=1, queue=4, api_token=TOKEN)


@pytest.fixture
def guarded(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings)) as c:
        yield c


def _every_route() -> list[tuple[str, str]]:
    """(method, path) for every route and mount the app has, path parameters filled in."""
    app = create_app(Settings(api_token=TOKEN))
    routes, out = list(app.routes), []
    while routes:
        r = routes.pop(0)
        if hasattr(r, "original_router"):          # an included router (FastAPI includes them lazily)
            routes += r.original_router.routes
        elif isinstance(r, Mount):
            out.append(("GET", r.path + ("/swagger-ui.css" if r.path.endswith("docs") else "/meridian.css")))
        elif isinstance(r, APIRoute) or hasattr(r, "methods"):
            for m in sorted(r.methods - {"HEAD"}):
                out.append((m, r.path.replace("{plan_id}", "0" * 32)))
    return out


ROUTES = _every_route()


def test_the_route_list_covers_the_pages_and_the_api() -> None:
    paths = {p for _, p in ROUTES}
    assert {"/", "/plan", "/plans", "/plans/" + "0" * 32, "/plans/" + "0" * 32 + "/view", "/docs", "/redoc",
            "/openapi.json", "/metrics", "/static/meridian.css", "/static/docs/swagger-ui.css"} <= paths


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if r[1] not in PUBLIC])
@pytest.mark.parametrize("auth", [None, "Bearer wrong-token-wrong-token-123", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_every_route_but_the_probes_is_a_401_without_the_token(guarded: TestClient, method: str, path: str,
                                                               auth: str | None) -> None:
    r = guarded.request(method, path, headers={"Authorization": auth} if auth else {},
                        content=EXAMPLE.read_bytes() if method == "POST" else None)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="meridian"'
    assert r.json()["error"] == "unauthorized" and r.json()["request_id"] == r.headers["x-request-id"]


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if r[1] not in PUBLIC])
def test_every_route_answers_with_the_token(guarded: TestClient, method: str, path: str) -> None:
    body = EXAMPLE.read_bytes() if method == "POST" else None
    json_type = {"Content-Type": "application/json"} if path == "/plan" else {}     # POST /plan takes JSON only
    r = guarded.request(method, path, headers={"Authorization": f"Bearer {TOKEN}", **json_type}, content=body)
    assert r.status_code != 401
    assert r.status_code == (404 if path.startswith("/plans/0000") else 200), (path, r.text[:200])


def test_the_probes_need_no_token(guarded: TestClient) -> None:
    assert guarded.get("/healthz").status_code == 200
    assert guarded.get("/readyz").status_code == 200


def test_a_browser_is_asked_for_the_token_once(guarded: TestClient) -> None:
    page = {"Accept": "text/html,application/xhtml+xml"}
    plan = guarded.post("/plan", json=example_request(), headers={"Authorization": f"Bearer {TOKEN}"}).json()
    view = f"/plans/{plan['plan_id']}/view"
    asked = guarded.get(view, headers=page)
    assert asked.status_code == 401 and '<form method="post" action="/login"' in asked.text
    assert f'name="next" value="{view}"' in asked.text
    wrong = guarded.post("/login", data={"token": "not-it", "next": view}, follow_redirects=False)
    assert wrong.status_code == 401 and "not the one" in wrong.text
    ok = guarded.post("/login", data={"token": TOKEN, "next": view}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == view
    cookie = ok.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={session_value(TOKEN)};")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
    # The client now holds the cookie: pages, the listing and the docs open without asking again.
    for path in (view, "/", "/plans", "/docs", "/openapi.json", "/static/docs/swagger-ui-bundle.js"):
        assert guarded.get(path, headers=page).status_code == 200, path
    # ... but it never authorizes a write: a cross-site form could carry it.
    assert guarded.post("/plan", json=example_request()).status_code == 401


def test_login_only_redirects_within_the_service(guarded: TestClient) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "javascript:alert(1)", "/\\evil.example"):
        r = guarded.post("/login", data={"token": TOKEN, "next": target}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/", target


def test_the_published_schema_names_the_bearer_scheme(guarded: TestClient) -> None:
    schema = guarded.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer",
        "description": "the service's API token (MERIDIAN_API_TOKEN or --api-token-file)"}
    assert schema["security"] == [{"bearer": []}]
    assert schema["paths"]["/healthz"]["get"]["security"] == []


def test_without_a_token_on_loopback_everything_is_open(sqlite_client: TestClient) -> None:
    assert sqlite_client.get("/plans").status_code == 200
    assert sqlite_client.get("/login").status_code == 404


# -- start-up rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                                ("127.0.0.2", True), ("0.0.0.0", False), ("::", False),
                                                ("10.1.2.3", False), ("planner.internal", False)])
def test_loopback_is_told_apart(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serving_beyond_loopback_without_a_token_is_refused(capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MERIDIAN_API_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [("meridian serve: --host 0.0.0.0 is reachable beyond this machine and no API token is set: set "
                    "MERIDIAN_API_TOKEN or --api-token-file (or, to serve everyone, --insecure-no-auth)")]


def test_the_start_warns_where_the_token_or_the_service_is_exposed() -> None:
    assert check_start(Settings(host="127.0.0.1"), None) == []
    assert check_start(Settings(host="0.0.0.0", insecure_no_auth=True), None) == [
        "--insecure-no-auth: anyone who reaches 0.0.0.0:8080 can plan and read every plan"]
    assert check_start(Settings(host="0.0.0.0"), TOKEN) == [
        ("the API token travels in clear text to 0.0.0.0: serve TLS (--tls-cert, --tls-key) or put a TLS reverse "
         "proxy in front")]


def test_the_warning_for_an_ipv6_host_brackets_its_address() -> None:
    assert check_start(Settings(host="::", insecure_no_auth=True), None) == [
        "--insecure-no-auth: anyone who reaches [::]:8080 can plan and read every plan"]


def test_a_url_brackets_an_ipv6_address_and_only_that() -> None:
    from service.app.config import netloc

    assert netloc("127.0.0.1", 8080) == "127.0.0.1:8080"
    assert netloc("localhost", 8080) == "localhost:8080"
    assert netloc("::1", 8080) == "[::1]:8080"
    assert netloc("fe80::1%eth0", 8080) == "[fe80::1%25eth0]:8080"


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


NO_IPV6 = "this machine cannot bind the IPv6 loopback ::1"


def _listening(srv: Server) -> dict:
    return next(json.loads(ln) for ln in srv.log().splitlines() if '"listening"' in ln)


def _status(url: str, ctx: ssl.SSLContext | None = None) -> int:
    """GET `url` as a client would, straight (no proxy from the environment)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    with opener.open(url, timeout=30) as r:
        return r.status


@pytest.mark.skipif(not _ipv6_loopback(), reason=NO_IPV6)
def test_serve_on_ipv6_loopback_logs_a_url_that_reaches_it(tmp_path: Path) -> None:
    with Server(tmp_path, "--host", "::1", "--db-path", str(tmp_path / "p.sqlite")) as srv:
        url = _listening(srv)["url"]
        assert url == f"http://[::1]:{srv.port}"
        assert _status(url + "/healthz") == 200


@pytest.mark.skipif(not _ipv6_loopback(), reason=NO_IPV6)
@pytest.mark.skipif(not HAS_OPENSSL, reason=OPENSSL_SKIP_REASON)
def test_serve_over_tls_on_ipv6_loopback_logs_an_https_url_that_reaches_it(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "::1")
    with Server(tmp_path, "--host", "::1", "--db-path", str(tmp_path / "p.sqlite"), "--tls-cert", str(cert),
                "--tls-key", str(key)) as srv:
        url = _listening(srv)["url"]
        assert url == f"https://[::1]:{srv.port}"
        ctx = ssl.create_default_context(cafile=str(cert))
        assert _status(url + "/healthz", ctx) == 200


def test_tls_needs_both_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--tls-cert and --tls-key go together"):
        check_start(Settings(tls_cert=str(tmp_path / "c.pem")), None)
    with pytest.raises(ConfigError, match=f"--tls-key {tmp_path}/k.pem: no readable file there"):
        check_start(Settings(tls_cert=str(EXAMPLE), tls_key=str(tmp_path / "k.pem")), None)


def test_the_token_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    assert load_token(Settings(api_token_file=str(f))) == TOKEN
    assert load_token(Settings(api_token=TOKEN)) == TOKEN
    assert load_token(Settings()) is None
    with pytest.raises(ConfigError, match="both MERIDIAN_API_TOKEN and --api-token-file are set"):
        load_token(Settings(api_token=TOKEN, api_token_file=str(f)))
    with pytest.raises(ConfigError, match=f"--api-token-file {tmp_path}/none: cannot read it: No such file"):
        load_token(Settings(api_token_file=str(tmp_path / "none")))
    with pytest.raises(ConfigError, match="MERIDIAN_API_TOKEN: the token must be at least 16 visible ASCII "
                                          r"characters \(got 5 characters\)"):
        load_token(Settings(api_token="short"))


def test_the_token_is_never_logged(tmp_path: Path) -> None:
    from service.app.config import describe

    assert TOKEN not in json.dumps(describe(Settings(api_token=TOKEN)))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed (makes the test certificate)")
def test_the_service_serves_tls_with_a_token(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    srv = Server(tmp_path, "--db-path", str(tmp_path / "p.sqlite"), "--tls-cert", str(cert), "--tls-key", str(key),
                 "--api-token-file", str(token_file))
    with srv:
        listening = next(json.loads(ln) for ln in srv.log().splitlines() if '"listening"' in ln)
        assert listening["url"].startswith("https://") and listening["auth"] == "token"
        ctx = ssl.create_default_context(cafile=str(cert))

        def get(path: str, headers: dict[str, str]) -> int:
            c = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=30)
            try:
                c.request("GET", path, headers=headers)
                return c.getresponse().status
            finally:
                c.close()

        assert get("/healthz", {}) == 200
        assert get("/plans", {}) == 401
        assert get("/plans", {"Authorization": f"Bearer {TOKEN}"}) == 200
        assert srv.terminate() == 0
