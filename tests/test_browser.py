"""Open the report in real headless Debian chromium: every section renders, every image loads, no console
error; a screenshot goes next to the report."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from forms.report import stage_report, write_report

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _browser_available() -> tuple[bool, str]:
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return True, ""
    if os.geteuid() == 0:
        # As root, `make test` installs them (scripts/system-deps.sh): their absence is a failure.
        return False, ""
    return False, (
        f"{CHROMIUM} / {CHROMEDRIVER} missing and not root: install the Debian packages "
        "'chromium chromium-driver' (scripts/system-deps.sh does so as root)"
    )


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    available, reason = _browser_available()
    if not available:
        if reason:
            pytest.skip(reason)
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} must be installed (run `make system-deps`)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from test_report import SECTION_IDS, make_summary

    report = stage_report(make_summary())
    files = write_report(report, tmp_path)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="forms-chromium-")
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,2000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager never runs, so nothing is downloaded.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.get(files.html.resolve().as_uri())
        assert driver.title == report.title
        ids = driver.execute_script("return Array.from(document.querySelectorAll('section')).map(s => s.id)")
        assert ids == SECTION_IDS
        for section_id in SECTION_IDS:
            height = driver.execute_script(
                "return document.getElementById(arguments[0]).getBoundingClientRect().height", section_id
            )
            assert height > 20, f"section {section_id} did not render"
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.id, i.complete, i.naturalWidth, i.naturalHeight])"
        )
        assert len(images) == len(report.figures())
        for image_id, complete, width, height in images:
            assert complete and width > 0 and height > 0, f"image {image_id} did not load"
        tables = driver.execute_script("return document.querySelectorAll('table.data').length")
        assert tables == len(report.tables())
        driver.save_screenshot(str(tmp_path / "report-screenshot.png"))
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert not errors, f"console errors: {errors}"
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    screenshot = tmp_path / "report-screenshot.png"
    assert screenshot.stat().st_size > 10_000
