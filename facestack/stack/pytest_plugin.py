"""The pytest side of :mod:`facestack.stack.plugin_testing`: the ``facerouter_plugin`` fixture.

pytest loads this module from the installed distribution (entry-point group ``pytest11``), so a
plugin's own tests use the fixture with no import::

    async def test_alerts(facerouter_plugin):
        async with facerouter_plugin("alerts", config={"alerts": {"url": ...}}) as run:
            status, body = await run.post_frame(sample_photo())
"""
from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest

if TYPE_CHECKING:
    from facestack.stack.plugin_testing import PluginRun


@pytest.fixture
def facerouter_plugin(tmp_path: Path) -> Callable[..., AbstractAsyncContextManager["PluginRun"]]:
    """``facerouter_plugin(*names, plugin_dir=None, config=None, sfapi_config=None)``: an async
    context manager running those plugins in a real router against a real sfapi."""

    def run(*plugins: str, **kw: Any) -> AbstractAsyncContextManager["PluginRun"]:
        from facestack.stack.plugin_testing import plugin_harness  # the services load on first use

        return plugin_harness(list(plugins), work_dir=tmp_path / "facerouter-plugin", **kw)

    return run
