"""Plugin loading: both module styles, order, config sections, and load-time validation."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from facerouter.app import Router
from facerouter.config import load
from facerouter.errors import ConfigError, PluginConfigError, PluginHookError, PluginLoadError
from tests.facerouter.conftest import write_plugins

SUBCLASS = """
    from facerouter.plugin import Plugin
    class P(Plugin):
        async def preprocess(self, request, labels):
            return ("facen",)
"""

ACTIVATE = """
    class P:
        def __init__(self, ctx, name, source):
            self.ctx, self.name, self.source = ctx, name, source
        def preprocess(self, request, labels):
            return ()
        def process(self, request, photo, bbox, event_id, detection):
            pass
    def activate(app, ctx, plugin_name, plugin_source):
        return P(ctx, plugin_name, plugin_source)
"""


async def load_router(tmp_path: Path, plugins: dict[str, str] | None = None,
                      config: dict | None = None, text: str | None = None) -> Router:
    data: dict = {"sfapi_url": "http://127.0.0.1:9"}
    if plugins is not None:
        data["plugin_dir"] = str(write_plugins(tmp_path / "plugins", plugins))
    data.update(config or {})
    path = tmp_path / "facerouter.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(data))
    router = Router(load(path))
    await router.start(sockets=[])
    return router


async def test_both_styles_and_the_stated_order(tmp_path: Path) -> None:
    write_plugins(tmp_path / "d1", {"zeta": SUBCLASS, "alpha": ACTIVATE})
    write_plugins(tmp_path / "d2", {"beta": SUBCLASS})
    pkg = tmp_path / "d2" / "gamma"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .impl import activate\n")
    (pkg / "impl.py").write_text(textwrap.dedent(ACTIVATE))
    (tmp_path / "d2" / "_private.py").write_text("raise SystemExit('must not be imported')\n")
    mods = tmp_path / "mods" / "frtest_dotted"
    mods.mkdir(parents=True)
    (mods / "__init__.py").write_text("")
    (mods / "extra.py").write_text(textwrap.dedent(SUBCLASS))
    sys.path.insert(0, str(tmp_path / "mods"))
    try:
        router = await load_router(tmp_path, config={
            "plugin_dir": [str(tmp_path / "d2"), str(tmp_path / "d1")],
            "plugins": ["frtest_dotted.extra"], "alpha": {"anything": [1, 2]}})
    finally:
        sys.path.remove(str(tmp_path / "mods"))
    try:
        assert router.registry.names() == ["beta", "gamma", "alpha", "zeta", "extra"]
        assert list(router.registry.objects) == router.registry.names()
        alpha = router.registry["alpha"].obj
        assert alpha.name == "alpha" and alpha.source == str(tmp_path / "d1" / "alpha.py")
        assert alpha.ctx.config == {"anything": [1, 2]} and alpha.ctx.plugin_name == "alpha"
        assert router.registry["extra"].source == "frtest_dotted.extra"
        beta = router.registry["beta"].obj
        assert beta.ctx is not alpha.ctx and beta.ctx.config == {}
        assert beta.ctx.plugins["zeta"] is router.registry["zeta"].obj
        assert beta.ctx.sfapi is router.sfapi and beta.ctx.idgen is router.idgen
        assert beta.ctx.sfapi["g"].name == "g"
        hooks = router.registry["beta"].hooks
        assert hooks["process"] is None and hooks["shutdown"] is None
    finally:
        await router.shutdown()


async def test_disabled_and_single_dir_string(tmp_path: Path) -> None:
    router = await load_router(tmp_path, {"a": SUBCLASS, "b": SUBCLASS},
                               config={"disabled_plugins": ["a"]})
    assert router.registry.names() == ["b"]
    await router.shutdown()


BAD = [
    ("no plugin", "x = 1\n", PluginLoadError, ["'p'", "no activate", "Plugin subclass"]),
    ("two classes", """
        from facerouter.plugin import Plugin
        class A(Plugin): pass
        class B(Plugin): pass
     """, PluginLoadError, ["several Plugin subclasses (A, B)"]),
    ("import error", "import no_such_module_x\n", PluginLoadError,
     ["'p'", "cannot import", "ModuleNotFoundError"]),
    ("bad process signature", """
        from facerouter.plugin import Plugin
        class A(Plugin):
            async def process(self, request, photo, bbox):
                pass
     """, PluginHookError,
     ["'p'", "process(self, request, photo, bbox, event_id, detection)", "A.process"]),
    ("bad preprocess signature", """
        from facerouter.plugin import Plugin
        class A(Plugin):
            def preprocess(self, request):
                return ()
     """, PluginHookError, ["'p'", "hook preprocess(self, request, labels)"]),
    ("bad shutdown signature", """
        from facerouter.plugin import Plugin
        class A(Plugin):
            def shutdown(self, reason):
                pass
     """, PluginHookError, ["hook shutdown(self)"]),
    ("missing hook", """
        class A:
            def preprocess(self, request, labels):
                return ()
        def activate(app, ctx, plugin_name, plugin_source):
            return A()
     """, PluginHookError, ["'p'", "hook process(self, request, photo, bbox, event_id, detection)",
                            "A has no process()"]),
    ("bad activate", """
        def activate(app, ctx):
            return None
     """, PluginHookError, ["activate(app, ctx, plugin_name, plugin_source)"]),
    ("activate returns None", """
        def activate(app, ctx, plugin_name, plugin_source):
            return None
     """, PluginHookError, ["returned None"]),
    ("constructor fails", """
        from facerouter.plugin import Plugin
        class A(Plugin):
            def __init__(self, ctx):
                raise ValueError("no way")
     """, PluginLoadError, ["A(ctx) failed", "no way"]),
]


@pytest.mark.parametrize(("what", "code", "error", "fragments"), BAD, ids=[b[0] for b in BAD])
async def test_bad_plugins_fail_start_up_naming_them(tmp_path: Path, what, code, error,
                                                     fragments) -> None:
    with pytest.raises(error) as info:
        await load_router(tmp_path, {"p": code})
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


async def test_already_loaded_plugins_are_shut_down_when_a_later_one_fails(tmp_path: Path) -> None:
    marker = tmp_path / "shut"
    good = f"""
        from facerouter.plugin import Plugin
        class A(Plugin):
            def shutdown(self):
                import pathlib
                pathlib.Path({str(marker)!r}).write_text("down")
    """
    with pytest.raises(PluginLoadError):
        await load_router(tmp_path, {"a": good, "b": "x = 1\n"})
    assert marker.read_text() == "down"


async def test_duplicate_names(tmp_path: Path) -> None:
    write_plugins(tmp_path / "d1", {"same": SUBCLASS})
    write_plugins(tmp_path / "d2", {"same": SUBCLASS})
    with pytest.raises(PluginLoadError, match="two plugins have this name"):
        await load_router(tmp_path, config={"plugin_dir": [str(tmp_path / "d1"),
                                                           str(tmp_path / "d2")]})


MODEL = """
    from pydantic import BaseModel, ConfigDict
    from facerouter.plugin import Plugin

    class Cfg(BaseModel):
        model_config = ConfigDict(extra="forbid")
        gallery: str
        threshold: float = 0.5

    class A(Plugin):
        config_model = Cfg
