"""Async client library of the sfapi service, with the API of the documented ``ntech.sfapi_client``.

A plugin written against that documentation runs unchanged apart from its imports::

    from sfapi.client import Client, filters, SFApiRemoteError

    async with Client("http://127.0.0.1:18411") as sfapi:
        faces = await sfapi.detect(image=jpeg, facen=True)
        hits = await sfapi.gallery("staff").list(
            filters=[filters.Detection(faces[0], 0.75)], limit=5)

Modules: :mod:`~sfapi.client.client` (:class:`Client`), :mod:`~sfapi.client.gallery`
(:class:`Gallery`), :mod:`~sfapi.client.filters`, :mod:`~sfapi.client.objects` and
:mod:`~sfapi.client.errors`.
"""
from sfapi.client import errors, filters, objects
from sfapi.client.client import DEFAULT_TIMEOUT, DEFAULT_URL, Client
from sfapi.client.errors import (
    SFApiError,
    SFApiMalformedResponseError,
    SFApiRemoteError,
    SFApiTimeoutError,
)
from sfapi.client.gallery import DEFAULT_REGENERATE_ATTEMPTS, Gallery
from sfapi.client.objects import (
    BBox,
    DetectFace,
    DetectResponse,
    Face,
    FaceId,
    GalleryListItem,
    ListResponse,
)

__all__ = [
    "Client",
    "Gallery",
    "filters",
    "objects",
    "errors",
    "BBox",
    "DetectFace",
    "DetectResponse",
    "Face",
    "FaceId",
    "GalleryListItem",
    "ListResponse",
    "SFApiError",
    "SFApiRemoteError",
    "SFApiMalformedResponseError",
    "SFApiTimeoutError",
    "DEFAULT_URL",
    "DEFAULT_TIMEOUT",
    "DEFAULT_REGENERATE_ATTEMPTS",
]
