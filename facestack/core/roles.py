"""The route -> role tables of the aiohttp services (sfapi, the video worker).

A route is ``(METHOD, canonical path)``; one missing from its table needs ``read`` to read and
``admin`` for anything else (:func:`facestack.core.auth.default_role`), so a route added later is never
open by mistake. ``open`` needs no token. The router's table lives on its handlers (``auth_roles``)
and is listed in ``docs/security.rst`` with these.
"""
from __future__ import annotations

from typing import Mapping

from facestack.core.auth import default_role

Table = Mapping[tuple[str, str], str]

SFAPI: Table = {
    ("GET", "/healthz"): "open",
    ("GET", "/metrics"): "read",
    ("GET", "/docs/spec"): "read",
    ("GET", "/v2/version"): "read",
    # detection and comparison compute and cache; they change no stored face
    ("POST", "/v2/detect"): "operator",
    ("GET", "/v2/detect/{id}"): "read",
    ("POST", "/v2/detect/erase"): "admin",  # erasure of a person
    ("POST", "/v2/verify"): "operator",
    ("GET", "/v2/verify"): "operator",
    ("GET", "/v2/galleries"): "read",
    ("POST", "/v2/galleries/{name}"): "admin",
    ("DELETE", "/v2/galleries/{name}"): "admin",
    ("GET", "/v2/galleries/{name}/faces"): "read",
    ("POST", "/v2/galleries/{name}/faces/search"): "operator",
    ("POST", "/v2/galleries/{name}/faces/{id}"): "operator",
    ("GET", "/v2/galleries/{name}/faces/{id}"): "read",
    ("PATCH", "/v2/galleries/{name}/faces/{id}"): "operator",
    ("DELETE", "/v2/galleries/{name}/faces/{id}"): "admin",
}

VIDEO_WORKER: Table = {
    ("GET", "/healthz"): "open",
    ("GET", "/metrics"): "read",
    ("GET", "/openapi.json"): "read",
    ("GET", "/jobs"): "read",
    ("GET", "/job/{id}"): "read",
    # cameras are the admin's
    ("POST", "/job/{id}"): "admin",
    ("DELETE", "/job/{id}"): "admin",
    ("POST", "/job/{id}/restart"): "admin",
}


#: the router's own routes; its plugins' routes declare theirs (``auth_roles`` on the handler)
ROUTER: Table = {
    ("GET", "/healthz"): "open",
    ("GET", "/metrics"): "read",
    ("GET", "/openapi.json"): "read",
    ("POST", "/v0/frame"): "ingest",
}


#: routes that compute or take in data at camera rate rather than change what is stored: audited
#: only when refused (401/403), so the audit log stays a record of decisions, not of traffic
QUIET: frozenset[tuple[str, str]] = frozenset({
    ("POST", "/v0/frame"),
    ("POST", "/v2/detect"),
    ("POST", "/v2/verify"),
    ("POST", "/v2/galleries/{name}/faces/search"),
})


def role_of(table: Table, method: str, canonical: str | None) -> str:
    """The role ``method`` on the route ``canonical`` needs (HEAD as GET)."""
    m = "GET" if method.upper() == "HEAD" else method.upper()
    if canonical is not None and (m, canonical) in table:
        return table[(m, canonical)]
    return default_role(m)
