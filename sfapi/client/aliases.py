"""Register another package name for :mod:`sfapi.client` (used by ``ntech.sfapi_client`` and
``sfapi_client``, the module names plugins written for the reference platform import).

The alias package re-exports the public names of :mod:`sfapi.client`, and its submodules
(``client``, ``gallery``, ``filters``, ``objects``, ``errors``) *are* the modules of
:mod:`sfapi.client` (the same module objects in :data:`sys.modules`), so every class is the same
object under either name: ``ntech.sfapi_client.objects.DetectFace is sfapi.client.objects.DetectFace``.
"""
from __future__ import annotations

import sys
from types import ModuleType

import sfapi.client as _impl

__all__ = ["SUBMODULES", "install"]

#: The submodules of :mod:`sfapi.client` reachable under an alias.
SUBMODULES = ("client", "gallery", "filters", "objects", "errors")


def install(package: ModuleType) -> None:
    """Make ``package`` an alias of :mod:`sfapi.client` (called from the alias's ``__init__``)."""
    for name in _impl.__all__:
        setattr(package, name, getattr(_impl, name))
    for sub in SUBMODULES:
        module = getattr(_impl, sub)
        setattr(package, sub, module)
        sys.modules[f"{package.__name__}.{sub}"] = module
    package.__all__ = [*_impl.__all__, *(s for s in SUBMODULES if s not in _impl.__all__)]
