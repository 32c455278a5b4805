"""The aiohttp middleware of sfapi and the video worker: the route's role, the token check, audit.

It runs after routing, so it knows the route's template (``request.match_info``) and looks its
role up in the service's table (:mod:`facestack.core.roles`). Refusals answer JSON in the service's error
shape; every write (refused ones too) is audited (:mod:`facestack.core.audit`).
"""
from __future__ import annotations

import logging
from typing import Awaitable, Callable

from aiohttp import web

from facestack.core.audit import Auditor, is_write, object_id
from facestack.core.auth import Authenticator, AuthError, Principal
from facestack.core.roles import QUIET, Table, role_of

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorBody = Callable[[AuthError], dict[str, object]]
PRINCIPAL_KEY: web.RequestKey[Principal | None] = web.RequestKey("principal", Principal)  # type: ignore[arg-type]


def route_of(request: web.Request) -> str | None:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


def auth_middleware(auth: Authenticator, table: Table, auditor: Auditor,
                    error_body: ErrorBody) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = route_of(request)
        write = is_write(request.method)
        obj = object_id(dict(request.match_info)) if route else None
        try:
            who = auth.authorize(request.method, request.path, request.headers.get("Authorization"),
                                 role_of(table, request.method, route))
        except AuthError as exc:  # the reason names the token holder, never the token
            log.warning("%s %s -> %s: %s", request.method, request.path, exc.status, exc.reason)
            if write:
                auditor.record(exc.who, request.method, route or request.path, request.path, obj,
                               exc.status, exc.reason)
            return web.json_response(error_body(exc), status=exc.status)
        request[PRINCIPAL_KEY] = who
        if not write or (request.method, route) in QUIET:
            return await handler(request)
        return await handled(handler, request, lambda status: auditor.record(
            who, request.method, route or request.path, request.path, obj, status))

    return authenticate


async def handled(handler: Handler, request: web.Request,
                  on_status: Callable[[int], None]) -> web.StreamResponse:
    """``handler(request)``; ``on_status`` gets the answer's status however it ends (an HTTP
    exception's status, 500 for any other error)."""
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        on_status(status)
