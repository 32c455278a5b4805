"""The objects plugins receive and use (the documented ``facerouter.objects``).

They are the sfapi client's own result objects, so a :class:`DetectFace` handed to ``process`` can
be passed straight to ``ctx.sfapi[...].add(...)`` or ``filters.Detection(...)``:

* :class:`BBox` -- rectangle around a face (``left``, ``top``, ``right``, ``bottom``);
* :class:`DetectFace` -- one detection: ``id`` (in sfapi's detection cache), ``bbox``, ``features``;
* :class:`DetectResponse` -- list of :class:`DetectFace` with ``orientation``;
* :class:`FaceId` -- ``(gallery, face)`` identifier of a stored face;
* :class:`Face` -- a stored face or search result: ``id``, ``features``, ``meta``, ``confidence``;
* :class:`ListResponse` -- list of :class:`Face` with ``next_page``.
"""
from __future__ import annotations

from sfapi.client.objects import BBox, DetectFace, DetectResponse, Face, FaceId, ListResponse

__all__ = ["BBox", "DetectFace", "DetectResponse", "FaceId", "Face", "ListResponse"]
