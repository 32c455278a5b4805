"""The product stands alone: nothing in the tree refers to the developers' folder beside the checkout
(a user's clone has none), even though CI's clone has one next to it."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# written in two parts so this file does not match itself
_DEV = "sha" + "red"
FORBIDDEN = re.compile(rf"\.\./{_DEV}\b|\b{_DEV}/(data|research|reference|DESIGN)|{_DEV}_data_dir")


def _tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    return [REPO / line for line in out.splitlines() if line]


def test_no_reference_to_the_development_folder() -> None:
    hits = []
    for path in _tracked_files():
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary files
        for n, line in enumerate(text.splitlines(), 1):
            if FORBIDDEN.search(line):
                hits.append(f"{path.relative_to(REPO)}:{n}: {line.strip()[:120]}")
    assert not hits, "\n".join(hits)
