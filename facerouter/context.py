"""The context object every plugin gets (``ctx``): sfapi client, id generator, plugins, config."""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping

import tornado.web

from facerouter.idgen import IdGenerator
from sfapi.client import Client

__all__ = ["Context"]


class Context:
    """What a plugin can use, shared by all plugins except :attr:`config` and :attr:`plugin_name`.

    Attributes:
        sfapi: the configured :class:`sfapi.client.Client`; ``ctx.sfapi['name']`` is a gallery.
        idgen: callable giving unique, time-ordered 64-bit ids (``ctx.idgen()``), unique across
            routers with different ``node_id``; may be passed as ``new_id`` to ``Gallery.add``.
        plugins: read-only ordered mapping name -> plugin object of the loaded plugins (in load
            order; it fills up while plugins load, so use it in hooks, not in ``__init__``).
        config: this plugin's config section: the plugin's pydantic config model when it declares
            one, else a plain dict (empty when the file has no section).
        plugin_name: this plugin's name.
        app: the Tornado application (plugins may add routes to it).
    """

    def __init__(self, *, sfapi: Client, idgen: IdGenerator, plugins: Mapping[str, Any],
                 app: tornado.web.Application, config: Any = None, plugin_name: str = "") -> None:
        self.sfapi = sfapi
        self.idgen = idgen
        self.plugins: Mapping[str, Any] = (plugins if isinstance(plugins, MappingProxyType)
                                           else MappingProxyType(dict(plugins)))
        self.app = app
        self.config: Any = {} if config is None else config
        self.plugin_name = plugin_name

    def for_plugin(self, plugin_name: str, config: Any) -> Context:
        """A context for one plugin: the same shared objects, that plugin's name and config."""
        return Context(sfapi=self.sfapi, idgen=self.idgen, plugins=self.plugins, app=self.app,
                       config=config, plugin_name=plugin_name)

    def __repr__(self) -> str:
        return (f"Context(plugin={self.plugin_name!r}, sfapi={self.sfapi!r}, "
                f"plugins={list(self.plugins)!r})")
