"""The one place plugin hooks are called: sync or async, with a time limit, errors isolated.

Every call goes through :meth:`PluginDriver.call`: ``async def`` hooks run on the event loop under
``asyncio.wait_for``; ``def`` hooks run in a bounded thread pool (so a slow or hanging one never
blocks the loop) and a coroutine they return is awaited on the loop. Whatever a hook raises goes
through one path: expected errors (sfapi and facerouter errors) are logged as a warning with the
plugin's name, anything else with its traceback; both are counted, and the call simply counts as
failed -- other plugins and the frame go on.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from facerouter.errors import FacerouterError
from facerouter.loader import LoadedPlugin, PluginRegistry
from facerouter.metrics import RouterMetrics
from facerouter.plugin import FEATURES, FrHTTPRequest
from sfapi.client import SFApiError

__all__ = ["PluginDriver", "Preprocessed", "EXPECTED_ERRORS"]

log = logging.getLogger(__name__)

#: Errors logged as a warning without a traceback (a plugin's own code bugs get the traceback).
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (SFApiError, FacerouterError)
_FAILED = object()


@dataclass
class Preprocessed:
    """The outcome of every plugin's preprocess for one frame."""

    wanted: dict[str, frozenset[str]] = field(default_factory=dict)  # plugin -> features (non-empty)
    failed: list[str] = field(default_factory=list)

    def features(self) -> frozenset[str]:
        """The union of the features every plugin asked for."""
        out: set[str] = set()
        for names in self.wanted.values():
            out.update(names)
        return frozenset(out)


class PluginDriver:
    """Calls the hooks of a registry's plugins; metrics and logs name the plugin."""

    def __init__(self, registry: PluginRegistry, metrics: RouterMetrics, sync_workers: int) -> None:
        self.registry = registry
        self.metrics = metrics
        self._executor = ThreadPoolExecutor(sync_workers, thread_name_prefix="facerouter-plugin")

    def close(self) -> None:
        """Stop the sync-hook threads (a hook still hanging in one is left to finish alone)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def call(self, plugin: LoadedPlugin, hook: str, *args: Any,
                   timeout: float | None = None) -> Any:
        """Call one hook; returns its result, or the sentinel :data:`_FAILED` if it failed."""
        fn = plugin.hooks.get(hook)
        if fn is None:
            return None
        limit = plugin.timeout if timeout is None else timeout
        self.metrics.plugin_calls.labels(plugin.name, hook).inc()
        started = time.perf_counter()
        deadline = started + limit
        try:
            if plugin.is_async[hook]:
                result = await asyncio.wait_for(fn(*args), limit)
            else:
                loop = asyncio.get_running_loop()
                future = loop.run_in_executor(self._executor, functools.partial(fn, *args))
                result = await asyncio.wait_for(future, limit)
                if inspect.isawaitable(result):
                    result = await asyncio.wait_for(result, max(deadline - time.perf_counter(), 0))
            return result
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            self.metrics.plugin_errors.labels(plugin.name, hook, "timeout").inc()
            log.warning("plugin %s: %s did not finish within its time limit of %.3g s",
                        plugin.name, hook, limit)
        except EXPECTED_ERRORS as exc:
            self.metrics.plugin_errors.labels(plugin.name, hook, "error").inc()
            log.warning("plugin %s: %s failed: %s: %s", plugin.name, hook, type(exc).__name__, exc)
        except Exception:
            self.metrics.plugin_errors.labels(plugin.name, hook, "error").inc()
            log.exception("plugin %s: %s raised", plugin.name, hook)
        finally:
            self.metrics.plugin_latency.labels(plugin.name, hook).observe(
                time.perf_counter() - started)
        return _FAILED

    async def preprocess(self, request: FrHTTPRequest, labels: Mapping[str, str]) -> Preprocessed:
        """Every plugin's preprocess, concurrently; collects what each asked for."""
        plugins = [p for p in self.registry if p.hooks.get("preprocess") is not None]
        results = await asyncio.gather(*(self.call(p, "preprocess", request, labels)
                                         for p in plugins))
        out = Preprocessed()
        for plugin, result in zip(plugins, results):
            if result is _FAILED:
                out.failed.append(plugin.name)
                continue
            features = self._features(plugin, result)
            if features is None:
                out.failed.append(plugin.name)
            elif features:
                out.wanted[plugin.name] = features
        return out

    def _features(self, plugin: LoadedPlugin, result: Any) -> frozenset[str] | None:
        """The features a preprocess result names, or ``None`` (counted) if it is not valid."""
        if result is None:
            return frozenset()
        items: Iterable[Any] = (result,) if isinstance(result, str) else result
        try:
            names = frozenset(items)
        except TypeError:
            names = None
        if names is None or not all(isinstance(n, str) and n in FEATURES for n in names):
            self.metrics.plugin_errors.labels(plugin.name, "preprocess", "bad_result").inc()
            log.warning("plugin %s: preprocess returned %r; expected a tuple of %s", plugin.name,
                        result, ", ".join(FEATURES))
            return None
        return names

    async def process(self, names: Iterable[str], request: FrHTTPRequest, photo: bytes, bbox: Any,
                      event_id: int, detection: Any) -> list[str]:
        """``process`` of the named plugins, concurrently; returns the names of those that failed."""
        plugins = [self.registry[name] for name in names]
        results = await asyncio.gather(*(self.call(p, "process", request, photo, bbox, event_id,
                                                   detection) for p in plugins))
        return [p.name for p, r in zip(plugins, results) if r is _FAILED]

    async def shutdown(self, timeout: float) -> list[str]:
        """Every plugin's shutdown, one at a time in reverse load order; returns those that failed."""
        failed = []
        for plugin in reversed(list(self.registry)):
            if plugin.hooks.get("shutdown") is None:
                continue
            log.info("plugin %s: shutting down", plugin.name)
            if await self.call(plugin, "shutdown", timeout=timeout) is _FAILED:
                failed.append(plugin.name)
        return failed
