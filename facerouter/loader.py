"""Finding, importing, building and checking plugins.

Order (this is the order of ``ctx.plugins``, of the hook calls' bookkeeping and, reversed, of
``shutdown``):

1. each directory of ``plugin_dir``, in the order given; in a directory, every ``name.py`` and every
   package ``name/__init__.py`` sorted by name (names starting with ``_`` or ``.`` are skipped);
2. then each entry of ``plugins``, in the order given: a name without dots that an installed
   package declares under the ``facerouter.plugins`` entry-point group (:func:`installed_plugins`;
   facestack's own plugins are declared so), or else a dotted module name (the plugin's name is
   its last component).

Plugins named in ``disabled_plugins`` are skipped. Two plugins with one name fail start-up.

A module defines its plugin in one of two ways: it exports ``activate(app, ctx, plugin_name,
plugin_source)`` returning the plugin object (``plugin_source`` is the module's file path or dotted
name; ``activate`` may be ``async``), or it defines exactly one subclass of
:class:`facerouter.plugin.Plugin`, built as ``cls(ctx)``. The config model, if any, is the module's
``config_model`` or the class's ``config_model``.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, Callable

from pydantic import BaseModel

from facerouter.config import LoadedConfig, validate_section
from facerouter.context import Context
from facerouter.errors import PluginHookError, PluginLoadError
from facerouter.plugin import HOOKS, Plugin, noop_hooks

__all__ = ["PluginSource", "LoadedPlugin", "PluginRegistry", "discover", "installed_plugins", "ENTRY_POINT_GROUP"]

log = logging.getLogger(__name__)

_MODULE_PREFIX = "facerouter_plugin_"
#: the entry-point group under which installed packages declare plugins
ENTRY_POINT_GROUP = "facerouter.plugins"
_ACTIVATE_SIGNATURE = "(app, ctx, plugin_name, plugin_source)"


@dataclass(frozen=True)
class PluginSource:
    """Where a plugin comes from: a file or package in a plugin directory, or a dotted module."""

    name: str
    source: str  # file path or dotted module name: handed to activate() as plugin_source
    path: Path | None = None  # None for a dotted module


@dataclass
class LoadedPlugin:
    """A built, checked plugin.

    ``hooks`` maps each hook name to the callable to use, or ``None`` when the plugin does not
    implement it (the base class's no-op); ``is_async`` tells which hooks are coroutine functions.
    """

    name: str
    source: str
    obj: Any
    hooks: dict[str, Callable[..., Any] | None]
    is_async: dict[str, bool]
    timeout: float


def discover(config: LoadedConfig) -> list[PluginSource]:
    """The plugins the config asks for, in load order (disabled ones left out).

    Raises:
        PluginLoadError: a plugin directory does not exist, or two plugins share a name.
    """
    found: list[PluginSource] = []
    for directory in config.plugin_dirs():
        if not directory.is_dir():
            raise PluginLoadError(str(directory), "plugin_dir is not a directory")
        for entry in sorted(directory.iterdir(), key=lambda p: p.name):
            if entry.name.startswith(("_", ".")):
                continue
            if entry.is_file() and entry.suffix == ".py":
                found.append(PluginSource(entry.stem, str(entry), entry))
            elif entry.is_dir() and (entry / "__init__.py").is_file():
                found.append(PluginSource(entry.name, str(entry), entry / "__init__.py"))
    installed: dict[str, str] | None = None
    for name in config.router.plugins:
        if "." not in name:  # a plugin an installed package declares, or a top-level module
            installed = installed_plugins() if installed is None else installed
            if name in installed:
                found.append(PluginSource(name, installed[name]))
                continue
        found.append(PluginSource(name.rsplit(".", 1)[-1], name))
    disabled = set(config.router.disabled_plugins)
    seen: dict[str, str] = {}
    out = []
    for item in found:
        if item.name in disabled:
            log.info("plugin %s (%s) is disabled by config", item.name, item.source)
            continue
        if not item.name.isidentifier():
            raise PluginLoadError(item.source, f"plugin name {item.name!r} is not an identifier")
        if item.name in seen:
            raise PluginLoadError(item.name, f"two plugins have this name: {seen[item.name]} and "
                                  f"{item.source}")
        seen[item.name] = item.source
        out.append(item)
    return out


def installed_plugins() -> dict[str, str]:
    """The plugins installed packages declare under :data:`ENTRY_POINT_GROUP`: name -> module.

    A package ships a plugin by declaring it, e.g. in setup.cfg::

        [options.entry_points]
        facerouter.plugins =
            alerts = mycompany_alerts.plugin

    and a router loads it when its config lists the name (``plugins: [alerts]``). facestack's own
    plugins (archive, log, persons, webhook) are declared the same way.
    """
    out: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        module = ep.value.split(":", 1)[0].strip()
        if ep.name in out and out[ep.name] != module:
            log.warning("two installed packages declare the plugin %s: %s and %s (the first is used)",
                        ep.name, out[ep.name], module)
            continue
        out[ep.name] = module
    return out


def import_plugin(item: PluginSource) -> ModuleType:
    """Import a plugin module (a file, a package directory or a dotted module name)."""
    try:
        if item.path is None:
            return importlib.import_module(item.source)
        module_name = _MODULE_PREFIX + item.name
        package = [str(item.path.parent)] if item.path.name == "__init__.py" else None
        spec = importlib.util.spec_from_file_location(module_name, item.path,
                                                      submodule_search_locations=package)
        if spec is None or spec.loader is None:
            raise PluginLoadError(item.name, f"cannot import {item.source}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        return module
    except PluginLoadError:
        raise
    except Exception as exc:
        raise PluginLoadError(item.name, f"cannot import {item.source}: "
                              f"{type(exc).__name__}: {exc}") from exc


class PluginRegistry:
    """The loaded plugins, in load order (built at start-up; one per router)."""

    def __init__(self) -> None:
        self._plugins: dict[str, LoadedPlugin] = {}
        self._objects: dict[str, Any] = {}
        #: live read-only view name -> plugin object, handed to plugins as ``ctx.plugins``
        self.objects = MappingProxyType(self._objects)

    def __iter__(self) -> Any:
        return iter(list(self._plugins.values()))

    def __len__(self) -> int:
        return len(self._plugins)

    def __getitem__(self, name: str) -> LoadedPlugin:
        return self._plugins[name]

    def names(self) -> list[str]:
        """Plugin names in load order."""
        return list(self._plugins)

    async def load_all(self, config: LoadedConfig, base_ctx: Context) -> None:
        """Discover, import, build and check every plugin the config asks for, in order.

        Raises:
            PluginLoadError, PluginHookError, PluginConfigError: naming the plugin.
            ConfigError: a config section names no loaded plugin.
        """
        sources = discover(config)
        for item in sources:
            module = import_plugin(item)
            loaded = await self._build(item, module, config, base_ctx)
            self._plugins[item.name] = loaded
            self._objects[item.name] = loaded.obj
            log.info("plugin %s loaded from %s (hooks: %s)", item.name, item.source,
                     ", ".join(h for h, fn in loaded.hooks.items() if fn is not None) or "none")
        config.check_sections(self.names())

    async def _build(self, item: PluginSource, module: ModuleType, config: LoadedConfig,
                     base_ctx: Context) -> LoadedPlugin:
        activate = getattr(module, "activate", None)
        cls = None
        if activate is None:
            cls = _plugin_class(item, module)
        elif not callable(activate):
            raise PluginHookError(item.name, "activate", _ACTIVATE_SIGNATURE, "is not callable")
        else:
            _check_signature(item.name, "activate", activate, 4, _ACTIVATE_SIGNATURE)
        model = getattr(module, "config_model", None) or getattr(cls, "config_model", None)
        if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise PluginLoadError(item.name, f"config_model must be a pydantic model class, got "
                                  f"{model!r}")
        section = (validate_section(config, item.name, model) if model is not None
                   else config.section(item.name))
        ctx = base_ctx.for_plugin(item.name, section)
        try:
            if cls is not None:
                obj = cls(ctx)
            else:
                assert activate is not None
                obj = activate(base_ctx.app, ctx, item.name, item.source)
                if inspect.isawaitable(obj):
                    obj = await obj
        except PluginLoadError:
            raise
        except Exception as exc:
            how = f"{cls.__name__}(ctx)" if cls is not None else "activate()"
            raise PluginLoadError(item.name, f"{how} failed: {type(exc).__name__}: {exc}") from exc
        if obj is None:
            raise PluginHookError(item.name, "activate", _ACTIVATE_SIGNATURE,
                                  "returned None; it must return the plugin object")
        hooks, is_async = _check_hooks(item.name, obj)
        return LoadedPlugin(item.name, item.source, obj, hooks, is_async,
                            config.router.timeout_for(item.name))


def _plugin_class(item: PluginSource, module: ModuleType) -> type[Plugin]:
    classes = [value for value in vars(module).values()
               if isinstance(value, type) and issubclass(value, Plugin) and value is not Plugin
               and value.__module__ == module.__name__]
    if len(classes) == 1:
        return classes[0]
    if not classes:
        raise PluginLoadError(item.name, f"{item.source} has no activate{_ACTIVATE_SIGNATURE} and "
                              "defines no facerouter.plugin.Plugin subclass")
    names = ", ".join(sorted(c.__name__ for c in classes))
    raise PluginLoadError(item.name, f"{item.source} defines several Plugin subclasses ({names}) "
                          "and no activate() to choose one")


def _signature_text(hook: str) -> str:
    return "(" + ", ".join(("self",) + HOOKS[hook]) + ")"


def _check_signature(plugin: str, hook: str, fn: Callable[..., Any], nargs: int,
                     expected: str) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins and some C callables have no signature to check
    try:
        sig.bind(*([None] * nargs))
    except TypeError as exc:
        raise PluginHookError(plugin, hook, expected,
                              f"cannot be called with {nargs} positional argument(s): it is "
                              f"{getattr(fn, '__qualname__', fn)}{sig} ({exc})") from None


def _check_hooks(plugin: str, obj: Any) -> tuple[dict[str, Callable[..., Any] | None],
                                                 dict[str, bool]]:
    noops = noop_hooks()
    hooks: dict[str, Callable[..., Any] | None] = {}
    is_async: dict[str, bool] = {}
    for hook, args in HOOKS.items():
        fn = getattr(obj, hook, None)
        expected = _signature_text(hook)
        if fn is None:
            if hook == "shutdown" or isinstance(obj, Plugin):
                hooks[hook], is_async[hook] = None, False
                continue
            raise PluginHookError(plugin, hook, expected, f"{type(obj).__name__} has no {hook}()")
        if not callable(fn):
            raise PluginHookError(plugin, hook, expected, "is not callable")
        if getattr(fn, "__func__", None) is noops[hook]:
            hooks[hook], is_async[hook] = None, False  # the base class's no-op
            continue
        _check_signature(plugin, hook, fn, len(args), expected)
        hooks[hook] = fn
        is_async[hook] = inspect.iscoroutinefunction(fn)
    return hooks, is_async
