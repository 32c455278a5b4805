"""Pinned archives from the package registries (PyPI through pip, npm tarballs over HTTPS), each
checked by sha256 before anything reads it. The one way the project obtains files at set-up time.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from facestack.core.errors import FetchError

log = logging.getLogger(__name__)

#: npm's public registry; ``NPM_CONFIG_REGISTRY`` (npm's own setting) points at a mirror
NPM_REGISTRY = "https://registry.npmjs.org"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Archive:
    """One pinned archive: a PyPI distribution file (``pypi``; ``sdist`` picks the source archive)
    or an npm package tarball (``npm``)."""

    registry: Literal["pypi", "npm"]
    name: str
    version: str
    filename: str
    sha256: str
    license: str
    sdist: bool = False
    #: PyPI files whose metadata pip cannot read without building them are fetched from their
    #: registry address directly (still checked by sha256)
    url: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name}=={self.version}" if self.registry == "pypi" else f"{self.name}@{self.version}"

    def npm_url(self) -> str:
        registry = os.environ.get("NPM_CONFIG_REGISTRY") or os.environ.get("npm_config_registry") or NPM_REGISTRY
        bare = self.name.rsplit("/", 1)[-1]
        return f"{registry.rstrip('/')}/{self.name}/-/{bare}-{self.version}.tgz"


def fetch(archive: Archive, dest: Path, timeout_s: float = 1800) -> Path:
    """``dest/<filename>``, downloaded unless already there with the pinned sha256; raises
    :class:`FetchError` when the download fails or the hash differs."""
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / archive.filename
    if path.is_file() and sha256_file(path) == archive.sha256:
        return path
    log.info("downloading %s", archive.label)
    if archive.url is not None:
        _http_download(archive.url, path, timeout_s)
    elif archive.registry == "pypi":
        _pip_download(archive, dest, timeout_s)
    else:
        _http_download(archive.npm_url(), path, timeout_s)
    if not path.is_file():
        raise FetchError(f"downloading {archive.label} did not produce {archive.filename}")
    digest = sha256_file(path)
    if digest != archive.sha256:
        path.unlink()
        raise FetchError(f"{archive.filename}: sha256 {digest} does not match the pinned {archive.sha256}")
    return path


def _pip_download(archive: Archive, dest: Path, timeout_s: float) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
           "-d", str(dest), archive.label]
    if archive.sdist:
        cmd[4:4] = ["--no-binary", ":all:"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise FetchError(f"pip download {archive.label} failed: {proc.stderr.strip()[-800:]}")


def _http_download(url: str, path: Path, timeout_s: float) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310
            shutil.copyfileobj(resp, out, 1 << 20)
        os.replace(tmp, path)
    except OSError as exc:
        raise FetchError(f"cannot download {url}: {exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
