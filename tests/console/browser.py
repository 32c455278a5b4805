"""A headless Chromium from Debian's packages, driven by selenium through Debian's chromium-driver.

:func:`chromium` skips the test (naming ``scripts/test-services install``) when either program or
selenium is missing. The browser starts with a fresh profile and without any of its own network
traffic (no sync, no component updates, no QUIC); tests point it at loopback only.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

CHROMIUM = os.environ.get("CONSOLE_TEST_CHROMIUM", "/usr/bin/chromium")
DRIVER = os.environ.get("CONSOLE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "console-screenshots"


def chromium() -> Iterator[Any]:
    """A selenium WebDriver on a fresh headless Chromium (quit afterwards)."""
    missing = [p for p in (CHROMIUM, DRIVER) if not (Path(p).exists() or shutil.which(p))]
    if missing:
        pytest.skip(f"{' and '.join(missing)} missing: run `scripts/test-services install` "
                    "(Debian's chromium and chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed: pip install the test extra (pip install -e .[test])")
    os.environ.setdefault("SE_OFFLINE", "true")        # selenium-manager never downloads anything
    profile = tempfile.mkdtemp(prefix="console-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver: Any, name: str) -> Path:
    """Save the page as ``var/console-screenshots/<name>.png`` (for a person to look at)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
