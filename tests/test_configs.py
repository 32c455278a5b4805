"""Every shipped config file parses with its service's typed config (the demo, production examples,
the stack), and the systemd units point at the console scripts."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO

CONFIG = REPO / "config"


def _load(path: Path) -> object:
    name = path.name
    if name.startswith("sfapi"):
        from sfapi.config import SfapiConfig
        from facestack.core.configfile import load_config
        return load_config(path, SfapiConfig)
    if name.startswith("facerouter"):
        from facerouter.config import load
        return load(path)
    if name.startswith("video_worker"):
        from video_worker.config import load
        return load(path)
    if name.startswith("stack"):
        from facestack.stack.config import load_stack
        return load_stack(path)
    raise AssertionError(f"no loader for {path}")


@pytest.mark.parametrize("path", sorted(CONFIG.glob("*.yaml")) + sorted(CONFIG.glob("production/*.yaml")),
                         ids=lambda p: str(p.relative_to(CONFIG)))
def test_shipped_configs_are_valid(path: Path) -> None:
    assert _load(path) is not None


@pytest.mark.parametrize("unit", sorted(CONFIG.glob("systemd/*.service")), ids=lambda p: p.name)
def test_systemd_units_run_the_console_scripts(unit: Path) -> None:
    text = unit.read_text()
    assert "[Service]" in text and "[Install]" in text and "Restart=on-failure" in text
    exec_line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    script = exec_line.split("=", 1)[1].split()[0].rsplit("/", 1)[-1]
    assert script in {"sfapi", "facerouter", "video-worker"}
    assert "--config" in exec_line
