"""End-to-end in headless Debian Chromium: the diagnostic viewer, keyboard answers, sign in, resume."""

from __future__ import annotations

import base64
import json
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
webdriver = pytest.importorskip("selenium.webdriver")

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

from synthscan.dataset import Dataset  # noqa: E402
from synthscan.evaluation.reader_study.create import create_study, load_key  # noqa: E402
from synthscan.evaluation.reader_study.server import make_reading_server  # noqa: E402
from synthscan.evaluation.reader_study.store import AnswerStore  # noqa: E402

MATRIX = (1024, 256)


def make_dataset(root: Path, source: str, seed: int, matrix: tuple[int, int] = MATRIX) -> Path:
    """Two studies of uniform 0–255 counts (every grey level present, so 'Full' windows 0–255)."""
    rng = np.random.default_rng(seed)
    dataset = Dataset.create(root, matrix=matrix)
    with dataset.writer() as writer:
        for i, label in enumerate(["normal", "metastasis"] * (1 if matrix == MATRIX else 3)):
            counts = rng.integers(0, 256, (2, *matrix)).astype(np.uint16)
            counts[:, 0, 0] = 255
            writer.add(
                counts,
                study_id=f"{source}{i}",
                patient_id=f"{source}p{i}",
                label=label,
                perugini_grade=0,
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
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def screen(browser, width: int, height: int) -> None:
    """Emulate a screen of exactly ``width`` x ``height`` CSS pixels at one device pixel each."""
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


@pytest.fixture
def served(tmp_path):
    """A 4-case study of 1024x256 views on a live server: (url, created study)."""
    created = create_study(
        make_dataset(tmp_path / "real", "real", 1),
        make_dataset(tmp_path / "syn", "synthetic", 2),
        tmp_path / "study",
        n_cases=4,
        n_readers=1,
        allow_tells=True,
        progress=False,
    )
    server = make_reading_server(created.root, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/", created
    server.shutdown()
    server.server_close()


def sign_in(browser, url: str, token: str) -> None:
    browser.get(url)
    browser.find_element(By.ID, "token").send_keys(token + Keys.ENTER)  # keyboard only


def wait_ready(browser, number: int, total: int) -> None:
    """Wait for case ``number``'s page and for reader.js to have drawn its counts."""
    WebDriverWait(browser, 15).until(
        expected_conditions.text_to_be_present_in_element((By.ID, "progress"), f"Case {number} of {total}")
    )
    WebDriverWait(browser, 15).until(
        lambda b: b.find_element(By.ID, "reader").get_attribute("data-ready") == "true"
    )


def settle(browser) -> None:
    """Let reader.js's pending animation frame draw."""
    browser.execute_async_script(
        "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(done));"
    )


def canvas_greys(browser) -> list[np.ndarray]:
    """The red channel of every view canvas, read back from the browser (rows x columns each)."""
    encoded = browser.execute_script(
        """
        return Array.from(document.querySelectorAll('canvas.scan')).map(function (c) {
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          const bytes = new Uint8Array(d.length / 4);
          for (let i = 0; i < bytes.length; i++) bytes[i] = d[4 * i];
          let s = '';
          for (let i = 0; i < bytes.length; i += 8192) {
            s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
          }
          return [c.width, c.height, btoa(s)];
        });"""
    )
    return [np.frombuffer(base64.b64decode(b), np.uint8).reshape(h, w) for w, h, b in encoded]


def layout(browser) -> dict:
    return browser.execute_script(
        """
        const rect = (e) => {
          const r = e.getBoundingClientRect();
          return [r.left, r.top, r.right, r.bottom];
        };
        const scans = Array.from(document.querySelectorAll('canvas.scan'));
        return {
          views: scans.map(rect),
          transforms: scans.map((c) => c.style.transform),
          nearest: scans.map((c) => c.classList.contains('nearest')),
          submit: document.getElementById('submit') ? rect(document.getElementById('submit')) : null,
          width: innerWidth, height: innerHeight,
          scrollHeight: document.scrollingElement.scrollHeight,
          scrollWidth: document.scrollingElement.scrollWidth,
          readout: document.getElementById('wl').textContent,
        };"""
    )


def current_counts(browser, created) -> np.ndarray:
    """The counts of the case on screen, from the answer key (the test knows; the page does not)."""
    case = browser.find_element(By.CSS_SELECTOR, "input[name=case_id]").get_attribute("value")
    entry = load_key(created.root)["cases"][case]
    return Dataset.open(entry["dataset"]).read(entry["study_id"]).counts


def test_every_source_pixel_reaches_the_canvas_at_fit_to_height(browser, served):
    """1920x1080: both views at full height with >= 1 screen pixel per scan pixel, every count on the canvas
    exactly; then zoom (wheel, keys), linked pan and drag window/level act on both views."""
    url, created = served
    screen(browser, 1920, 1080)
    sign_in(browser, url, created.reader_tokens["reader01"])
    wait_ready(browser, 1, 4)
    page = layout(browser)
    assert page["scrollHeight"] <= page["height"] and page["scrollWidth"] <= page["width"]  # no scrolling
    for left, top, right, bottom in page["views"]:
        assert bottom - top >= MATRIX[0] and right - left >= MATRIX[1]  # >= 1 screen pixel per scan pixel
        assert top >= -0.5 and bottom <= page["height"] + 0.5  # full height on screen
    assert page["submit"][3] <= page["height"]  # the questions sit beside the views, no scrolling

    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("i")  # not inverted: grey = windowed counts
    browser.find_element(By.CSS_SELECTOR, "[data-preset=full]").click()  # window 0 .. hottest pixel (255)
    settle(browser)
    assert "W 255.0  L 127.5" in layout(browser)["readout"]
    counts = current_counts(browser, created)
    greys = canvas_greys(browser)
    for view, grey in enumerate(greys):
        np.testing.assert_array_equal(grey, counts[view])  # every source pixel, losslessly

    # wheel zoom on the anterior view zooms both views alike (linked); from 2x the pixels are drawn nearest
    anterior = browser.find_element(By.ID, "view-anterior")
    for _ in range(4):
        ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(anterior), 0, -120).perform()
    settle(browser)
    zoomed = layout(browser)
    scales = [t.split("scale(")[1] for t in zoomed["transforms"]]
    assert scales[0] == scales[1] and float(scales[0].rstrip(")")) >= 2 and all(zoomed["nearest"])
    # panning the anterior view moves the posterior view the mirrored way (same body point)
    before = [t.split(")")[0] for t in zoomed["transforms"]]
    ActionChains(browser).key_down(Keys.SHIFT).click_and_hold(anterior).move_by_offset(
        40, 0
    ).release().key_up(Keys.SHIFT).perform()
    after = [t.split(")")[0] for t in layout(browser)["transforms"]]
    shift = [
        float(a.split("(")[1].split("px")[0]) - float(b.split("(")[1].split("px")[0])
        for a, b in zip(after, before, strict=True)
    ]
    assert shift[0] == pytest.approx(40, abs=1) and shift[1] == pytest.approx(-40, abs=1)
    # dragging left-right widens the window; the numbers are shown
    ActionChains(browser).click_and_hold(anterior).move_by_offset(100, 0).release().perform()
    settle(browser)
    assert "W 255.0" not in layout(browser)["readout"] and "manual" in layout(browser)["readout"]
    body.send_keys("0")  # back to fit
    settle(browser)
    assert layout(browser)["views"] == page["views"]


def test_keyboard_only_completion_at_1366x768(browser, served):
    """Sign in and answer two cases with the keyboard alone, on a small laptop screen, without scrolling."""
    url, created = served
    screen(browser, 1366, 768)
    sign_in(browser, url, created.reader_tokens["reader01"])
    wait_ready(browser, 1, 4)
    page = layout(browser)
    assert page["scrollHeight"] <= page["height"] and page["submit"][3] <= page["height"]
    for _, top, _, bottom in page["views"]:
        assert top >= -0.5 and bottom <= page["height"] + 0.5  # whole views, zoomed out smoothly
    assert not any(page["nearest"])
    body = browser.find_element(By.TAG_NAME, "body")
    for key in ("s", "4", "m", "f", Keys.ENTER):
        body.send_keys(key)
    wait_ready(browser, 2, 4)
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("r")
    body.send_keys("2")
    ActionChains(browser).key_down(Keys.SHIFT).send_keys("3").key_up(
        Keys.SHIFT
    ).perform()  # amyloidosis, grade 3
    body.send_keys(Keys.ENTER)
    wait_ready(browser, 3, 4)
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("b")  # back to the previous case: read-only, with the answer given
    WebDriverWait(browser, 15).until(expected_conditions.presence_of_element_located((By.ID, "review")))
    assert "real" in browser.find_element(By.ID, "review").text
    order = json.loads((created.root / "study.json").read_text())["readers"][0]["order"]
    stored = sorted(
        AnswerStore(created.root / "answers.sqlite").all_answers(), key=lambda a: order.index(a.case_id)
    )
    assert [(a.call, a.confidence, a.diagnosis, a.grade, a.flagged) for a in stored] == [
        ("synthetic", 4, "metastasis", None, True),
        ("real", 2, "amyloidosis", 3, False),
    ]
    assert all(a.seconds is not None and a.seconds >= 0 for a in stored)


def test_sign_in_answer_reload_resume(tmp_path, browser):
    created = create_study(
        make_dataset(tmp_path / "real", "real", 1, (64, 16)),
        make_dataset(tmp_path / "syn", "synthetic", 2, (64, 16)),
        tmp_path / "study",
        n_cases=6,
        n_readers=1,
        allow_tells=True,
        progress=False,
    )
    server = make_reading_server(created.root, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/"
    try:
        browser.get(url)
        browser.find_element(By.ID, "token").send_keys(created.reader_tokens["reader01"])
        browser.find_element(By.ID, "signin").click()
        for number in (1, 2):
            wait_ready(browser, number, 6)
            browser.find_element(By.CSS_SELECTOR, "input[name=call][value=synthetic]").click()
            browser.find_element(By.CSS_SELECTOR, "input[name=confidence][value='4']").click()
            browser.find_element(By.CSS_SELECTOR, "input[name=diagnosis][value=metastasis]").click()
            old = browser.find_element(By.ID, "progress")
            browser.find_element(By.ID, "submit").click()
            WebDriverWait(browser, 15).until(expected_conditions.staleness_of(old))
        browser.refresh()
        wait_ready(browser, 3, 6)
        browser.delete_all_cookies()
        browser.get(url)
        browser.find_element(By.ID, "token").send_keys(created.reader_tokens["reader01"])
        browser.find_element(By.ID, "signin").click()
        wait_ready(browser, 3, 6)
    finally:
        server.shutdown()
        server.server_close()
    stored = AnswerStore(created.root / "answers.sqlite").all_answers()
    assert [(a.call, a.confidence, a.diagnosis) for a in stored] == [("synthetic", 4, "metastasis")] * 2
