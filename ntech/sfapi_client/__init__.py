"""``ntech.sfapi_client``: the reference platform's name for :mod:`sfapi.client` (an alias, not a
copy: ``ntech.sfapi_client.client.Client is sfapi.client.Client``).

Plugins importing as the reference documents run unchanged::

    from ntech.sfapi_client import filters
    from ntech.sfapi_client.client import Client
    from ntech.sfapi_client.objects import DetectFace
"""
import sys

from sfapi.client.aliases import install

install(sys.modules[__name__])
