"""The console in a real browser against the real stack.

sfapi, facerouter (persons + archive plugins, tokens required) and a video worker run as the demo
runs them, on loopback ports. Headless Chromium then: logs in with a write token; enrols a person by
uploading a photo (and sees the errors for a photo without a face, with two faces, and of someone
enrolled already); adds the demo camera on the Cameras page (after a refused bad setting) and sees
its entries arrive live over the event stream; opens an entry's frame; finds the person by photo
search; shows the stats; logs in again with a read token and is refused a change. A screenshot of
each page is written under ``var/console-screenshots/``.
"""
from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import yaml
from PIL import Image

from facestack.stack.demo import DemoPeople, DemoPlan, free_ports, make_video, write_configs
from facestack.stack.supervisor import Supervisor
from tests.console.browser import chromium, screenshot

READ = "console-browser-read-01"
WRITE = "console-browser-write-01"
CAMERA = "demo-cam"
EVIL = "<img src=x onerror=alert(1)>"  # a source name that must show as text


def _people(data_dir: Path) -> DemoPeople:
    f = data_dir / "faces"
    return DemoPeople(enroll={"obama": f / "obama/img1.jpg"},
                      video={"obama": f / "obama/img2.jpg", "biden": f / "biden/img1.jpg"})


def _no_face(path: Path) -> Path:
    rng = np.random.default_rng(7)
    Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(path, "JPEG")
    return path


def _two_faces(a: Path, b: Path, path: Path) -> Path:
    ia, ib = (Image.open(p).convert("RGB") for p in (a, b))
    h = 400
    ia, ib = (im.resize((int(im.width * h / im.height), h)) for im in (ia, ib))
    out = Image.new("RGB", (ia.width + ib.width, h))
    out.paste(ia, (0, 0))
    out.paste(ib, (ia.width, 0))
    out.save(path, "JPEG")
    return path


def _configure(plan: DemoPlan) -> None:
    """The demo's configs, with tokens required and the console pointed at the worker."""
    d = plan.dir
    router = yaml.safe_load((d / "facerouter.yaml").read_text())
    router["auth"] = {"required": "always", "tokens": [
        {"token": WRITE, "role": "write", "name": "operator"},
        {"token": READ, "role": "read", "name": "watcher"}]}
    router["console"] = {"worker_url": plan.url("video-worker")}
    (d / "facerouter.yaml").write_text(yaml.safe_dump(router))
    worker = yaml.safe_load((d / "video_worker.yaml").read_text())
    worker["router_token"] = WRITE
    (d / "video_worker.yaml").write_text(yaml.safe_dump(worker))


async def _sources(plan: DemoPlan) -> None:
    headers = {"Authorization": f"Bearer {WRITE}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for body in ({"name": CAMERA, "identify_facesize_threshold": 1600,
                      "manual_create_facesize_threshold": 4000}, {"name": EVIL}):
            async with http.post(plan.url("facerouter") + "/v2/sources", json=body) as resp:
                assert resp.status == 201, await resp.text()