"""


async def test_plugin_config_model(tmp_path: Path) -> None:
    router = await load_router(tmp_path, {"withcfg": MODEL},
                               config={"withcfg": {"gallery": "g1"}})
    cfg = router.registry["withcfg"].obj.ctx.config
    assert cfg.gallery == "g1" and cfg.threshold == 0.5
    await router.shutdown()
    text = f"""sfapi_url: http://127.0.0.1:9
plugin_dir: {tmp_path / 'plugins'}
withcfg:
  gallery: g1
  threshold: high
"""
    with pytest.raises(PluginConfigError) as info:
        await load_router(tmp_path, text=text)
    message = str(info.value)
    assert "plugin 'withcfg'" in message
    assert "facerouter.yaml:5 withcfg.threshold:" in message and "(got 'high')" in message


async def test_unknown_section_and_bad_router_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"facerouter.yaml:\d+ nosuch: unknown key"):
        await load_router(tmp_path, {"a": SUBCLASS}, config={"nosuch": {"x": 1}})
    with pytest.raises(ConfigError, match=r"facerouter.yaml:\d+ nosuch: a plugin section must"):
        await load_router(tmp_path, {"a": SUBCLASS}, config={"nosuch": 5})
    with pytest.raises(ConfigError, match=r"facerouter.yaml:\d+ detector: .*got 'mtcnn'"):
        await load_router(tmp_path, {"a": SUBCLASS}, config={"detector": "mtcnn"})
    with pytest.raises(ConfigError, match=r"node_id"):
        await load_router(tmp_path, {"a": SUBCLASS}, config={"node_id": 5000})
    with pytest.raises(PluginLoadError, match="plugin_dir is not a directory"):
        await load_router(tmp_path, config={"plugin_dir": str(tmp_path / "missing")})


async def test_a_pip_installed_plugin_loads_by_its_declared_name(tmp_path: Path, monkeypatch) -> None:
    """A package that declares ``alerts`` under the facerouter.plugins entry-point group (here a
    real distribution's metadata on sys.path, the way pip leaves it in site-packages) is loaded by
    name, after the directories, beside facestack's own declared plugins."""
    site = tmp_path / "site"
    (site / "frtest_alerts").mkdir(parents=True)
    (site / "frtest_alerts" / "__init__.py").write_text(textwrap.dedent(ACTIVATE))
    info = site / "frtest_alerts-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: frtest-alerts\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[facerouter.plugins]\nalerts = frtest_alerts\n")
    monkeypatch.syspath_prepend(str(site))
    from facerouter.loader import installed_plugins

    assert installed_plugins()["alerts"] == "frtest_alerts"
    assert {"archive", "log", "persons", "webhook"} <= set(installed_plugins())  # ours, the same way
    router = await load_router(tmp_path, {"local": SUBCLASS}, config={"plugins": ["alerts", "log"]})
    try:
        assert router.registry.names() == ["local", "alerts", "log"]
        alerts = router.registry["alerts"]
        assert alerts.obj.source == "frtest_alerts" and alerts.obj.name == "alerts"
    finally:
        await router.shutdown()
        sys.modules.pop("frtest_alerts", None)
