"""Shared fixtures: the real model pack, the sample photos, a real sfapi server on loopback."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from sfapi.config import default_models_dir

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
#: The model pack the suite runs on (`make test` builds it before pytest starts).
PACK_DIR = Path(os.environ.get("SFAPI_MODELS_DIR") or default_models_dir())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import onnxruntime as ort
        has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The real model pack (built by `make test` before pytest; built here if missing)."""
    from sfapi.models.pack import ensure_pack

    ensure_pack(PACK_DIR)
    return PACK_DIR


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "faces").is_dir():
        pytest.skip("shared/data is not beside the checkout")
    return DATA


@pytest.fixture(scope="session")
def raw_models_dir(models_dir: Path) -> Path:
    """The original (non-ONNX) model files the pack keeps for reference checks."""
    return models_dir / "sources"
