"""On-disk cache of serialized TensorRT engines.

An engine is only valid for the ONNX file, GPU model, TensorRT version and build settings it was
built with, so the cache key is the sha256 of all of them (:class:`EngineKey`) and the file name is
the key. Files are written atomically (temporary file, fsync, rename) inside an envelope that
carries the key and the payload's sha256: a truncated, corrupt or foreign file is detected before
TensorRT sees it, and one TensorRT refuses to deserialize (``load`` returns None) is rebuilt.
Nothing here imports TensorRT; the build and deserialize steps are callables.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from facestack.vision.engines.tensorrt_profiles import InputProfile, Precision
from facestack.vision.errors import RuntimeUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Bumped when the envelope or the key's ingredients change, so old files are never read.
CACHE_FORMAT = 1
_MAGIC = b"FSTRTENG"
_HEADER = struct.Struct("<8sB64s32sQ")  # magic, format, key (hex), payload sha256, payload length


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; ``digest()`` is the cache key."""

    onnx_sha256: str
    gpu_name: str
    compute_capability: tuple[int, int]
    tensorrt_version: str
    precision: Precision
    profiles: tuple[InputProfile, ...]
    builder_flags: tuple[str, ...]

    def ingredients(self) -> dict[str, Any]:
        return {"format": CACHE_FORMAT, "onnx_sha256": self.onnx_sha256, "gpu": self.gpu_name,
                "compute_capability": list(self.compute_capability), "tensorrt": self.tensorrt_version,
                "precision": self.precision, "profiles": [p.as_json() for p in self.profiles],
                "builder_flags": sorted(self.builder_flags)}

    def digest(self) -> str:
        text = json.dumps(self.ingredients(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def builder_flags(precision: Precision, workspace_mb: int, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The builder settings that change the engine, as key ingredients."""
    flags = ["FP16"] if precision == "fp16" else []
    return tuple(sorted([*flags, f"workspace_mb={workspace_mb}", *extra]))


def pack_engine(key: str, payload: bytes) -> bytes:
    return _HEADER.pack(_MAGIC, CACHE_FORMAT, key.encode("ascii"), hashlib.sha256(payload).digest(), len(payload)) + payload


def unpack_engine(key: str, blob: bytes) -> bytes | None:
    """The payload of an envelope written for ``key``; None when it is anything else."""
    if len(blob) < _HEADER.size:
        return None
    magic, fmt, stored_key, digest, length = _HEADER.unpack_from(blob)
    payload = blob[_HEADER.size:]
    if magic != _MAGIC or fmt != CACHE_FORMAT or stored_key != key.encode("ascii") or length != len(payload):
        return None
    if hashlib.sha256(payload).digest() != digest:
        return None
    return payload


class EngineCache:
    """Serialized engines in ``directory``, one ``<key>.engine`` file (plus ``<key>.json``) each."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).expanduser()

    def path_for(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"not an engine cache key: {key!r}")
        return self.directory / f"{key}.engine"

    def read(self, key: str) -> bytes | None:
        """The cached payload for ``key``, or None (missing; a bad file is removed and logged)."""
        path = self.path_for(key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("engine cache: cannot read %s: %s", path, exc)
            return None
        payload = unpack_engine(key, blob)
        if payload is None:
            log.warning("engine cache: %s is corrupt or not for this key; rebuilding", path)
            self.discard(key)
        return payload

    def write(self, key: str, payload: bytes, meta: dict[str, Any] | None = None) -> Path | None:
        """Store ``payload`` atomically; a cache that cannot be written is logged, not fatal."""
        path = self.path_for(key)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, pack_engine(key, payload))
            if meta is not None:
                _atomic_write(path.with_suffix(".json"),
                              json.dumps(meta, indent=2, sort_keys=True).encode("utf-8"))
        except OSError as exc:
            log.warning("engine cache: cannot write %s: %s (the engine is used uncached)", path, exc)
            return None
        return path

    def discard(self, key: str) -> None:
        path = self.path_for(key)
        for p in (path, path.with_suffix(".json")):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("engine cache: cannot remove %s: %s", p, exc)

    def get_or_build(self, key: str, build: Callable[[], bytes], load: Callable[[bytes], T | None],
                     meta: dict[str, Any] | None = None, what: str = "engine") -> tuple[T, bool]:
        """``(loaded, hit)``: the cached engine if ``load`` accepts it, else a fresh build, cached."""
        payload = self.read(key)
        if payload is not None:
            loaded = load(payload)
            if loaded is not None:
                log.info("%s: engine cache hit %s", what, self.path_for(key).name)
                return loaded, True
            log.warning("%s: cached engine %s is incompatible with this TensorRT/GPU; rebuilding",
                        what, self.path_for(key))
            self.discard(key)
        payload = build()
        self.write(key, payload, meta)
        loaded = load(payload)
        if loaded is None:
            raise RuntimeUnavailable(f"{what}: TensorRT could not load the engine it has just built")
        return loaded, False


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
