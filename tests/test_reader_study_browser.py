"""End-to-end in headless Debian Chromium: sign in, answer cases, reload, resume."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(
        "needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
        allow_module_level=True,
    )
pytest.importorskip("synthscan.render", reason="synthscan.render (display_image) is not written yet")
webdriver = pytest.importorskip("selenium.webdriver")

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from synthscan.dataset import Dataset  # noqa: E402
from synthscan.evaluation.reader_study.create import create_study  # noqa: E402
from synthscan.evaluation.reader_study.server import create_app  # noqa: E402
from synthscan.evaluation.reader_study.store import AnswerStore  # noqa: E402


def make_dataset(root: Path, source: str, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    dataset = Dataset.create(root, matrix=(64, 16))
    with dataset.writer() as writer:
        for i, (label, grade) in enumerate([("normal", 0), ("metastasis", 0), ("amyloidosis", 2)] * 2):
            writer.add(
                rng.poisson(6.0, (2, 64, 16)).astype(np.uint16),
                study_id=f"{source}{i}",
                patient_id=f"{source}p{i}",
                label=label,
                perugini_grade=grade,
                source=source,
            )
    return root


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="rs-chromium-")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait_for_case(browser, number: int) -> None:
    """Wait until the page shows case ``number`` (navigation and reader.js run asynchronously)."""
    WebDriverWait(browser, 15).until(
        expected_conditions.text_to_be_present_in_element((By.ID, "progress"), f"Case {number} of 6")
    )


def test_sign_in_answer_reload_resume(tmp_path, browser):
    created = create_study(
        make_dataset(tmp_path / "real", "real", 1),
        make_dataset(tmp_path / "syn", "synthetic", 2),
        tmp_path / "study",
        n_cases=6,
        n_readers=1,
        progress=False,
    )
    server = make_server("127.0.0.1", 0, create_app(created.root), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/"
    try:
        browser.get(url)
        browser.find_element(By.ID, "token").send_keys(created.reader_tokens["reader01"])
        browser.find_element(By.ID, "signin").click()
        wait_for_case(browser, 1)
        # the views are turned into window/level canvases by reader.js once their images load
        WebDriverWait(browser, 15).until(
            lambda b: len(b.find_elements(By.CSS_SELECTOR, ".viewport canvas")) == 2
        )
        for number in (1, 2):
            wait_for_case(browser, number)
            browser.find_element(By.CSS_SELECTOR, "input[name=call][value=synthetic]").click()
            browser.find_element(By.CSS_SELECTOR, "input[name=confidence][value='4']").click()
            browser.find_element(By.CSS_SELECTOR, "input[name=diagnosis][value=metastasis]").click()
            old = browser.find_element(By.ID, "progress")
            browser.find_element(By.ID, "submit").click()
            WebDriverWait(browser, 15).until(expected_conditions.staleness_of(old))
        browser.refresh()
        wait_for_case(browser, 3)
        browser.delete_all_cookies()
        browser.get(url)
        browser.find_element(By.ID, "token").send_keys(created.reader_tokens["reader01"])
        browser.find_element(By.ID, "signin").click()
        wait_for_case(browser, 3)
    finally:
        server.shutdown()
    stored = AnswerStore(created.root / "answers.sqlite").all_answers()
    assert [(a.call, a.confidence, a.diagnosis) for a in stored] == [("synthetic", 4, "metastasis")] * 2