def _browse(base: str, plan: DemoPlan, people: DemoPeople, files: dict[str, Path],
            data_dir: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait

    for driver in chromium():
        def wait(seconds: float = 30) -> WebDriverWait:
            return WebDriverWait(driver, seconds, poll_frequency=0.2)

        def css(sel: str) -> Any:
            return driver.find_element(By.CSS_SELECTOR, sel)

        def text_of(sel: str) -> str:
            return str(css(sel).text)

        def login(token: str) -> None:
            driver.get(base + "/ui/")
            try:
                wait().until(EC.visibility_of_element_located((By.ID, "login-token")))
            except Exception:
                screenshot(driver, "debug-login")
                raise
            css("#login-token").send_keys(token)
            css("#login-form button[type=submit]").click()
            wait().until(EC.visibility_of_element_located((By.ID, "top")))

        def go(page: str) -> None:
            css(f"nav a[data-page={page}]").click()
            wait().until(EC.visibility_of_element_located((By.ID, f"page-{page}")))

        def drop(photo: Path, zone: str) -> None:
            """Drop a file on ``zone`` as a person dragging it from their desktop would."""
            driver.execute_script(
                "const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));"
                "const dt = new DataTransfer();"
                "dt.items.add(new File([bytes], arguments[1], {type: 'image/jpeg'}));"
                "const zone = document.querySelector(arguments[2]);"
                "for (const t of ['dragover', 'drop']) zone.dispatchEvent("
                "  new DragEvent(t, {dataTransfer: dt, bubbles: true, cancelable: true}));",
                base64.b64encode(photo.read_bytes()).decode(), photo.name, zone)

        def enrol(photo: Path, source: str) -> None:
            css("#enrol-file").send_keys(str(photo))
            Select(css("#enrol-source")).select_by_visible_text(source)
            css("#enrol-submit").click()

        # --- log in with a write token; the token never reaches a URL ------------------------
        driver.get(base + "/ui/")
        wait().until(EC.visibility_of_element_located((By.ID, "login-token")))
        screenshot(driver, "0-login")
        login(WRITE)
        assert WRITE not in driver.current_url
        assert "operator (admin)" in text_of("#who")
        cookies = {c["name"]: c for c in driver.get_cookies()}
        assert cookies["facerouter_session"]["httpOnly"] and cookies["facerouter_session"]["sameSite"] == "Strict"
        screenshot(driver, "1-live-empty")

        # --- persons: errors that say what is wrong, then an enrolment --------------------------
        go("persons")
        enrol(files["no_face"], CAMERA)
        wait().until(lambda d: "NO_FACE" in text_of("#enrol-error"))
        enrol(files["two_faces"], CAMERA)
        wait().until(lambda d: "SEVERAL_FACES" in text_of("#enrol-error"))
        enrol(people.enroll["obama"], EVIL)
        wait().until(lambda d: "Enrolled person" in text_of("#enrol-ok"))
        pid = text_of("#enrol-ok").split()[-1]
        card = wait().until(EC.visibility_of_element_located((By.CSS_SELECTOR, f".person[data-pid='{pid}']")))
        assert f"source: {EVIL}" in card.text                    # the name shows as text ...
        assert not driver.find_elements(By.CSS_SELECTOR, "img[src='x']")   # ... never as markup
        enrol(data_dir / "faces/obama/img3.jpg", CAMERA)
        wait().until(lambda d: "matches person " + pid in text_of("#enrol-error"))
        screenshot(driver, "2-persons")

        # --- cameras: a bad setting is refused by the job API's validation; then the demo camera
        live = driver.current_window_handle
        go("live")
        driver.switch_to.new_window("tab")
        driver.get(base + "/ui/#cameras")
        wait().until(EC.visibility_of_element_located((By.ID, "page-cameras")))
        form = css("#camera-form")
        form.find_element(By.NAME, "id").send_keys(CAMERA)
        form.find_element(By.NAME, "stream_url").send_keys(str(plan.video))
        Select(form.find_element(By.NAME, "source")).select_by_visible_text(CAMERA)
        speed = form.find_element(By.NAME, "play_speed")
        speed.clear()
        speed.send_keys("0")
        form.find_element(By.NAME, "single_pass").click()
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait().until(lambda d: "play_speed" in text_of("#camera-error"))
        speed.clear()
        speed.send_keys("-1")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait().until(EC.presence_of_element_located((By.CSS_SELECTOR, f"tr[data-job='{CAMERA}']")))

        # --- live: the camera's entries arrive over the event stream, without a reload ----------
        driver.switch_to.window(live)
        fresh = wait(180).until(EC.visibility_of_element_located(
            (By.CSS_SELECTOR, f".entry.fresh[data-result='exact'] a.pid[title='{pid}']")))
        assert text_of("#live-state") == "live"
        entry = fresh.find_element(By.XPATH, "./ancestor::article")
        assert "recognised" in entry.text and CAMERA in entry.text
        wait().until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('.entry img')].every(i => i.complete && i.naturalWidth > 0)"))
        screenshot(driver, "3-live")
        Select(css("#live-filters select[name=result]")).select_by_value("nm")
        css("#live-filters button[type=submit]").click()
        wait().until(lambda d: d.execute_script(
            "return [...new Set([...document.querySelectorAll('#live-list .entry')].map(e => e.dataset.result))]") == ["nm"])
        Select(css("#live-filters select[name=result]")).select_by_value("")
        css("#live-filters button[type=submit]").click()
        entry = wait().until(EC.visibility_of_element_located(
            (By.CSS_SELECTOR, f"#live-list .entry[data-result='exact']")))
        entry.find_element(By.CSS_SELECTOR, "img").click()
        wait().until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#modal canvas.frame")))
        wait().until(lambda d: d.execute_script("return document.querySelector('#modal canvas').width > 0"))
        wait().until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#modal img.enrolled")))
        entry_id = entry.get_attribute("data-id")
        edge = driver.execute_async_script(  # the face box is drawn on the frame, in yellow
            "const done = arguments[1];"
            "fetch('/v2/entries/' + arguments[0]).then(r => r.json()).then(e => {"
            "  const b = e.bbox[0], c = document.querySelector('#modal canvas');"
            "  done(Array.from(c.getContext('2d').getImageData(b[0], Math.round((b[1] + b[3]) / 2), 1, 1).data));"
            "});", entry_id)
        assert edge[0] > 200 and edge[1] > 150 and edge[2] < 80, edge
        screenshot(driver, "4-entry-frame")
        css("#modal-close").click()

        # --- search by photo: the person's camera entry, ranked by similarity ------------------
        go("search")
        drop(data_dir / "faces/obama/img3.jpg", "#search-drop")      # dragged in, not chosen
        wait().until(lambda d: "img3.jpg" in text_of("#search-drop"))
        css("#search-form input[name=cameras]").send_keys(CAMERA)
        css("#search-submit").click()
        hit = wait(60).until(EC.visibility_of_element_located(
            (By.CSS_SELECTOR, f"#search-results .entry a.pid[title='{pid}']")))
        assert "similarity" in hit.find_element(By.XPATH, "./ancestor::article").text
        screenshot(driver, "5-search")

        # --- cameras, stats and the person's page render ---------------------------------------
        go("cameras")
        wait().until(EC.presence_of_element_located((By.CSS_SELECTOR, f"tr[data-job='{CAMERA}']")))
        screenshot(driver, "6-cameras")
        go("stats")
        wait().until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#stats-charts svg")) == 4)
        screenshot(driver, "7-stats")
        driver.get(base + "/ui/#person/" + pid)
        wait().until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#person-entries .entry")))
        screenshot(driver, "8-person")

        # --- re-init the person from another photo on their page ------------------------------
        css("#person-head input[type=file]").send_keys(str(data_dir / "faces/obama/img4.jpg"))
        wait().until(lambda d: "re-initialised" in text_of("#person-head .actions p"))

        # --- a read token sees but cannot change ------------------------------------------------
        css("#logout").click()
        wait().until(EC.visibility_of_element_located((By.ID, "login-token")))
        login(READ)
        assert "watcher (read)" in text_of("#who")
        go("persons")
        wait().until(EC.visibility_of_element_located((By.CSS_SELECTOR, f".person[data-pid='{pid}']")))
        enrol(data_dir / "faces/biden/img1.jpg", CAMERA)
        wait().until(lambda d: "read-only" in text_of("#enrol-error"))
        screenshot(driver, "9-read-only-refused")
        persons = driver.execute_script(
            "return fetch('/v2/persons').then(r => r.json()).then(b => b.count)")
        assert persons == 1

        # --- a write token deletes (after the browser's confirmation) ---------------------------
        css("#logout").click()
        wait().until(EC.visibility_of_element_located((By.ID, "login-token")))
        login(WRITE)
        go("persons")
        card = wait().until(EC.visibility_of_element_located((By.CSS_SELECTOR, f".person[data-pid='{pid}']")))
        card.find_element(By.CSS_SELECTOR, "button.danger").click()
        driver.switch_to.alert.accept()
        wait().until(lambda d: "nobody enrolled yet" in text_of("#persons-count"))


