"""Pure ASGI middleware: request-body limit, per-route request metrics, HEAD answered like GET."""

from __future__ import annotations

import json
import re
import time

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import error_body
from server.metrics import Metrics


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413: at once from Content-Length, else while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int, metrics: Metrics) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.metrics = metrics  # the up-front refusal bypasses the error handlers, so it counts itself

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body is over the {self.max_bytes}-byte limit"
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            self.metrics.rejected.labels("too_large").inc()
            body = json.dumps(error_body("too_large", message)).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 413, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, message)  # FastAPI re-raises HTTPException from body parsing
            return msg

        await self.app(scope, limited_receive, send)


class RequestMetrics:
    """Count requests and time them per route template (static files share one label: bounded cardinality)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        method = scope["method"]  # as asked: HeadAsGet, inside, turns HEAD into GET
        start = time.perf_counter()

        async def send_status(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = route_label(scope)
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.request_seconds.labels(route).observe(time.perf_counter() - start)


_PARAM = re.compile(r"{(\w+)(:\w+)?}")


def route_label(scope: Scope) -> str:
    """The matched route's full template, e.g. `/api/v1/models/{name}`; `other` for static files and 404s.

    Newer FastAPI keeps router prefixes out of `route.path`, so the prefix is recovered from the request path.
    """
    route = scope.get("route")
    if not isinstance(route, APIRoute):
        return "other"
    params = scope.get("path_params", {})
    concrete = _PARAM.sub(lambda m: str(params.get(m.group(1), "")), route.path)
    path = scope["path"]
    prefix = path[: -len(concrete)] if concrete and path.endswith(concrete) else ""
    return prefix + route.path


class HeadAsGet:
    """Answer HEAD as GET without the body: FastAPI's routes take only the methods they declare, while HTTP wants
    HEAD wherever GET works (`curl -I`, load balancers' health checks). A route without GET still answers 405."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        scope["method"] = (
            "GET"  # in place: the router's match (scope["route"]) stays visible to RequestMetrics
        )
        await self.app(scope, receive, headers_only)
