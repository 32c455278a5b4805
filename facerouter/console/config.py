"""The ``console:`` section of facerouter's config (the operator console at ``/ui/``)."""
from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from facestack.core.configfile import StrictModel

__all__ = ["ConsoleConfig"]


class ConsoleConfig(StrictModel):
    """The operator console: sessions, the event stream, look-alike search and the cameras page."""

    #: serve the console at /ui/ and the event stream at /v1/events/stream
    enabled: bool = True
    #: how long a console session lasts after login, in seconds
    session_ttl_s: float = Field(8 * 3600, ge=60, le=30 * 24 * 3600)
    #: sessions kept at once (the oldest is dropped past it)
    max_sessions: int = Field(1000, ge=1, le=100_000)
    #: clients of /v1/events/stream at once; past it a new one is answered 503
    max_stream_clients: int = Field(100, ge=1, le=10_000)
    #: events buffered for one slow stream client before it is disconnected
    stream_queue: int = Field(1000, ge=10, le=1_000_000)
    #: seconds between keep-alive comments on an idle stream
    stream_keepalive_s: float = Field(15.0, gt=0, le=300)
    #: the gallery searched by photo: the archive plugin's gallery (one face per entry)
    search_gallery: str = Field("archive", min_length=1)
    #: least similarity of a look-alike search hit
    search_threshold: float = Field(0.7, ge=0, le=1)
    #: most hits of one look-alike search
    search_limit: int = Field(100, ge=1, le=1000)
    #: the console's address as browsers see it when a proxy terminates TLS in front of facerouter
    #: (e.g. https://faces.example.com): its origin is the one changes must come from, and an
    #: https address makes the session cookie Secure. null: the address the request came to
    public_url: str | None = None
    #: the video worker's job API (any worker of a fleet sharing a job store); null: no cameras page
    worker_url: str | None = None
    #: API token sent to the worker's job API (a read-write token to add, edit and stop cameras)
    worker_token: SecretStr | None = None
    #: timeout of each call to the worker, in seconds
    worker_timeout_s: float = Field(10.0, gt=0, le=120)

    @field_validator("public_url")
    @classmethod
    def _origin(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme, sep, rest = value.partition("://")
        if scheme not in ("http", "https") or not sep or not rest.split("/")[0]:
            raise ValueError("must be an http:// or https:// URL")
        return f"{scheme}://{rest.split('/')[0]}"

    @field_validator("worker_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value
