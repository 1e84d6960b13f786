"""One error shape for every refusal: `{"error": {"code": "...", "message": "..."}}` with a 4xx/5xx status.

Codes are stable strings clients can switch on; messages are human sentences. No stack trace ever leaves the
server: unexpected exceptions are logged and answered with a generic 500.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.metrics import Metrics

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A refusal with an HTTP status, a stable code and a human sentence."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class BadInput(ValueError):
    """Invalid client data found below the HTTP layer (codec, registry); the API maps code → status."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# HTTP status for each BadInput code; anything unlisted is a plain 400.
STATUS_OF_CODE = {
    "too_large": 413,
    "too_many_pixels": 413,
    "too_many_items": 413,
    "bad_size": 422,
    "bad_label_id": 422,
    "unknown_color": 422,
    "unknown_model": 404,
    "unknown_style": 404,
    "unknown_preset": 404,
    "no_encoder": 422,
    "bad_style": 422,
    "bad_format": 422,
    "bad_quality": 422,
    "bad_instance_seeds": 422,
    "unknown_job": 404,
    "job_finished": 409,
    "job_not_finished": 409,
}


def bad_input_error(exc: BadInput) -> ApiError:
    return ApiError(STATUS_OF_CODE.get(exc.code, 400), exc.code, exc.message)


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


class ErrorDetail(BaseModel):
    code: str  # stable, for programs: bad_size, unknown_model, overloaded, …
    message: str  # a human sentence


class ErrorResponse(BaseModel):
    error: ErrorDetail


# Documented on every /api/v1 route: what any request can be refused with.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in (
        (400, "unreadable input (image, archive, request)"),
        (401, "missing or wrong API key"),
        (404, "unknown model, style, preset, job or path"),
        (409, "job state does not allow this"),
        (413, "upload, image or batch too large"),
        (415, "unsupported content type"),
        (422, "invalid field, size, label id or style"),
        (429, "too many unfinished jobs; see Retry-After"),
        (500, "internal error (details only in the server log)"),
        (503, "render queue full; see Retry-After"),
    )
}


_HTTP_CODES = {
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    429: "too_many_requests",
    503: "overloaded",
}


def install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    """Map every exception the app can raise onto the one error shape; each answer counts once by its code."""

    def answer(code: str, message: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
        metrics.rejected.labels(code).inc()
        return JSONResponse(error_body(code, message), status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return answer(exc.code, exc.message, exc.status, exc.headers)

    @app.exception_handler(BadInput)
    async def _bad_input(_: Request, exc: BadInput) -> JSONResponse:
        err = bad_input_error(exc)
        return answer(err.code, err.message, err.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
            parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
        return answer("bad_request", "; ".join(parts) or "invalid request", 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "bad_request" if exc.status_code < 500 else "internal")
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        return answer(code, detail, exc.status_code, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return answer("internal", "internal server error; see the server log", 500)
