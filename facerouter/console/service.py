"""The console for one router: its sessions, its event hub, its routes and the check of every
request that carries a session cookie (called by :class:`facestack.core.auth_tornado.AuthApplication`)."""
from __future__ import annotations

import logging
from typing import Any, Callable

import aiohttp
import tornado.httputil
import tornado.web

from facestack.core.auth import READ_METHODS, Authenticator
from sfapi.client import Client

from .cameras import JOB_ID, CameraHandler, CamerasHandler
from .config import ConsoleConfig
from .enrol import EnrolHandler
from .events import EventHub, EventStreamHandler
from .pages import (STATIC_DIR, IndexHandler, LoginHandler, LogoutHandler, SessionHandler,
                    StaticHandler)
from .search import SearchHandler
from .sessions import SessionStore

__all__ = ["Console", "STREAM_PATH"]

log = logging.getLogger(__name__)

STREAM_PATH = "/v1/events/stream"
#: routes anyone may load: the page, its files, the login, the logout (any role may log out; the
#: handler checks CSRF and Origin itself) and the session probe
_OPEN = ("/ui", "/ui/", "/ui/login", "/ui/logout", "/ui/api/session")
#: POST routes that only read (they carry a photo): a read-only token or session may use them
READ_POSTS = frozenset({"/ui/api/search"})


class Console:
    """Built by the router at start-up; ``sfapi`` and ``plugins`` are set once they exist."""

    def __init__(self, config: ConsoleConfig, authenticator: Authenticator,
                 max_upload_bytes: int) -> None:
        self.config = config
        self.authenticator = authenticator
        self.max_upload_bytes = max_upload_bytes
        self.sessions = SessionStore(config.session_ttl_s, config.max_sessions,
                                     public_origin=config.public_url)
        self.events = EventHub(config.max_stream_clients, config.stream_queue)
        self.sfapi: Client = None  # type: ignore[assignment]
        self.plugins: Any = {}
        self._http: aiohttp.ClientSession | None = None
        #: the page, read at start (not on the event loop at each request)
        self.index_html = (STATIC_DIR / "index.html").read_bytes() if config.enabled else b""

    # --- the request check -------------------------------------------------------------------

    def gate(self, request: tornado.httputil.HTTPServerRequest,
             check_token: Callable[[str], None], need: str | None = None) -> None:
        """Check one request: open routes pass; a request with ``Authorization`` is an API call
        (``check_token(method)``); one with a live session cookie is checked as a session
        (:meth:`SessionStore.check`); anything else is an API call without a token."""
        path = request.path
        method = (request.method or "GET").upper()
        read = method in READ_METHODS or (path in READ_POSTS and method == "POST")
        if path in _OPEN or path.startswith("/ui/static/"):
            return
        if request.headers.get("Authorization") is None:
            sess = self.sessions.from_request(request)
            if sess is not None:
                self.sessions.check(sess, request, read, need)
                return
        check_token("GET" if read else method)

    # --- what the handlers use -----------------------------------------------------------------

    def persons(self) -> Any:
        """The persons plugin object, or None when it is not loaded (or not enabled)."""
        for obj in self.plugins.values():
            if all(hasattr(obj, a) for a in ("uploads", "sources", "entry_wire", "writer")):
                return obj
        return None

    def features(self) -> dict[str, bool]:
        """What the page can offer."""
        return {"persons": self.persons() is not None, "cameras": self.config.worker_url is not None,
                "search": "archive" in self.plugins or self.config.search_gallery != "archive"}

    async def entry(self, entry_id: int) -> dict[str, Any] | None:
        """An entry's rich wire form, or None (no persons plugin, or no such entry)."""
        plugin = self.persons()
        return None if plugin is None else await plugin.entry_wire(entry_id)

    def http(self) -> aiohttp.ClientSession:
        """The session for calls to the video worker."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http

    async def close(self) -> None:
        """End the streams and close the worker session (at shutdown)."""
        await self.events.close()
        if self._http is not None:
            await self._http.close()

    # --- routes --------------------------------------------------------------------------------

    def routes(self) -> list[Any]:
        """The console's routes (none when ``console.enabled`` is false)."""
        if not self.config.enabled:
            return []
        kw = {"console": self}
        return [
            (r"/ui/?", IndexHandler, kw),
            (r"/ui/static/(.*)", StaticHandler, {"path": str(STATIC_DIR)}),
            (r"/ui/login", LoginHandler, kw),
            (r"/ui/logout", LogoutHandler, kw),
            (r"/ui/api/session", SessionHandler, kw),
            (r"/ui/api/search", SearchHandler, kw),
            (r"/ui/api/persons", EnrolHandler, kw),
            (r"/ui/api/cameras", CamerasHandler, kw),
            (rf"/ui/api/cameras/({JOB_ID})(?:/(restart))?", CameraHandler, kw),
            (STREAM_PATH, EventStreamHandler, {"hub": self.events,
                                               "keepalive_s": self.config.stream_keepalive_s}),
        ]

    def attach(self, app: tornado.web.Application) -> None:
        """Route the console's paths on ``app``."""
        app.add_handlers(r".*", self.routes())
