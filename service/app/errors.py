"""One error body for every refusal: what went wrong, which fields, and the request id to quote."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from service.app.logs import request_id_var


class FieldErrorBody(BaseModel):
    path: str = Field(description="JSON path of the field, e.g. jobs[3].replicas.min; query.X or header.X "
                      "for parameters; empty for the whole body")
    value: Any = Field(description="what was there")
    message: str


class ErrorBody(BaseModel):
    error: str = Field(description="bad_request, payload_too_large, overloaded, idempotency_conflict, "
                       "not_found, unavailable, engine_failed, internal")
    message: str
    request_id: str | None = None
    errors: list[FieldErrorBody] | None = None
    retry_after_s: int | None = None


class TooLarge(Exception):
    def __init__(self, declared: int | None, cap: int):
        size = f"{declared} bytes" if declared is not None else f"more than {cap} bytes"
        super().__init__(f"the request body is {size}; this server accepts at most {cap} bytes (--max-body-bytes)")


def error_response(status: int, error: str, message: str, errors: list[dict[str, Any]] | None = None,
                   headers: dict[str, str] | None = None, retry_after_s: int | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": error, "message": message, "request_id": request_id_var.get()}
    if errors is not None:
        body["errors"] = errors
    if retry_after_s is not None:
        body["retry_after_s"] = retry_after_s
    return JSONResponse(body, status_code=status, headers=headers)
