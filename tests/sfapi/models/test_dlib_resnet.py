"""Tests for the dlib serialization reader and the dlib ResNet -> ONNX converter.

The reference test needs dlib (dlib-bin) and the raw model files, which the model pack keeps in its
``sources/`` folder (fixture ``raw_models_dir`` in tests/conftest.py).
"""
from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest

from sfapi.errors import ModelPackError
from facestack.vision.models.dlib_format import DlibReader
from facestack.vision.models.dlib_resnet import convert_dlib_resnet, read_dlib_resnet
from tests.conftest import DATA

RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE5_FILE = "shape_predictor_5_face_landmarks.dat"
DATA_DIRS = (DATA / "faces", DATA / "partial", DATA / "scenes")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


# --------------------------------------------------------------------------------------------
# Primitive readers on hand-built bytes


def _f32(*values: float) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x01\x00", 0),
        (b"\x01\x05", 5),
        (b"\x81\x05", -5),
        (b"\x02\x80\x12", 4736),
        (b"\x82\xff\xff", -65535),
        (b"\x04\x00\x00\x00\x80", 2**31),
        (b"\x08" + (2**63 - 1).to_bytes(8, "little"), 2**63 - 1),
        (b"\x88" + (2**63).to_bytes(8, "little"), -(2**63)),
    ],
)
def test_read_int(data: bytes, expected: int) -> None:
    r = DlibReader(data)
    assert r.read_int() == expected
    assert r.remaining == 0


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x01\x10\x81\x04", 1.0),  # 16 * 2**-4
        (b"\x81\x03\x01\x01", -6.0),  # -3 * 2**1
        (b"\x01\x00\x01\x0b", 0.0),
        (b"\x03\x0a\xd7\xa3\x81\x1c", 10737418 * 2.0**-28),  # the file's margin, ~0.04
        (b"\x01\x01\x02\x00\x7d", math.inf),  # exponent 32000
        (b"\x01\x01\x02\x01\x7d", -math.inf),  # exponent 32001
    ],
)
def test_read_float(data: bytes, expected: float) -> None:
    r = DlibReader(data)
    assert r.read_float() == expected
    assert r.remaining == 0


def test_read_float_nan() -> None:
    assert math.isnan(DlibReader(b"\x01\x01\x02\x02\x7d").read_float())


@pytest.mark.parametrize(("data", "expected"), [(b"1", True), (b"0", False)])
def test_read_bool(data: bytes, expected: bool) -> None:
    assert DlibReader(data).read_bool() is expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"\x01\x00", ""), (b"\x01\x05con_4", "con_4"), (b"\x01\x07affine_", "affine_")],
)
def test_read_string(data: bytes, expected: str) -> None:
    r = DlibReader(data)
    assert r.read_string() == expected
    r.expect_end()


def test_read_tensor_and_alias() -> None:
    data = (
        b"\x01\x02" + b"\x01\x01\x01\x02\x01\x01\x01\x03" + _f32(1.5, -2.0, 0.25, 3.0, 4.0, -5.5)
        + b"\x01\x01" + b"\x01\x20\x01\x03\x01\x07\x01\x07"
        + b"\x01\x02" + b"\x01\x00" * 4
    )
    r = DlibReader(data)
    t = r.read_tensor()
    assert t.dtype == np.float32
    assert t.shape == (1, 2, 1, 3)
    np.testing.assert_array_equal(t.ravel(), [1.5, -2.0, 0.25, 3.0, 4.0, -5.5])
    assert r.read_alias_tensor() == (32, 3, 7, 7)
    assert r.read_tensor().shape == (0, 0, 0, 0)
    r.expect_end()


def test_offset_advances() -> None:
    r = DlibReader(b"\x01\x05" + b"\x01\x03abc" + b"1")
    assert r.offset == 0
    r.read_int()
    assert r.offset == 2
    r.read_string()
    assert r.offset == 7
    r.read_bool()
    assert (r.offset, r.remaining) == (8, 0)


@pytest.mark.parametrize(
    ("method", "data", "message"),
    [
        ("read_int", b"", "truncated"),
        ("read_int", b"\x02\x01", "truncated"),
        ("read_int", b"\x00", "0 bytes"),
        ("read_int", b"\x09" + b"\x01" * 9, "9 bytes"),
        ("read_int", b"\x31\x00", "control byte"),
        ("read_uint", b"\x81\x01", "negative"),
        ("read_float", b"\x01\x10\x03\x00\x00\x01", "3 bytes"),  # exponent wider than int16
        ("read_float", b"1.5", "ASCII"),
        ("read_bool", b"2", "bool"),
        ("read_bool", b"", "truncated"),
        ("read_string", b"\x01\x05con", "truncated"),
        ("read_tensor", b"\x01\x02\x01\x01\x01\x01\x01\x01\x01\x02" + _f32(1.0), "truncated"),
        ("read_tensor", b"\x01\x07", "tensor version"),
        ("read_tensor", b"\x01\x02\x81\x01\x01\x01\x01\x01\x01\x01", "negative"),
        ("read_alias_tensor", b"\x01\x02", "alias tensor version"),
        ("expect_end", b"\x00", "unread"),
    ],
)
def test_malformed_input_raises(method: str, data: bytes, message: str) -> None:
    r = DlibReader(data, source="hand-built")
    with pytest.raises(ModelPackError, match=message) as info:
        getattr(r, method)()
    assert "byte offset" in str(info.value)
    assert "hand-built" in str(info.value)


def test_error_names_the_failing_offset() -> None:
    r = DlibReader(b"\x01\x05\x01\x03ab")
    r.read_int()
    with pytest.raises(ModelPackError, match=r"byte offset 4\b"):
        r.read_string()


def test_expect_string_mismatch() -> None:
    with pytest.raises(ModelPackError, match="expected 'con_4'.*'relu_'.*offset 0"):
        DlibReader(b"\x01\x05relu_").expect_string("con_4")


# --------------------------------------------------------------------------------------------
# Real model files


@pytest.fixture(scope="module")
def resnet_onnx(raw_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dlib_resnet") / "dlib_resnet.onnx"
    convert_dlib_resnet(raw_models_dir / RESNET_FILE, out)
    return out


def test_read_real_file(raw_models_dir: Path) -> None:
    net = read_dlib_resnet(raw_models_dir / RESNET_FILE)
    assert net.input_size == (150, 150)
    np.testing.assert_allclose(net.means_rgb, (122.782, 117.001, 104.298), atol=1e-3)
    assert net.parameter_count == 5_614_592
    assert net.loss == "loss_metric_2"
    assert net.distance_threshold == pytest.approx(0.6)


@pytest.mark.parametrize("cut", [1, 300, 1000, 22_000_000, -1])
def test_truncated_real_file_raises(raw_models_dir: Path, tmp_path: Path, cut: int) -> None:
    data = (raw_models_dir / RESNET_FILE).read_bytes()
    bad = tmp_path / "truncated.dat"
    bad.write_bytes(data[:cut])
    with pytest.raises(ModelPackError, match="byte offset"):
        read_dlib_resnet(bad)


def test_trailing_bytes_raise(raw_models_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "extra.dat"
    bad.write_bytes((raw_models_dir / RESNET_FILE).read_bytes() + b"\x00")
    with pytest.raises(ModelPackError, match="1 unread bytes"):
        read_dlib_resnet(bad)


def test_other_dlib_file_is_rejected(raw_models_dir: Path) -> None:
    if not (raw_models_dir / SHAPE5_FILE).is_file():
        pytest.skip(f"{SHAPE5_FILE} not found")
    with pytest.raises(ModelPackError):
        read_dlib_resnet(raw_models_dir / SHAPE5_FILE)


def test_onnx_model_interface(resnet_onnx: Path) -> None:
    import onnx
    import onnxruntime as ort

    model = onnx.load(resnet_onnx)
    assert {op.domain: op.version for op in model.opset_import}[""] == 17
    sess = ort.InferenceSession(str(resnet_onnx), providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.shape[1:], inp.type) == ("images", [3, 150, 150], "tensor(float)")
    assert (out.name, out.shape[1:]) == ("descriptor", [128])
    assert isinstance(inp.shape[0], str) and isinstance(out.shape[0], str)  # dynamic batch
    batch = np.random.default_rng(0).uniform(0, 255, (3, 3, 150, 150)).astype(np.float32)
    together = sess.run(None, {"images": batch})[0]
    alone = np.concatenate([sess.run(None, {"images": batch[i : i + 1]})[0] for i in range(3)])
    assert together.shape == (3, 128)
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-5)


def _images() -> list[Path]:
    found: list[Path] = []
    for directory in DATA_DIRS:
        if directory.is_dir():
            found += sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return found


@pytest.mark.slow
def test_matches_dlib_descriptor(raw_models_dir: Path, resnet_onnx: Path) -> None:
    dlib = pytest.importorskip("dlib")
    import onnxruntime as ort

    if not (raw_models_dir / SHAPE5_FILE).is_file():
        pytest.skip(f"{SHAPE5_FILE} not found in {raw_models_dir}")
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(raw_models_dir / SHAPE5_FILE))
    facerec = dlib.face_recognition_model_v1(str(raw_models_dir / RESNET_FILE))
    sess = ort.InferenceSession(str(resnet_onnx), providers=["CPUExecutionProvider"])

    cosines: dict[str, float] = {}
    for path in _images():
        img = dlib.load_rgb_image(str(path))
        for i, box in enumerate(detector(img, 1)):
            chip = dlib.get_face_chip(img, predictor(img, box), size=150, padding=0.25)
            want = np.asarray(facerec.compute_face_descriptor(chip), dtype=np.float64)
            x = np.ascontiguousarray(chip.transpose(2, 0, 1)[None], dtype=np.float32)
            got = sess.run(["descriptor"], {"images": x})[0][0].astype(np.float64)
            cosines[f"{path.name}#{i}"] = float(
                want @ got / (np.linalg.norm(want) * np.linalg.norm(got))
            )
            np.testing.assert_allclose(np.linalg.norm(got), np.linalg.norm(want), rtol=1e-3)

    assert len(cosines) >= 18, f"only {len(cosines)} faces found"
    worst = min(cosines, key=cosines.__getitem__)
    assert cosines[worst] >= 0.9999, f"{worst}: cosine {cosines[worst]:.6f}"
