"""Serving an aiohttp app so that even the HTTP layer's own refusals are JSON.

aiohttp answers a request it cannot parse (a request line or header over 8190 bytes, a malformed
header, a bad method) from its protocol handler with a ``text/plain`` body, before any middleware
runs. :class:`JsonAppRunner` is an :class:`aiohttp.web.AppRunner` whose connections answer those
with a JSON error body (``{"code", "reason"}``): 414 for an over-long request line, 431 for an
over-long header, 400 for anything else malformed. :func:`serve` runs an app with it until a signal.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

log = logging.getLogger(__name__)

#: How an over-long request line starts (the C parser reports the target, the Python one the line).
_REQUEST_LINE = re.compile(rb"^([A-Z]+ +)?(/|\*|[a-zA-Z][a-zA-Z0-9+.-]*://)")


def parse_error_body(status: int, exc: BaseException | None, message: str | None) -> tuple[int, dict[str, Any]]:
    """Status and JSON body for a request the HTTP parser refused (or a failure outside the app)."""
    if status >= 500 or exc is None:
        return status, {"code": "UNKNOWN_ERROR", "reason": "internal error; see the server log"}
    if isinstance(exc, LineTooLong):
        head = exc.args[0] if exc.args else b""
        head = head.encode("latin-1", "replace") if isinstance(head, str) else bytes(head)
        if _REQUEST_LINE.match(head):
            return 414, {"code": "MALFORMED_REQUEST", "reason": f"request line longer than {exc.args[1]} bytes"}
        return 431, {"code": "MALFORMED_REQUEST", "reason": f"a header line is longer than {exc.args[1]} bytes"}
    text = exc.message if isinstance(exc, HttpProcessingError) and exc.message else (message or "")
    first = str(text).splitlines()[0][:200] if text else "malformed HTTP request"
    return 400, {"code": "MALFORMED_REQUEST", "reason": f"malformed HTTP request: {first}"}


class JsonErrorRequestHandler(RequestHandler):
    """aiohttp's connection handler with JSON bodies for its parse and fallback errors."""

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs; raises if an answer was already started
        code, body = parse_error_body(status, exc, message)
        resp = web.Response(status=code, text=json.dumps(body), content_type="application/json")
        resp.force_close()
        return resp


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class JsonAppRunner(web.AppRunner):
    """An AppRunner whose connections answer HTTP-layer errors with JSON bodies."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer
        return server


async def _serve(app: web.Application, host: str, port: int, ssl_context: Any = None, **kwargs: Any) -> None:
    runner = JsonAppRunner(app, **kwargs)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        log.info("listening on %s://%s:%d", "https" if ssl_context is not None else "http", host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def serve(app: web.Application, host: str, port: int, ssl_context: Any = None, **kwargs: Any) -> None:
    """Run ``app`` on ``host:port`` (HTTPS with ``ssl_context``) with :class:`JsonAppRunner` until
    SIGINT or SIGTERM."""
    asyncio.run(_serve(app, host, port, ssl_context, **kwargs))
