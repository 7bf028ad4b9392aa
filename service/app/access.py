"""Who may use the service: a bearer token on every route but the health probes, and the start-up rules
that keep a service bound beyond loopback from running open by accident.

A caller sends `Authorization: Bearer TOKEN`. A browser cannot add that header to a page it navigates to,
so the login form (`/login`) trades the token for a session cookie: an HMAC of the token (the cookie never
holds the token itself), HttpOnly, SameSite=Strict, good for reads (GET, HEAD) only. Writes (`POST /plan`)
always need the header, which is what makes the cookie useless to a cross-site request forger.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections.abc import Awaitable, Callable
from typing import Any

from service.app.config import ConfigError, Settings, netloc

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
# Renders the 401 answer: (scope, wants_html) -> (status, headers, body).
Refusal = Callable[[Scope, bool], tuple[int, list[tuple[bytes, bytes]], bytes]]

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/login"})
COOKIE = "meridian_session"
MIN_TOKEN_CHARS = 16
_SAFE_METHODS = frozenset({"GET", "HEAD"})


def is_loopback(host: str) -> bool:
    """Whether `host` (as given to --host) only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False          # a name: it may resolve to anything


# The longest first line a token file may have (a token is tens of characters).
MAX_TOKEN_LINE = 4096


def load_token(settings: Settings) -> str | None:
    """The configured token (MERIDIAN_API_TOKEN, or the first line of --api-token-file), checked; None when
    neither is set."""
    if settings.api_token and settings.api_token_file:
        raise ConfigError("both MERIDIAN_API_TOKEN and --api-token-file are set: use one")
    where = "MERIDIAN_API_TOKEN"
    token = settings.api_token
    if settings.api_token_file:
        where = f"--api-token-file {settings.api_token_file}"
        try:
            with open(settings.api_token_file, encoding="utf-8") as f:
                line = f.readline(MAX_TOKEN_LINE + 1)       # (a bounded read: `/dev/zero` has no newline)
            if len(line.rstrip("\r\n")) > MAX_TOKEN_LINE:
                raise ConfigError(f"{where}: its first line is longer than {MAX_TOKEN_LINE} characters; "
                                  "the token is the first line")
            token = line.strip()
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read it: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{where}: not UTF-8 text") from None
    if token is None:
        return None
    if len(token) < MIN_TOKEN_CHARS or not all("!" <= ch <= "~" for ch in token):
        raise ConfigError(f"{where}: the token must be at least {MIN_TOKEN_CHARS} visible ASCII characters "
                          f"(got {len(token)} characters); make one with: python3 -c "
                          "'import secrets; print(secrets.token_urlsafe(32))'")
    return token


def check_start(settings: Settings, token: str | None) -> list[str]:
    """Refuse (ConfigError) what must not start; return the warnings to log for what may."""
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together: give both or neither")
    for flag, path in (("--tls-cert", settings.tls_cert), ("--tls-key", settings.tls_key)):
        if path and os.path.isdir(path):        # (os.access says a folder is readable; ssl then says "Is a directory")
            raise ConfigError(f"{flag} {path}: a folder, not a PEM file")
        if path and not os.access(path, os.R_OK):
            raise ConfigError(f"{flag} {path}: no readable file there")
    loopback = is_loopback(settings.host)
    if loopback:
        return []
    if token is None and not settings.insecure_no_auth:
        raise ConfigError(f"--host {settings.host} is reachable beyond this machine and no API token is set: "
                          "set MERIDIAN_API_TOKEN or --api-token-file (or, to serve everyone, --insecure-no-auth)")
    if token is None:
        return [(f"--insecure-no-auth: anyone who reaches {netloc(settings.host, settings.port)} can plan and read "
                 "every plan")]
    if not settings.tls_cert:
        return [(f"the API token travels in clear text to {settings.host}: serve TLS (--tls-cert, --tls-key) "
                 "or put a TLS reverse proxy in front")]
    return []


def session_value(token: str) -> str:
    """The cookie a login sets: derived from the token, so a leaked cookie does not reveal the token."""
    return hmac.new(token.encode(), b"meridian-session-v1", hashlib.sha256).hexdigest()


def token_matches(token: str, offered: str) -> bool:
    return hmac.compare_digest(token.encode(), offered.encode("utf-8", "surrogateescape"))


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", ()):
        if k == name:
            return v.decode("latin-1")
    return None


def _cookie(scope: Scope, name: str) -> str | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return None


def authorized(scope: Scope, token: str, session: str) -> bool:
    """A matching bearer header, or (for reads) the session cookie; both compared in constant time."""
    auth = _header(scope, b"authorization")
    if auth is not None:
        scheme, _, offered = auth.partition(" ")
        return scheme.lower() == "bearer" and token_matches(token, offered.strip())
    cookie = _cookie(scope, COOKIE)
    return (cookie is not None and scope.get("method") in _SAFE_METHODS
            and hmac.compare_digest(session.encode(), cookie.encode("utf-8", "surrogateescape")))


class RequireToken:
    """ASGI middleware: everything but PUBLIC_PATHS needs the token; a refusal is a 401 (a login form for a
    browser asking for a page, the JSON error otherwise)."""

    def __init__(self, app: Callable[..., Awaitable[None]], token: str, refuse: Refusal):
        self.app = app
        self.token = token
        self.session = session_value(token)
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in PUBLIC_PATHS or authorized(scope, self.token,
                                                                                       self.session):
            await self.app(scope, receive, send)
            return
        wants_html = scope.get("method") in _SAFE_METHODS and "text/html" in (_header(scope, b"accept") or "")
        status, headers, body = self.refuse(scope, wants_html)
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
