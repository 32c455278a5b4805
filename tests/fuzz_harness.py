"""Run schemathesis (the pinned CLI, in a subprocess) against a service already serving on loopback.

Reusable by every service's fuzz test::

    report = await fuzz(base_url, spec, tmp_path, max_examples=20)
    assert report.failures == [], report.summary()

The service runs in the test's own event loop (the CLI is a separate process, so the loop keeps
serving while it waits). ``spec`` is the service's OpenAPI document as a dict; it is written to a
file and fuzzed against ``base_url`` with the checks below (not ``positive_data_acceptance``:
random bytes are rarely a face). The run is bounded by ``max_examples`` per operation and by
``timeout_s``; the JSON report says what failed, with a curl line to reproduce each failure.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

CHECKS: tuple[str, ...] = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
                           "response_schema_conformance", "response_headers_conformance")
PHASES: tuple[str, ...] = ("examples", "coverage", "fuzzing")


@dataclass
class FuzzReport:
    """What one schemathesis run found."""

    returncode: int
    output: str
    report: dict[str, Any]
    failures: list[str] = field(default_factory=list)
    cases: int = 0
    operations: int = 0

    def summary(self, limit: int = 20) -> str:
        lines = [f"schemathesis exit {self.returncode}: {self.cases} cases on {self.operations} operations, "
                 f"{len(self.failures)} failures"]
        lines += self.failures[:limit]
        if self.failures or self.returncode != 0:
            lines.append(self.output[-6000:])  # the CLI's own account, with a curl line per failure
        return "\n".join(lines)


def _collect(report: dict[str, Any]) -> tuple[list[str], int, int]:
    """Failures and errors (one line each), cases generated and operations tested, from the JSON report."""
    lines: list[str] = []
    for kind in ("failures", "errors"):
        for item in report.get(kind) or []:
            if isinstance(item, dict):
                where = ", ".join(item.get("operations") or []) or item.get("operation") or item.get("label") or ""
                if item.get("count"):
                    where += f" (x{item['count']})"
                what = item.get("title") or item.get("check") or item.get("message") or item.get("name") or ""
                how = item.get("curl") or item.get("reproduce") or item.get("code_sample") or ""
                text = f"{kind[:-1]}: {where} {what} {how}".strip()
                lines.append(text if (where or what) else f"{kind[:-1]}: {json.dumps(item)[:600]}")
            else:
                lines.append(f"{kind[:-1]}: {item}")
    cases = int((report.get("test_cases") or {}).get("generated", 0))
    operations = int((report.get("operations") or {}).get("tested", 0))
    return lines, cases, operations


async def fuzz(base_url: str, spec: dict[str, Any], workdir: Path, *, max_examples: int = 20, seed: int = 1,
               workers: int = 1, phases: Sequence[str] = PHASES, checks: Sequence[str] = CHECKS,
               timeout_s: float = 300.0, max_time_s: int | None = None,
               extra_args: Sequence[str] = ()) -> FuzzReport:
    """Fuzz the service at ``base_url`` described by ``spec``; never raises on findings."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path = workdir / "openapi.json"
    spec_path.write_text(json.dumps(spec))
    report_path = workdir / "report.json"
    args = [sys.executable, "-m", "schemathesis.cli", "run", str(spec_path), "--url", base_url,
            "--checks", ",".join(checks), "--phases", ",".join(phases), "--max-examples", str(max_examples),
            "--seed", str(seed), "--workers", str(workers), "--request-timeout", "30", "--max-redirects", "0",
            "--continue-on-failure", "--no-shrink", "--report", "json", "--report-json-path", str(report_path),
            "--suppress-health-check", "all", "--warnings", "off", *extra_args]
    if max_time_s is not None:
        args += ["--max-time", str(max_time_s)]
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "HYPOTHESIS_STORAGE_DIRECTORY": str(workdir / ".hyp")}
    proc = await asyncio.create_subprocess_exec(*args, cwd=workdir, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        return FuzzReport(-9, out.decode(errors="replace"), {}, [f"schemathesis ran past {timeout_s:g} s"])
    text = out.decode(errors="replace")
    report: dict[str, Any] = {}
    if report_path.exists():
        report = json.loads(report_path.read_text())
    failures, cases, operations = _collect(report)
    if proc.returncode not in (0,) and not failures:
        failures.append(f"schemathesis exited {proc.returncode} (see output)")
    return FuzzReport(proc.returncode or 0, text, report, failures, cases, operations)
