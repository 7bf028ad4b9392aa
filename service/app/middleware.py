"""Request id, `X-Content-Type-Options: nosniff`, access log line and request metrics for every HTTP request
(a plain ASGI middleware: no per-request task or body buffering, so `/healthz` stays cheap under load)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from service.app.logs import new_request_id, request_id_var
from service.app.metrics import Metrics

log = logging.getLogger("meridian.access")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_QUIET = {"/healthz", "/readyz", "/metrics"}   # logged at debug: probes would drown the log
# On every answer: a browser must take the declared Content-Type at its word. JSON errors and plan records
# echo request strings (`<script>` in a job id); sniffed as HTML they would run as this service's page.
NOSNIFF = (b"x-content-type-options", b"nosniff")


def route_of(path: str) -> str:
    """A bounded label for metrics: the route template, never the raw path."""
    if path in ("/", "/plan", "/plans", "/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi.json",
                "/login"):
        return path
    if path.startswith("/plans/"):
        return "/plans/{plan_id}/view" if path.endswith("/view") else "/plans/{plan_id}"
    if path.startswith("/static/"):
        return "/static"
    return "other"


class RequestContext:
    def __init__(self, app: Callable[..., Awaitable[None]], metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for k, v in scope.get("headers", ()):
            if k == b"x-request-id":
                incoming = v.decode("latin-1")
                break
        rid = new_request_id(incoming)
        token = request_id_var.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status = [0]

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid.encode("ascii")),
                                      NOSNIFF]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # The last line of defence: whatever escaped the routes becomes a JSON 500 naming the request id,
            # and the worker lives on.
            log.exception("unhandled error")
            if status[0] == 0:
                body = json.dumps({"error": "internal", "message": "internal error; quote the request id",
                                   "request_id": rid}).encode()
                await send_with_id({"type": "http.response.start", "status": 500,
                                    "headers": [(b"content-type", b"application/json"),
                                                (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
        finally:
            status[0] = status[0] or 500
            elapsed = time.perf_counter() - started
            path = scope.get("path", "")
            route = route_of(path)
            self.metrics.requests.labels(route, scope.get("method", ""), str(status[0])).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            log.log(logging.DEBUG if path in _QUIET and status[0] < 500 else logging.INFO, "request",
                    extra={"method": scope.get("method"), "path": path, "status": status[0],
                           "duration_ms": round(elapsed * 1000, 2),
                           "client": (scope.get("client") or ("", 0))[0]})
            request_id_var.reset(token)
