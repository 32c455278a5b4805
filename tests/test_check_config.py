"""``--check-config`` fails where the start would: an unavailable runtime, a missing model pack, a bad
job setting (named by its own line and full key path), the production configs on a fresh machine."""
from __future__ import annotations

from pathlib import Path

import pytest

from sfapi import cli as sfapi_cli
from facestack.vision.engines.tensorrt import probe_gpu_stack
from video_worker import cli as worker_cli

REPO = Path(__file__).resolve().parents[1]

needs_no_gpu = pytest.mark.skipif(probe_gpu_stack().ok, reason="this machine has a usable GPU stack")


@needs_no_gpu
def test_sfapi_tensorrt_without_gpu_fails_check(tmp_path: Path, models_dir: Path, capsys) -> None:
    cfg = tmp_path / "sfapi.yaml"
    cfg.write_text(f"models:\n  dir: {models_dir}\nruntime:\n  kind: tensorrt\n")
    assert sfapi_cli.main(["--config", str(cfg), "--check-config"]) == 1
    err = capsys.readouterr().err
    assert "runtime tensorrt needs" in err and "config OK" not in err


@needs_no_gpu
def test_worker_tensorrt_without_gpu_fails_check(tmp_path: Path, models_dir: Path, capsys) -> None:
    cfg = tmp_path / "worker.yaml"
    cfg.write_text(f"models:\n  dir: {models_dir}\n  runtime: tensorrt\n")
    assert worker_cli.main(["--config", str(cfg), "--check-config"]) == 1
    assert "runtime tensorrt needs" in capsys.readouterr().err


def test_worker_check_names_missing_model_pack(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "worker.yaml"
    cfg.write_text(f"models:\n  dir: {tmp_path / 'no-pack'}\n")
    assert worker_cli.main(["--config", str(cfg), "--check-config"]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "no-pack") in err and "sfapi models fetch" in err


def test_job_setting_error_names_its_line_and_path(tmp_path: Path, models_dir: Path, capsys) -> None:
    cfg = tmp_path / "worker.yaml"
    cfg.write_text(f"models:\n  dir: {models_dir}\njobs:\n  - id: cam1\n    stream_url: rtsp://cam.example/1\n"
                   "    settings:\n      detect_fps: -3\n")
    assert worker_cli.main(["--config", str(cfg), "--check-config"]) == 2
    assert f"{cfg}:7 jobs.0.settings.detect_fps:" in capsys.readouterr().err


@pytest.mark.parametrize("name, must_exist", [
    ("sfapi.yaml", "/var/lib/facestack/models"),
    ("video_worker-1.yaml", "/var/lib/facestack/models"),
])
def test_production_configs_say_which_path_must_exist(name: str, must_exist: str, capsys) -> None:
    path = REPO / "config" / "production" / name
    if Path(must_exist).exists():
        pytest.skip(f"{must_exist} exists on this machine")
    if name.startswith("sfapi"):
        rc = sfapi_cli.main(["--config", str(path), "--check-config"])
    elif name.startswith("video_worker"):
        rc = worker_cli.main(["--config", str(path), "--check-config"])
    else:
        from facerouter.cli import main as router_main

        rc = router_main(["--config", str(path), "--check-config", "--log-level", "CRITICAL"])
    assert rc != 0
    assert must_exist in capsys.readouterr().err


def test_production_router_takes_its_plugins_from_the_installed_package() -> None:
    """No plugin folder to deploy: the production router names facestack's plugins, which the
    installed distribution declares as entry points (checked without starting them)."""
    from facerouter.config import load
    from facerouter.loader import discover

    found = discover(load(REPO / "config" / "production" / "facerouter.yaml"))
    assert [(p.name, p.source, p.path) for p in found] == [
        ("archive", "plugins.archive", None), ("persons", "plugins.persons", None),
        ("webhook", "plugins.webhook", None)]
