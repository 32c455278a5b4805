"""Helpers shared by the benchmarks: sample photos, identity pairs, a real sfapi server, tables."""
from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facestack.stack.sample_data import EXPECTED_FACES, ensure_sample_data, identities  # noqa: E402

#: the project's own sample photos (`make data`; fetched here when missing)
DATA = ensure_sample_data()


def expected_faces(photo: Path) -> int:
    return EXPECTED_FACES[photo.name] if photo.parent.name == "scenes" else 1


def photos() -> list[Path]:
    """Every distinct photo: one face each in faces/ and partial/, several in scenes/."""
    return sorted(DATA.glob("faces/*/*")) + sorted(DATA.glob("partial/*")) + sorted(DATA.glob("scenes/*"))


def identity_photos() -> dict[str, list[Path]]:
    """Distinct single-face photos by identity (no resized or cropped copies of one photo)."""
    return identities(DATA)


def pairs(ids: dict[str, list[Path]]) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    same = [pair for ps in ids.values() for pair in itertools.combinations(ps, 2)]
    flat = [(name, p) for name, ps in ids.items() for p in ps]
    diff = [(a, b) for (na, a), (nb, b) in itertools.combinations(flat, 2) if na != nb]
    return same, diff


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def sfapi_server(extra_args: Sequence[str] = (), config: Path | None = None) -> Iterator[str]:
    """Start the real sfapi service as a child process; yields its base URL. ``config``: the YAML
    config to start it with (default: config/sfapi.yaml)."""
    port = free_port()
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "sfapi.cli", "--config", str(config or REPO / "config" / "sfapi.yaml"),
           "--port", str(port), "--log-level", "WARNING", *extra_args]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"sfapi exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("sfapi did not start in 120 s") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)
