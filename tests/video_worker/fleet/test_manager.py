"""One worker on its SQLite job store, in process: the job view's fleet fields, GET /workers, the
YAML seeding rule across restarts, and what the worker does while its store is unreachable (jobs
stop when the lease runs out, the API answers 503 STORE_UNAVAILABLE, all resumes when it answers)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.video_worker.conftest import api, wait_for, worker_config
from video_worker.errors import JobNotFound


def loop_job(clip: Path, job_id: str = "cam1", **settings: Any) -> dict[str, Any]:
    return {"id": job_id, "stream_url": str(clip), "settings": {"play_speed": 1, **settings}}


async def test_views_workers_and_the_yaml_rule(start_worker, tmp_path, router, short_clip) -> None:
    cfg = worker_config(tmp_path, router.url, [loop_job(short_clip)])
    worker = await start_worker(cfg)
    status, job = await api(worker, "GET", "/job/cam1")
    assert status == 200 and job["worker_id"] == "video-worker-1" and job["from_config"] is True
    assert job["epoch"] == 1
    status, workers = await api(worker, "GET", "/workers")
    assert status == 200 and [(w["id"], w["load"], w["alive"]) for w in workers] == [("video-worker-1", 1, True)]
    # an API edit of a YAML job wins while the YAML stays the same
    status, job = await api(worker, "POST", "/job/cam1", json={"stream_url": str(short_clip),
                                                              "labels": {"edited": "yes"}})
    assert status == 200 and job["from_config"] is False and job["labels"] == {"edited": "yes"}
    await worker.shutdown()
    worker = await start_worker(cfg)
    status, job = await api(worker, "GET", "/job/cam1")
    assert job["labels"] == {"edited": "yes"} and job["epoch"] == 2  # claimed again after the restart
    # deleted over the API: stays deleted while the YAML is unchanged
    assert (await api(worker, "DELETE", "/job/cam1"))[0] == 204
    await worker.shutdown()
    worker = await start_worker(cfg)
    assert (await api(worker, "GET", "/jobs"))[1] == []
    await worker.shutdown()
    # the YAML definition changed: it wins again
    worker = await start_worker(worker_config(tmp_path, router.url, [loop_job(short_clip, detect_fps=2)]))
    status, job = await api(worker, "GET", "/job/cam1")
    assert status == 200 and job["settings"]["detect_fps"] == 2 and job["from_config"] is True


async def test_store_unreachable_jobs_stop_at_the_lease_then_resume(start_worker, tmp_path, router,
                                                                     short_clip, monkeypatch) -> None:
    cfg = worker_config(tmp_path, router.url, [loop_job(short_clip)], fleet={"lease_s": 1.0})
    worker = await start_worker(cfg)
    manager = worker.manager
    cam = manager.get("cam1")
    await wait_for(lambda: cam.stats.frames_decoded > 0)

    async def down(*args: Any, **kw: Any) -> Any:
        raise ConnectionRefusedError("the test cut the job store off")

    for name in ("heartbeat", "claim", "get", "list"):
        monkeypatch.setattr(manager.store, name, down)
    # stopped when the lease ran out
    await wait_for(lambda: "cam1" not in manager.jobs and cam.status == "stopped", timeout=30)
    status, body = await api(worker, "GET", "/job/cam1")
    assert status == 503 and body["code"] == "STORE_UNAVAILABLE"
    status, health = await api(worker, "GET", "/healthz")
    assert status == 200 and health["store"] == "unreachable" and health["jobs"] == 0
    monkeypatch.undo()
    await wait_for(lambda: "cam1" in manager.jobs, timeout=30)  # claimed again: a new epoch
    status, job = await api(worker, "GET", "/job/cam1")
    assert status == 200 and job["epoch"] == 2 and job["worker_id"] == "video-worker-1"
    try:
        manager.get("nope")
    except JobNotFound:
        pass
    else:
        raise AssertionError("JobNotFound expected")


async def test_a_single_pass_job_finishes_once(start_worker, tmp_path, router, short_clip) -> None:
    cfg = worker_config(tmp_path, router.url)
    worker = await start_worker(cfg)
    status, _ = await api(worker, "POST", "/job/once", json={"stream_url": str(short_clip), "single_pass": True})
    assert status == 201
    cam = worker.manager.get("once")
    await wait_for(lambda: cam.finished.is_set(), timeout=60)
    await worker.shutdown()  # at once: the end is recorded before the lease is given back
    posts = len(router.posts)
    worker = await start_worker(cfg)
    status, job = await api(worker, "GET", "/job/once")
    assert status == 200 and job["status"] == "finished" and job["epoch"] == 1
    assert "once" not in worker.manager.jobs and len(router.posts) == posts
    status, job = await api(worker, "POST", "/job/once/restart")  # asked again: it runs again
    assert status == 200 and job["epoch"] == 2
    await wait_for(lambda: worker.manager.get("once").finished.is_set(), timeout=60)
