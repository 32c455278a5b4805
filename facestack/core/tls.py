"""TLS for the three services and the clients between them.

``tls`` (every service's config) serves HTTPS when ``cert`` and ``key`` are given, and requires a
client certificate signed by ``client_ca`` when that is given (mutual TLS). ``*_tls`` on the client
side (facerouter's ``sfapi_tls``, the video worker's ``router_tls``) verifies the server against
``ca`` (a PEM bundle; default: the system's) and presents ``cert``/``key`` to a server that asks.
Verification is never turned off. Relative paths are relative to the process's working directory.
"""
from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import model_validator

from facestack.core.configfile import StrictModel

__all__ = ["ServerTls", "ClientTls"]


def _readable(path: str | None, what: str) -> None:
    if path is not None and not Path(path).is_file():
        raise ValueError(f"{what} {path!r} is not a readable file")


class ServerTls(StrictModel):
    """HTTPS for a service: ``cert`` + ``key`` (PEM); ``client_ca`` turns on mutual TLS."""

    cert: str | None = None
    key: str | None = None
    client_ca: str | None = None

    @model_validator(mode="after")
    def _pairs(self) -> "ServerTls":
        if (self.cert is None) != (self.key is None):
            raise ValueError("tls needs both cert and key (or neither)")
        if self.client_ca is not None and self.cert is None:
            raise ValueError("tls.client_ca (mutual TLS) needs cert and key too")
        for path, what in ((self.cert, "tls.cert"), (self.key, "tls.key"),
                           (self.client_ca, "tls.client_ca")):
            _readable(path, what)
        return self

    @property
    def enabled(self) -> bool:
        return self.cert is not None

    def context(self) -> ssl.SSLContext | None:
        """The server's SSL context (None: plain HTTP)."""
        if self.cert is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert, self.key)
        if self.client_ca is not None:
            ctx.load_verify_locations(cafile=self.client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


class ClientTls(StrictModel):
    """How a service verifies another over HTTPS: ``ca`` bundle; ``cert`` + ``key`` for mutual TLS."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    @model_validator(mode="after")
    def _pairs(self) -> "ClientTls":
        if (self.cert is None) != (self.key is None):
            raise ValueError("a client certificate needs both cert and key (or neither)")
        for path, what in ((self.ca, "ca"), (self.cert, "cert"), (self.key, "key")):
            _readable(path, what)
        return self

    def context(self) -> ssl.SSLContext:
        """A verifying client context (hostname and chain checked)."""
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert is not None:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx
