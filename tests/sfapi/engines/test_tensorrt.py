"""TensorRT runtime: cache keys, profiles, batching, config and the no-GPU error on the CPU;
engine builds and accuracy against ONNX Runtime on a GPU (``gpu`` marker, skipped without one)."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import cv2
import numpy as np
import pytest

from sfapi.config import RuntimeConfig, SfapiConfig
from facestack.core.configfile import load_config
from facestack.vision.engines.runtime import Session, TensorSpec, create_runtime
from facestack.vision.engines.tensorrt import GpuStack, TensorRTRuntime, probe_gpu_stack
from facestack.vision.engines.tensorrt_cache import EngineCache, EngineKey, builder_flags, pack_engine, unpack_engine
from facestack.vision.engines.tensorrt_profiles import (ChunkedSession, InputProfile, TensorRTSettings, grown_capacity,
                                             input_profile, row_chunks)
from sfapi.errors import ConfigError, RuntimeUnavailable
from facestack.vision.models.pack import read_manifest
from facestack.vision.models.sources import NETWORKS

NO_GPU_STACK = not probe_gpu_stack().ok
CLEAR_ERROR = "runtime tensorrt needs the tensorrt and pycuda packages and an NVIDIA GPU; found:"


def settings(tmp: Path = Path("/nonexistent"), **kw: Any) -> TensorRTSettings:
    return TensorRTSettings(cache_dir=tmp, **kw)


# --- cache key ----------------------------------------------------------------------------------

BASE_PROFILES = (InputProfile("images", (1, 3, 150, 150), (16, 3, 150, 150), (64, 3, 150, 150)),)
BASE_KEY = EngineKey("ab" * 32, "NVIDIA H100 80GB HBM3", (9, 0), "10.9.0.34", "fp16", BASE_PROFILES,
                     builder_flags("fp16", 1024))
#: The key of BASE_KEY, pinned: a change here orphans every cached engine, so it must be deliberate.
BASE_DIGEST = "b66949bd81f6c0027e4d5fa1e734301eb56ded6cb4bc574eb8c741953f8d072c"

KEY_CHANGES = {
    "onnx_sha256": {"onnx_sha256": "cd" * 32},
    "gpu_name": {"gpu_name": "NVIDIA A100-SXM4-40GB"},
    "compute_capability": {"compute_capability": (8, 0)},
    "tensorrt_version": {"tensorrt_version": "10.9.0.35"},
    "precision": {"precision": "fp32", "builder_flags": builder_flags("fp32", 1024)},
    "precision_only": {"precision": "fp32"},
    "builder_flags_workspace": {"builder_flags": builder_flags("fp16", 2048)},
    "builder_flags_extra": {"builder_flags": builder_flags("fp16", 1024, ["SPARSE_WEIGHTS"])},
    "profile_max_batch": {"profiles": (dataclasses.replace(BASE_PROFILES[0], max=(32, 3, 150, 150)),)},
    "profile_opt_batch": {"profiles": (dataclasses.replace(BASE_PROFILES[0], opt=(8, 3, 150, 150)),)},
    "profile_min": {"profiles": (dataclasses.replace(BASE_PROFILES[0], min=(2, 3, 150, 150)),)},
    "profile_input_name": {"profiles": (dataclasses.replace(BASE_PROFILES[0], name="input"),)},
}


def test_same_ingredients_same_key() -> None:
    again = EngineKey("ab" * 32, "NVIDIA H100 80GB HBM3", (9, 0), "10.9.0.34", "fp16",
                      (InputProfile("images", (1, 3, 150, 150), (16, 3, 150, 150), (64, 3, 150, 150)),),
                      tuple(reversed(builder_flags("fp16", 1024))))
    assert again.digest() == BASE_KEY.digest()


def test_key_is_stable_across_runs() -> None:
    assert BASE_KEY.digest() == BASE_DIGEST
    code = ("from tests.sfapi.engines.test_tensorrt import BASE_KEY; print(BASE_KEY.digest())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[3], env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert out.stdout.strip() == BASE_DIGEST


@pytest.mark.parametrize("what", sorted(KEY_CHANGES))
def test_every_ingredient_changes_the_key(what: str) -> None:
    changed = dataclasses.replace(BASE_KEY, **KEY_CHANGES[what])
    assert changed.digest() != BASE_KEY.digest()


def test_ingredient_changes_give_distinct_keys() -> None:
    digests = {dataclasses.replace(BASE_KEY, **c).digest() for c in KEY_CHANGES.values()}
    assert len(digests) == len(KEY_CHANGES) and BASE_KEY.digest() not in digests


def test_cache_file_is_named_by_the_key(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    assert cache.path_for(BASE_DIGEST) == tmp_path / f"{BASE_DIGEST}.engine"
    with pytest.raises(ValueError, match="not an engine cache key"):
        cache.path_for("../../etc/passwd")


# --- engine cache files ---------------------------------------------------------------------------

KEY = BASE_DIGEST
OTHER = "0" * 64


@pytest.mark.parametrize("mangle, ok", [
    (lambda b: b, True),
    (lambda b: b[:-1], False),                           # truncated payload
    (lambda b: b[:20], False),                           # truncated header
    (lambda b: b[:-1] + bytes([b[-1] ^ 1]), False),      # flipped payload bit
    (lambda b: b"XXXXXXXX" + b[8:], False),              # foreign file
    (lambda b: b"", False),
    (lambda b: pack_engine(OTHER, b"engine bytes"), False),  # written for another key
])
def test_envelope_detects_damage(mangle: Any, ok: bool) -> None:
    blob = mangle(pack_engine(KEY, b"engine bytes"))
    assert (unpack_engine(KEY, blob) == b"engine bytes") is ok


class Counter:
    def __init__(self, payload: bytes = b"plan-1") -> None:
        self.builds = 0
        self.payload = payload

    def build(self) -> bytes:
        self.builds += 1
        return self.payload


def test_miss_builds_and_writes_then_hits(tmp_path: Path) -> None:
    cache, c = EngineCache(tmp_path / "engines"), Counter()
    engine, hit = cache.get_or_build(KEY, c.build, lambda b: ("engine", b), {"network": "facen"})
    assert (engine, hit, c.builds) == (("engine", b"plan-1"), False, 1)
    assert cache.path_for(KEY).is_file() and cache.path_for(KEY).with_suffix(".json").is_file()
    engine, hit = cache.get_or_build(KEY, c.build, lambda b: ("engine", b))
    assert (engine, hit, c.builds) == (("engine", b"plan-1"), True, 1)
    assert sorted(p.name for p in (tmp_path / "engines").iterdir()) == [f"{KEY}.engine", f"{KEY}.json"]  # no temp files


def test_corrupt_file_is_rebuilt(tmp_path: Path) -> None:
    cache, c = EngineCache(tmp_path), Counter()
    cache.get_or_build(KEY, c.build, lambda b: b)
    path = cache.path_for(KEY)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    engine, hit = cache.get_or_build(KEY, c.build, lambda b: b)
    assert (engine, hit, c.builds) == (b"plan-1", False, 2)
    assert unpack_engine(KEY, path.read_bytes()) == b"plan-1"


def test_incompatible_engine_is_rebuilt(tmp_path: Path) -> None:
    """TensorRT refusing a cached plan (load returns None) means rebuild, then the new file is used."""
    cache = EngineCache(tmp_path)
    cache.write(KEY, b"old-plan")
    c = Counter(b"new-plan")
    engine, hit = cache.get_or_build(KEY, c.build, lambda b: b if b == b"new-plan" else None)
    assert (engine, hit, c.builds) == (b"new-plan", False, 1)
    assert cache.read(KEY) == b"new-plan"


def test_fresh_engine_that_does_not_load_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeUnavailable, match="facen: TensorRT could not load the engine it has just built"):
        EngineCache(tmp_path).get_or_build(KEY, Counter().build, lambda b: None, what="facen")


def test_unwritable_cache_still_gives_the_engine(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    engine, hit = EngineCache(blocker / "engines").get_or_build(KEY, Counter().build, lambda b: b)
    assert (engine, hit) == (b"plan-1", False)


# --- profiles -------------------------------------------------------------------------------------

DEFAULT_PROFILES = {  # from the manifest's input shapes (facestack.vision.models.sources.NETWORKS), default settings
    "detector_pnet": ((1, 12, 12, 3), (1, 384, 384, 3), (1, 1280, 1280, 3)),
    "detector_rnet": ((1, 24, 24, 3), (16, 24, 24, 3), (64, 24, 24, 3)),
    "detector_onet": ((1, 48, 48, 3), (16, 48, 48, 3), (64, 48, 48, 3)),
    "facen": ((1, 3, 150, 150), (16, 3, 150, 150), (64, 3, 150, 150)),
    "gender": ((1, 3, 32, 32), (16, 3, 32, 32), (64, 3, 32, 32)),
    "age": ((1, 3, 64, 64), (16, 3, 64, 64), (64, 3, 64, 64)),
    "emotions": ((1, 1, 64, 64), (16, 1, 64, 64), (64, 1, 64, 64)),
    "pose": ((1, 3, 224, 224), (1, 3, 224, 224), (1, 3, 224, 224)),  # batch fixed at 1 in the file
}


@pytest.mark.parametrize("spec", NETWORKS, ids=[n.name for n in NETWORKS])
def test_profile_from_manifest_shape(spec: Any) -> None:
    p = input_profile("x", spec.inputs["shape"], settings())
    assert (p.min, p.opt, p.max) == DEFAULT_PROFILES[spec.name]


@pytest.mark.parametrize("shape, kw, expected", [
    ((-1, 3, 150, 150), {"max_batch": 8, "opt_batch": 8}, ((1, 3, 150, 150), (8, 3, 150, 150), (8, 3, 150, 150))),
    ((-1, -1, -1, 3), {"max_input_side": 200}, ((1, 12, 12, 3), (1, 200, 200, 3), (1, 200, 200, 3))),
    ((-1, -1, -1, 3), {"max_input_side": 2048, "spatial_max_batch": 4},
     ((1, 12, 12, 3), (4, 384, 384, 3), (4, 2048, 2048, 3))),
    ((1, 3, 64, 64), {}, ((1, 3, 64, 64), (1, 3, 64, 64), (1, 3, 64, 64))),   # static: no profile range
    ((None, 7), {"max_batch": 1, "opt_batch": 1}, ((1, 7), (1, 7), (1, 7))),
])
def test_profile_from_parser_shapes(shape: tuple[Any, ...], kw: dict[str, int], expected: tuple[Any, ...]) -> None:
    p = input_profile("x", shape, settings(**kw))
    assert (p.min, p.opt, p.max) == expected
    assert p.dynamic is (expected[0] != expected[2])


def test_profiles_of_the_real_pack_match_its_onnx_files(models_dir: Path) -> None:
    """What TensorRT's parser will see (the ONNX graph inputs) gives the profiles the manifest gives."""
    onnx = pytest.importorskip("onnx")
    manifest = read_manifest(models_dir)
    for name, entry in manifest["networks"].items():
        graph = onnx.load(str(models_dir / entry["file"]), load_external_data=False).graph
        (inp,) = graph.input
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in inp.type.tensor_type.shape.dim]
        from_onnx = input_profile(inp.name, dims, settings())
        from_manifest = input_profile(inp.name, entry["inputs"]["shape"], settings())
        assert from_onnx == from_manifest, name
        assert (from_onnx.min, from_onnx.opt, from_onnx.max) == DEFAULT_PROFILES[name]


@pytest.mark.parametrize("fp16, facen_fp16, network, expected", [
    (True, None, "facen", "fp16"), (True, None, "age", "fp16"),
    (True, False, "facen", "fp32"), (True, False, "detector_pnet", "fp16"),
    (False, None, "facen", "fp32"), (False, True, "facen", "fp16"), (False, True, "gender", "fp32"),
])
def test_precision_per_network(fp16: bool, facen_fp16: bool | None, network: str, expected: str) -> None:
    assert settings(fp16=fp16, facen_fp16=facen_fp16).precision_for(network) == expected


@pytest.mark.parametrize("kw", [{"opt_batch": 65}, {"opt_batch": 0}, {"max_input_side": 8, "min_input_side": 12},
                                {"workspace_mb": 0}, {"device": -1}])
def test_bad_settings(kw: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        settings(**kw)


# --- batching ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("rows, limit, sizes", [
    (0, 4, []), (1, 4, [1]), (4, 4, [4]), (5, 4, [4, 1]), (150, 64, [64, 64, 22]), (3, 1, [1, 1, 1]),
])
def test_row_chunks(rows: int, limit: int, sizes: list[int]) -> None:
    chunks = row_chunks(rows, limit)
    assert [s.stop - s.start for s in chunks] == sizes
    assert all(a.stop == b.start for a, b in zip(chunks, chunks[1:]))


