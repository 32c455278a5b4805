"""Running schemathesis against a service on loopback, for the fuzz tests (not a test module).

The service runs in the test's event loop; schemathesis runs as a child process (its own CLI) with
a bounded number of examples and a fixed seed, so a run is repeatable and its time bounded. Only
the checks below are run: random bytes are rarely a face, so accepting valid data is not asked.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["CHECKS", "run_schemathesis", "examples", "summary"]

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance")


async def run_schemathesis(schema_url: str, report_dir: Path, *, max_examples: int, seed: int | None = None,
                           phases: str = "examples,coverage,fuzzing", timeout: float = 600.0,
                           extra: list[str] | None = None) -> dict[str, Any]:
    """Run ``schemathesis run`` on ``schema_url``; returns ``{"returncode", "output", "report"}``
    (the NDJSON events are left in ``report_dir``)."""
    exe = Path(sys.executable).with_name("schemathesis")
    if seed is None:
        seed = int(os.environ.get("FACESTACK_FUZZ_SEED", "14"))
    report_dir.mkdir(parents=True, exist_ok=True)
    args = [str(exe), "run", schema_url, "--checks", ",".join(CHECKS),
            "--max-examples", str(max_examples), "--seed", str(seed), "--phases", phases,
            "--workers", "1", "--generation-database", "none", "--no-color",
            "--request-timeout", "30", "--suppress-health-check", "all",
            "--report", "junit", "--report-dir", str(report_dir), *(extra or [])]
    env = {**os.environ, "NO_COLOR": "1"}
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,  # cwd: its
                                                stderr=asyncio.subprocess.STDOUT, env=env,  # cache
                                                cwd=report_dir)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return {"returncode": proc.returncode, "output": out.decode("utf-8", "replace")}


def examples(default: int) -> int:
    """Examples per operation: ``default``, or ``$FACESTACK_FUZZ_EXAMPLES`` for a longer run
    (e.g. ``FACESTACK_FUZZ_EXAMPLES=200 pytest tests/facerouter/test_fuzz.py``; the seed is
    ``$FACESTACK_FUZZ_SEED``, 14 by default)."""
    return int(os.environ.get("FACESTACK_FUZZ_EXAMPLES", default))


def summary(result: dict[str, Any]) -> str:
    """The end of schemathesis's output (for an assertion message)."""
    return json.dumps(result["returncode"]) + "\n" + result["output"][-6000:]
