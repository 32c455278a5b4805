"""Schemathesis against the real video worker's job API, from its own OpenAPI document, with a
bounded number of examples: no 5xx, every answer as documented (issue 14). Nothing leaves the
machine: the source policy admits loopback hosts only, local files only under an empty temp
folder, and names resolve through a stub resolver that knows none."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.facerouter.fuzz import examples, run_schemathesis, summary
from tests.video_worker.conftest import worker_config
from video_worker.app import Worker


async def no_names(host: str) -> list[str]:
    raise OSError(f"the fuzz resolver knows no names ({host})")


@pytest.mark.slow
async def test_fuzz_job_api(detector, router, tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    cfg = worker_config(tmp_path, router.url, source={
        "allowed_file_roots": [str(files)], "open_timeout_s": 1, "read_timeout_s": 1,
        "stream_hosts": {"allow": ["loopback"]}, "router_hosts": {"allow": ["loopback"]}})
    worker = Worker(cfg, detector=detector, resolver=no_names)
    await worker.start(port=0)
    try:
        result = await run_schemathesis(f"http://127.0.0.1:{worker.port}/openapi.json",
                                        tmp_path / "report", max_examples=examples(10))
    finally:
        await worker.shutdown()
    print(summary(result))
    assert result["returncode"] == 0, summary(result)
