"""``sfapi_client``: the reference platform's short name for :mod:`sfapi.client` (an alias, not a
copy), as in ``from sfapi_client import SFApiRemoteError, SFApiMalformedResponseError``.

Submodules ``sfapi_client.client``, ``.gallery``, ``.filters``, ``.objects`` and ``.errors`` are the
modules of :mod:`sfapi.client`.
"""
import sys

from sfapi.client.aliases import install

install(sys.modules[__name__])