@pytest.mark.parametrize("current, needed, rows, max_rows, expected", [
    (0, 3 * 100, 3, 64, 64 * 100),     # first use: room for the profile's max batch
    (6400, 640, 6, 64, 6400),          # fits: unchanged
    (6400, 6400, 64, 64, 6400),
    (0, 500, 1, 1, 500),               # P-Net: batch 1, grows with the level size
    (500, 900, 1, 1, 900),
    (0, 1000, 100, 64, 1000),          # more rows than the profile (never chunked so): still enough
])
def test_buffer_growth(current: int, needed: int, rows: int, max_rows: int, expected: int) -> None:
    assert grown_capacity(current, needed, rows, max_rows) == expected


class FakeEngine:
    """Stands in for one engine: doubles its input rows and sums them; records chunk sizes."""

    def __init__(self, delay: float = 0.0) -> None:
        self.chunks: list[int] = []
        self.delay = delay
        self.active = 0
        self.overlaps = 0

    def execute(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        self.active += 1
        if self.active > 1:
            self.overlaps += 1
        time.sleep(self.delay)
        (x,) = inputs
        self.chunks.append(len(x))
        out = [x.reshape(len(x), -1).sum(axis=1, keepdims=True) * 2, x[:, :1, 0, 0] + 1]
        self.active -= 1
        return out


def fake_session(engine: FakeEngine, shape: Sequence[object] = ("N", 3, 4, 4), **kw: Any) -> ChunkedSession:
    prof = input_profile("images", shape, settings(**kw))
    return ChunkedSession("net", [TensorSpec("images", (None, 3, 4, 4))],
                          [TensorSpec("sum", (None, 1)), TensorSpec("first", (None, 1))], [prof], engine.execute)


@pytest.mark.parametrize("rows, max_batch, chunks", [(1, 64, [1]), (64, 64, [64]), (150, 64, [64, 64, 22]),
                                                     (10, 4, [4, 4, 2])])
def test_big_batches_are_split_and_joined_in_order(rows: int, max_batch: int, chunks: list[int]) -> None:
    engine = FakeEngine()
    sess = fake_session(engine, max_batch=max_batch, opt_batch=1)
    x = np.random.default_rng(rows).uniform(0, 255, (rows, 3, 4, 4)).astype(np.float32)
    total, first = sess.run(x)
    assert engine.chunks == chunks
    np.testing.assert_allclose(total[:, 0], x.reshape(rows, -1).sum(axis=1) * 2, rtol=1e-5)
    np.testing.assert_array_equal(first[:, 0], x[:, 0, 0, 0] + 1)


def test_empty_batch_gives_empty_outputs() -> None:
    engine = FakeEngine()
    total, first = fake_session(engine).run(np.zeros((0, 3, 4, 4), np.float32))
    assert total.shape == (0, 1) and first.shape == (0, 1) and engine.chunks == [1]


def test_inputs_are_float32_contiguous() -> None:
    seen: list[np.ndarray] = []

    def execute(inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        seen.extend(inputs)
        return [inputs[0][:, :1, 0, 0]]

    prof = input_profile("images", ("N", 3, 4, 4), settings())
    sess = ChunkedSession("net", [TensorSpec("images", (None, 3, 4, 4))], [TensorSpec("o", (None, 1))], [prof], execute)
    sess.run(np.zeros((2, 4, 4, 3), np.uint8).transpose(0, 3, 1, 2))
    assert seen[0].dtype == np.float32 and seen[0].flags.c_contiguous


@pytest.mark.parametrize("shape, message", [
    ((1, 3, 5, 4), r"axis 2 is 5, the engine takes 4\.\.4"),
    ((1, 3, 4), "needs 4 dimensions"),
])
def test_shapes_outside_the_profile_are_refused(shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fake_session(FakeEngine()).run(np.zeros(shape, np.float32))


@pytest.mark.parametrize("shape, message", [
    ((1, 1281, 40, 3), r"axis 1 is 1281, the engine takes 12\.\.1280 \(raise runtime.max_input_side\)"),
    ((1, 40, 11, 3), r"axis 2 is 11, the engine takes 12\.\.1280"),
])
def test_pnet_sides_are_checked(shape: tuple[int, ...], message: str) -> None:
    prof = input_profile("input_1", ["N", "H", "W", 3], settings())
    sess = ChunkedSession("detector_pnet", [TensorSpec("input_1", (None, None, None, 3))], [], [prof], lambda i: [])
    with pytest.raises(ValueError, match=message):
        sess.run(np.zeros(shape, np.float32))


def test_pnet_batches_are_split_to_its_profile() -> None:
    calls: list[tuple[int, ...]] = []
    prof = input_profile("input_1", ["N", "H", "W", 3], settings())
    sess = ChunkedSession("detector_pnet", [TensorSpec("input_1", (None, None, None, 3))],
                          [TensorSpec("o", (None, 1))], [prof], lambda i: (calls.append(i[0].shape), [i[0][:, 0, 0, :1]])[1])
    (out,) = sess.run(np.ones((3, 20, 30, 3), np.float32))
    assert calls == [(1, 20, 30, 3)] * 3 and out.shape == (3, 1)


def test_wrong_input_count() -> None:
    with pytest.raises(ValueError, match="expected 1 inputs, got 2"):
        fake_session(FakeEngine()).run(np.zeros((1, 3, 4, 4), np.float32), np.zeros((1, 3, 4, 4), np.float32))


def test_runs_from_many_threads_never_overlap_on_one_engine() -> None:
    engine = FakeEngine(delay=0.002)
    sess = fake_session(engine, max_batch=4, opt_batch=4)
    rng = np.random.default_rng(0)
    blocks = [rng.uniform(0, 1, (int(rng.integers(1, 12)), 3, 4, 4)).astype(np.float32) for _ in range(16)]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = sess.run(blocks[i])[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(blocks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert engine.overlaps == 0
    for i, x in enumerate(blocks):
        np.testing.assert_allclose(results[i][:, 0], x.reshape(len(x), -1).sum(axis=1) * 2, rtol=1e-5)


# --- config and the clear error without a GPU ------------------------------------------------------

def test_runtime_config_defaults() -> None:
    cfg = RuntimeConfig()
    assert (cfg.fp16, cfg.facen_fp16, cfg.max_batch, cfg.opt_batch, cfg.max_input_side, cfg.device) == \
        (True, None, 64, 16, 1280, 0)
    assert cfg.resolved_engine_cache_dir().name == "tensorrt"
    assert "facestack" in str(cfg.resolved_engine_cache_dir())


def test_runtime_config_to_settings(tmp_path: Path) -> None:
    path = tmp_path / "sfapi.yaml"
    path.write_text(f"runtime:\n  kind: tensorrt\n  engine_cache_dir: {tmp_path / 'eng'}\n  fp16: true\n"
                    "  facen_fp16: false\n  max_batch: 128\n  opt_batch: 32\n  max_input_side: 640\n"
                    "  workspace_mb: 512\n  device: 1\n")
    cfg = load_config(path, SfapiConfig).runtime
    s = TensorRTSettings.from_config(cfg)
    assert s == TensorRTSettings(cache_dir=tmp_path / "eng", fp16=True, facen_fp16=False, max_batch=128,
                                 opt_batch=32, max_input_side=640, workspace_mb=512, device=1)
    assert s.precision_for("facen") == "fp32" and s.precision_for("detector_onet") == "fp16"


@pytest.mark.parametrize("text, expected", [
    ("runtime:\n  max_batch: 8\n  opt_batch: 16\n", ":1 runtime: Value error, opt_batch (16) must not exceed max_batch (8)"),
    ("runtime:\n  max_batch: 0\n", ":2 runtime.max_batch: Input should be greater than or equal to 1 (got 0)"),
    ("runtime:\n  max_input_side: 8\n", ":2 runtime.max_input_side: Input should be greater than or equal to 12 (got 8)"),
    ("runtime:\n  fp16: maybe\n", ":2 runtime.fp16: Input should be a valid boolean"),
    ("runtime:\n  engine_cache: /tmp\n", ":2 runtime.engine_cache: unknown key"),
])
def test_bad_runtime_config(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "sfapi.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path, SfapiConfig)
    assert expected in str(err.value)


def test_missing_gpu_stack_is_a_clear_error(tmp_path: Path) -> None:
    stack = GpuStack(problems=("tensorrt: not importable (No module named 'tensorrt')",
                               "NVIDIA GPU: none visible to CUDA"))
    with pytest.raises(RuntimeUnavailable) as err:
        TensorRTRuntime(settings(tmp_path), stack=stack)
    assert str(err.value).startswith(CLEAR_ERROR)
    assert "No module named 'tensorrt'" in str(err.value) and "none visible to CUDA" in str(err.value)


@pytest.mark.skipif(not NO_GPU_STACK, reason="this machine has TensorRT, pycuda and a GPU")
def test_create_runtime_tensorrt_fails_clearly_here() -> None:
    with pytest.raises(RuntimeUnavailable, match=CLEAR_ERROR):
        create_runtime("tensorrt", 1, RuntimeConfig(kind="tensorrt"))
    with pytest.raises(RuntimeUnavailable, match=CLEAR_ERROR):
        create_runtime("tensorrt")


def test_unknown_runtime() -> None:
    with pytest.raises(RuntimeUnavailable, match="choose onnxruntime, onnxruntime-cuda or tensorrt"):
        create_runtime("openvino")


@pytest.mark.skipif(not NO_GPU_STACK, reason="this machine has TensorRT, pycuda and a GPU")
def test_sfapi_start_with_tensorrt_fails_clearly(tmp_path: Path, models_dir: Path) -> None:
    """The real console script, started on a config that asks for TensorRT, exits 1 at start-up."""
    path = tmp_path / "sfapi.yaml"
    path.write_text(f"port: 0\nmodels:\n  dir: {models_dir}\nruntime:\n  kind: tensorrt\n"
                    f"  engine_cache_dir: {tmp_path / 'engines'}\ngallery:\n  path: {tmp_path / 'g.db'}\n")
    sfapi = Path(sys.executable).with_name("sfapi")
    proc = subprocess.run([str(sfapi), "--config", str(path), "--log-level", "WARNING"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "sfapi: " + CLEAR_ERROR in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "engines").exists()


# --- on a GPU -----------------------------------------------------------------------------------------

def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _photos(data_dir: Path) -> list[Path]:
    return sorted(data_dir.glob("faces/*/*")) + sorted(data_dir.glob("scenes/*"))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engines")


@pytest.fixture(scope="module")
def trt_runtime(engine_dir: Path) -> Iterator[TensorRTRuntime]:
    rt = TensorRTRuntime(TensorRTSettings(cache_dir=engine_dir))
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def trt_analyzer(models_dir: Path, trt_runtime: TensorRTRuntime) -> Iterator[Any]:
    from facestack.vision.engines.analyzer import FaceAnalyzer

    an = FaceAnalyzer(models_dir, SfapiConfig(), trt_runtime)
    yield an
    an.close()


def _random_input(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if name.startswith("detector_"):
        return rng.uniform(-1, 1, shape).astype(np.float32)  # already normalized by the detector
    if name in ("age", "gender"):
        return rng.uniform(-0.5, 0.5, shape).astype(np.float32)
    return rng.uniform(0, 255, shape).astype(np.float32)


@pytest.mark.gpu
def test_every_network_builds_and_runs_like_onnxruntime(models_dir: Path, trt_runtime: TensorRTRuntime) -> None:
    ort = create_runtime("onnxruntime", 1)
    manifest = read_manifest(models_dir)
    rng = np.random.default_rng(7)
    for name, entry in manifest["networks"].items():
        path = models_dir / entry["file"]
        trt_sess: Session = trt_runtime.load(path, name)
        ort_sess = ort.load(path, name)
        assert [o.name for o in trt_sess.outputs] == [o.name for o in ort_sess.outputs]
        shapes = [(1, 12, 12, 3), (1, 384, 217, 3), (1, 120, 90, 3)] if name == "detector_pnet" else \
            [(n,) + tuple(d for d in entry["inputs"]["shape"][1:]) for n in (1, 7, 64, 100)]
        for shape in shapes:
            x = _random_input(name, shape, rng)
            got, want = trt_sess.run(x), ort_sess.run(x)
            for g, w in zip(got, want):
                assert g.shape == w.shape, (name, shape)
                scale = max(1.0, float(np.abs(w).max()))
                assert float(np.abs(g - w).max()) <= 0.02 * scale, (name, shape, float(np.abs(g - w).max()))


@pytest.mark.gpu
@pytest.mark.parametrize("facen_fp16", [True, False], ids=["facen-fp16", "facen-fp32"])
def test_facen_within_cosine_0999_of_onnxruntime_on_every_face(facen_fp16: bool, models_dir: Path, data_dir: Path,
                                                               analyzer: Any, engine_dir: Path) -> None:
    from facestack.vision.engines.analyzer import normalize_facen

    rt = TensorRTRuntime(TensorRTSettings(cache_dir=engine_dir, facen_fp16=facen_fp16))
    try:
        facen = rt.load(models_dir / read_manifest(models_dir)["networks"]["facen"]["file"], "facen")
        worst, faces = 1.0, 0
        for photo in _photos(data_dir):
            rgb = _rgb(photo)
            prepared = analyzer.prepare(rgb, analyzer.detect(rgb), ["facen"])
            if not len(prepared.faces):
                continue
            want = normalize_facen(analyzer.extract_sync(prepared)["facen"])
            got = normalize_facen(facen.run(prepared.inputs["facen"])[0])
            cos = np.sum(want * got, axis=1)
            worst, faces = min(worst, float(cos.min())), faces + len(cos)
            assert cos.min() >= 0.999, (photo.name, cos.tolist())
        assert faces >= 20
    finally:
        rt.close()


@pytest.mark.gpu
def test_detection_agrees_with_onnxruntime(data_dir: Path, analyzer: Any, trt_analyzer: Any) -> None:
    for photo in _photos(data_dir):
        rgb = _rgb(photo)
        want, got = analyzer.detect(rgb), trt_analyzer.detect(rgb)
        assert len(got) == len(want), photo.name
        for i in range(len(want)):
            j = max(range(len(got)), key=lambda k: _iou(want.boxes[i], got.boxes[k]))
            assert _iou(want.boxes[i], got.boxes[j]) >= 0.9, photo.name
            side = float(want.boxes[i, 2] - want.boxes[i, 0])
            assert float(np.abs(want.landmarks[i] - got.landmarks[j]).max()) <= 0.03 * side, photo.name
            assert abs(float(want.scores[i] - got.scores[j])) <= 0.02, photo.name


@pytest.mark.gpu
def test_attributes_agree_with_onnxruntime(data_dir: Path, analyzer: Any, trt_analyzer: Any) -> None:
    from facestack.vision.engines.analyzer import postprocess

    for photo in _photos(data_dir):
        rgb = _rgb(photo)
        prepared = analyzer.prepare(rgb, analyzer.detect(rgb), ["gender", "age", "emotions"])
        if not len(prepared.faces):
            continue
        want, got = analyzer.extract_sync(prepared), trt_analyzer.extract_sync(prepared)
        for name in ("gender", "age", "emotions"):
            assert float(np.abs(want[name] - got[name]).max()) <= 0.05, (photo.name, name)
        for i in range(len(prepared.faces)):
            w, g = postprocess(want, i), postprocess(got, i)
            assert w["gender"]["gender"] == g["gender"]["gender"], photo.name
            assert abs(w["age"] - g["age"]) <= 2, photo.name
            assert w["emotions"][0]["emotion"] == g["emotions"][0]["emotion"], photo.name


@pytest.mark.gpu
def test_second_load_hits_the_engine_cache(models_dir: Path, trt_runtime: TensorRTRuntime, engine_dir: Path) -> None:
    path = models_dir / read_manifest(models_dir)["networks"]["gender"]["file"]
    trt_runtime.load(path, "gender")  # built here or by an earlier test
    rt = TensorRTRuntime(TensorRTSettings(cache_dir=engine_dir))
    try:
        sess = rt.load(path, "gender")
        assert rt.loads[-1].cache_hit and rt.loads[-1].engine_path.is_file()
        assert sess.run(np.zeros((3, 3, 32, 32), np.float32))[0].shape == (3, 2)
    finally:
        rt.close()


@pytest.mark.gpu
def test_corrupt_cached_engine_is_rebuilt_on_the_gpu(models_dir: Path, tmp_path: Path) -> None:
    path = models_dir / read_manifest(models_dir)["networks"]["gender"]["file"]
    rt = TensorRTRuntime(TensorRTSettings(cache_dir=tmp_path, max_batch=4, opt_batch=2))
    try:
        rt.load(path, "gender")
        engine_file = rt.loads[-1].engine_path
        engine_file.write_bytes(engine_file.read_bytes()[:-100])
        sess = rt.load(path, "gender")
        assert not rt.loads[-1].cache_hit
        ort = create_runtime("onnxruntime", 1).load(path, "gender")
        x = np.random.default_rng(1).uniform(-0.5, 0.5, (10, 3, 32, 32)).astype(np.float32)  # 10 rows > max_batch 4
        np.testing.assert_allclose(sess.run(x)[0], ort.run(x)[0], atol=0.02)
    finally:
        rt.close()
