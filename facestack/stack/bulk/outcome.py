"""What became of one person: enrolled, refused (and why) or failed (to retry), from the answer of
``POST /persons`` or from the importer's own checks.

Refusal reasons (the ``reason`` column of the report):

================ ===============================================================================
``no_face``      no face was found on the photo
``several_faces`` more than one face large enough to enrol (``--largest-face`` takes the largest)
``too_small``    the face is below the source's ``manual_create_facesize_threshold``
``too_blurred``  the face is too blurred for the source's gates
``match``        the face matches an enrolled person above the exact threshold (``matched_pid``)
``unreadable``   the file is missing, cannot be decoded, or the URL cannot be fetched
``refused``      any other refusal of the API (its reason is in ``detail``)
================ ===============================================================================

A transient failure (the API unreachable, 5xx, 429) is status ``error``: a later run retries it.
An answer that would fail every photo the same way (401/403, an unknown source, a parameter the
server does not know) is :class:`Fatal` and stops the run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from facestack.core.errors import FacestackError

__all__ = ["Outcome", "Fatal", "REASONS", "from_answer", "refused", "failed"]

REASONS = ("no_face", "several_faces", "too_small", "too_blurred", "match", "unreadable",
           "refused")

#: words of an API refusal (code or reason, lower case) -> reason; the first that matches wins
_WORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("no_face", "no face", "face_not_found", "no faces"), "no_face"),
    (("several", "more than one face", "multiple faces", "faces found"), "several_faces"),
    (("blur", "sharp"), "too_blurred"),
    (("facesize", "too small", "face is", "face_too_small"), "too_small"),
    (("not a jpeg", "decode", "cannot read", "unreadable", "corrupt", "image format",
      "bad_image", "invalid image", "truncated"), "unreadable"),
)


class Fatal(FacestackError):
    """An answer that every further photo would get too: the run stops."""


@dataclass
class Outcome:
    """The result of one person (or of one of its photos, while candidates remain)."""

    status: str  # enrolled | refused | error
    reason: str | None = None
    detail: str = ""
    pid: str | None = None
    matched_pid: str | None = None


def refused(reason: str, detail: str, matched_pid: str | None = None) -> Outcome:
    """A refusal for one of :data:`REASONS`."""
    assert reason in REASONS, reason
    return Outcome("refused", reason, detail, matched_pid=matched_pid)


def failed(detail: str) -> Outcome:
    """A transient failure: retried by the next run."""
    return Outcome("error", None, detail)


def from_answer(status: int, body: Any) -> Outcome:
    """The outcome of one ``POST /persons`` answer (raises :class:`Fatal` for a run-wide one)."""
    info = body if isinstance(body, dict) else {}
    reason_text = str(info.get("reason") or "")
    code = str(info.get("code") or "")
    param = info.get("param")
    if status in (200, 201) and isinstance(info.get("pid"), str):
        entry = info.get("entry") if isinstance(info.get("entry"), dict) else {}
        result = entry.get("result")
        detail = "re-initialised the matched person" if result == "reinit" else ""
        return Outcome("enrolled", None, detail, pid=info["pid"])
    if status == 409:
        pid = info.get("pid") if isinstance(info.get("pid"), str) else None
        return refused("match", reason_text or "matches an enrolled person", pid)
    if status in (401, 403):
        raise Fatal(f"the API refused the credentials (HTTP {status}): {reason_text}; "
                    "give --token")
    if status == 404 and param != "image":
        raise Fatal(f"the persons API is not there (HTTP 404 {reason_text}); check --api and "
                    "--prefix, and that the persons plugin is enabled")
    if status in (400, 413, 415, 422) and param in ("source", "on_match", "Content-Type"):
        raise Fatal(f"the API refused {param}: {reason_text}")
    if status == 429 or status >= 500:
        return failed(f"HTTP {status} {code}: {reason_text}".strip())
    if 400 <= status < 500:
        words = f"{code} {reason_text}".lower()
        for keys, reason in _WORDS:
            if any(k in words for k in keys):
                return refused(reason, reason_text or code)
        return refused("refused", f"HTTP {status} {code}: {reason_text}".strip())
    return failed(f"unexpected HTTP {status}")