@pytest.mark.slow
async def test_console_in_a_browser(tmp_path: Path, models_dir: Path, data_dir: Path) -> None:
    pytest.importorskip("selenium", reason="selenium is not installed: pip install -e .[test]")
    plan = DemoPlan(tmp_path / "stack", ports=free_ports(), play_speed=-1, single_pass=True,
                    models_dir=models_dir)
    people = _people(data_dir)
    files = {"no_face": _no_face(tmp_path / "noise.jpg"),
             "two_faces": _two_faces(data_dir / "faces/obama/img1.jpg",
                                     data_dir / "faces/biden/img1.jpg", tmp_path / "two.jpg")}
    loop = asyncio.get_running_loop()
    stack = write_configs(plan)
    _configure(plan)
    sup = Supervisor(stack, plan.dir)
    runner = sup.start()
    try:
        video = loop.run_in_executor(None, make_video, people, plan.video, models_dir)
        await sup.wait_up(180)
        await video
        await _sources(plan)
        await loop.run_in_executor(None, _browse, plan.url("facerouter"), plan, people, files,
                                   data_dir)
    finally:
        sup.stop()
        await asyncio.wait_for(runner, 60)
    logs = [p for p in (plan.dir / "log").rglob("*") if p.is_file()]
    assert logs, "the services wrote no logs"
    for path in logs:
        text = path.read_text(errors="replace")
        assert WRITE not in text and READ not in text, f"a token in {path}"
