"""Signed webhook deliveries: what the sender adds and what a receiver checks.

Every delivery of :class:`facerouter.delivery.JsonDelivery` with a ``secret`` carries::

    X-Facestack-Timestamp: <Unix seconds when this attempt was sent>
    X-Facestack-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed with the secret>

A retry is signed again with its own timestamp; the body (and the ``event_id`` in it) stay the
same. A receiver recomputes the HMAC over the raw body it got, compares in constant time, refuses
a timestamp older than a few minutes (a replay), and drops an ``event_id`` it has already handled
within that window (a replay inside it, or our own retry of a delivery it did get). An altered body
or timestamp fails the comparison. :func:`verify` does all but the last step.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from typing import Mapping

from facestack.core.errors import FacestackError

__all__ = ["TIMESTAMP_HEADER", "SIGNATURE_HEADER", "sign", "signed_headers", "verify",
           "SignatureError"]

TIMESTAMP_HEADER = "X-Facestack-Timestamp"
SIGNATURE_HEADER = "X-Facestack-Signature"


class SignatureError(FacestackError, ValueError):
    """A delivery whose signature or timestamp does not check out."""


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """``v1=<hex>``: the HMAC-SHA256 of ``<timestamp>.<body>`` under ``secret``."""
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, str(int(timestamp)).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signed_headers(secret: str | bytes, body: bytes, now: float | None = None) -> dict[str, str]:
    """The two headers of one delivery attempt of ``body``."""
    ts = int(time.time() if now is None else now)
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(secret, ts, body)}


def verify(secret: str | bytes, body: bytes, headers: Mapping[str, str], tolerance_s: float = 300,
           now: float | None = None) -> int:
    """The delivery's timestamp when its signature is ours and the timestamp is within
    ``tolerance_s`` of ``now``; raises :class:`SignatureError` otherwise. ``headers`` is any
    case-insensitive mapping (aiohttp's, Tornado's, Flask's)."""
    raw_ts = headers.get(TIMESTAMP_HEADER)
    raw_sig = headers.get(SIGNATURE_HEADER)
    if not raw_ts or not raw_sig:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
    try:
        ts = int(raw_ts)
    except ValueError:
        raise SignatureError(f"{TIMESTAMP_HEADER} is not an integer") from None
    expected = sign(secret, ts, body)
    if not any(hmac.compare_digest(expected, s.strip()) for s in raw_sig.split(",")):
        raise SignatureError("signature mismatch: not signed with this secret, or altered")
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        raise SignatureError(f"timestamp {ts} is more than {tolerance_s:g} s from now (a replay?)")
    return ts
