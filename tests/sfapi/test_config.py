from pathlib import Path

import pytest

from sfapi.config import SfapiConfig
from facestack.core.configfile import load_config
from sfapi.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_shipped_config_is_valid() -> None:
    cfg = load_config(REPO / "config" / "sfapi.yaml", SfapiConfig)
    assert cfg.port == 18411
    assert cfg.batching.max_batch >= 1


def test_defaults_without_file() -> None:
    cfg = load_config(None, SfapiConfig)
    assert cfg.host == "127.0.0.1" and cfg.port == 18411


def test_overrides_win() -> None:
    cfg = load_config(None, SfapiConfig, {"port": 1234, "host": None})
    assert cfg.port == 1234 and cfg.host == "127.0.0.1"


@pytest.mark.parametrize("text, expected", [
    ("port: 99999\n", ":1 port: Input should be less than or equal to 65535 (got 99999)"),
    ("host: x\nbogus: 1\n", ":2 bogus: unknown key (got 1)"),
    ("batching:\n  max_batch: 0\n", ":2 batching.max_batch: Input should be greater than or equal to 1 (got 0)"),
    ("cache:\n  backend: redis\n", ":2 cache.backend: Input should be 'memory' or 'memcached' (got 'redis')"),
    ("runtime: [1, 2]\n", ":1 runtime: Input should be a valid dictionary"),
    ("port: [\n", ": not valid YAML"),
    ("- 1\n- 2\n", ":1: the top level must be a mapping"),
])
def test_bad_config_names_file_line_key_and_value(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "sfapi.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path, SfapiConfig)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml", SfapiConfig)
