"""Middlewares: request id, JSON errors with the documented codes, and request metrics."""
from __future__ import annotations

import logging
import time
import uuid
from typing import Awaitable, Callable

from aiohttp import web

from facestack.core.audit import Auditor
from facestack.core.auth import Authenticator
from facestack.core.authmw import auth_middleware, handled, route_of
from facestack.core.roles import SFAPI
from sfapi.errors import SfapiError
from sfapi.server.metrics import SfapiMetrics

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = "X-Request-Id"
REQUEST_ID_KEY: web.RequestKey[str] = web.RequestKey("request_id", str)

_HTTP_CODES = {
    400: "MALFORMED_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "MALFORMED_REQUEST",
    413: "BAD_PARAM",
    415: "BAD_PARAM",
}


def error_response(status: int, body: dict[str, object]) -> web.Response:
    return web.json_response(body, status=status)


def http_error_response(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own refusals (routing, body size) as JSON error bodies, keeping ``Allow`` on 405."""
    code = _HTTP_CODES.get(exc.status, "UNKNOWN_ERROR")
    reason = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
    body: dict[str, object] = {"code": code, "reason": reason}
    headers: dict[str, str] = {}
    if exc.status == 405:
        allow = exc.headers.get("Allow", "")
        headers["Allow"] = allow
        body["reason"] = f"method {request.method} is not allowed on this path; allowed: {allow or 'none'}"
    elif exc.status == 413:
        param = "image" if request.path == "/v2/detect" else "body"
        body.update(param=param, value=request.content_length, reason=f"request body too large: {reason}")
    elif exc.status == 415:
        body.update(param="Content-Type", value=request.content_type, reason=reason)
    return web.json_response(body, status=exc.status, headers=headers)


def make_middlewares(metrics: SfapiMetrics, auth: Authenticator,
                     auditor: Auditor | None = None) -> list[Callable[..., Awaitable[web.StreamResponse]]]:
    @web.middleware
    async def request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = request.headers.get(REQUEST_ID) or uuid.uuid4().hex
        request[REQUEST_ID_KEY] = rid[:128]
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            exc.headers[REQUEST_ID] = request[REQUEST_ID_KEY]
            raise
        resp.headers[REQUEST_ID] = request[REQUEST_ID_KEY]
        return resp

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except SfapiError as exc:
            level = logging.WARNING if exc.status < 500 or exc.status == 503 else logging.ERROR
            log.log(level, "%s %s -> %s %s: %s", request.method, request.path, exc.status, exc.code, exc.reason)
            return error_response(exc.status, exc.to_json())
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return http_error_response(request, exc)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return error_response(500, {"code": "UNKNOWN_ERROR", "reason": "internal error; see the server log"})

    @web.middleware
    async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = route_of(request) or "unmatched"

        def count(status: int) -> None:
            metrics.requests.labels(route, str(status)).inc()
            metrics.latency.labels(route).observe(time.perf_counter() - started)

        return await handled(handler, request, count)

    authenticate = auth_middleware(auth, SFAPI, auditor if auditor is not None else Auditor("sfapi"),
                                   lambda exc: {"code": exc.code, "reason": exc.reason})

    return [request_id, measure, authenticate, errors]
