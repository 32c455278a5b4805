"""Issue 14 #11: a malformed token in a config file is never echoed in the error message."""
from __future__ import annotations

from pathlib import Path

import pytest

from facerouter import config as router_config
from facerouter.errors import ConfigError as RouterConfigError
from video_worker import config as worker_config
from video_worker.errors import ConfigError as WorkerConfigError

SECRET = "s3cr3t-Value-0123456789"

CASES = [
    # (service, yaml text)
    ("router", f"sfapi_token: [{SECRET}]\n"),
    ("router", f"sfapi_token: {{a: {SECRET}}}\n"),
    ("router", f"auth:\n  tokens:\n    - token: [{SECRET}]\n"),
    ("router", f"auth:\n  tokens:\n    - {SECRET}\n"),
    ("router", f"auth:\n  tokens:\n    - {{token: {SECRET}, role: superuser}}\n"),
    ("worker", f"router_token: [{SECRET}]\n"),
    ("worker", f"auth:\n  tokens:\n    - token: {{x: {SECRET}}}\n"),
    ("worker", f"auth:\n  tokens: {SECRET}\n"),
]


@pytest.mark.parametrize("service, text", CASES)
def test_malformed_token_is_not_echoed(tmp_path: Path, service: str, text: str) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    if service == "router":
        with pytest.raises(RouterConfigError) as info:
            router_config.load(path)
    else:
        with pytest.raises(WorkerConfigError) as info:
            worker_config.load(path)
    message = str(info.value)
    assert SECRET not in message
    assert "cfg.yaml:" in message  # still says where


def test_other_values_are_still_shown(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("port: not-a-port\n")
    with pytest.raises(RouterConfigError, match="not-a-port"):
        router_config.load(path)
