"""Regenerate this folder's screenshots of the reading page in headless Chromium.

    python docs/reader_study/screenshots.py        # about 1 min on 2 CPU cores

"Real" cases are studies of the physics simulator (centre_a), synthetic ones come from the shipped
generator; both are normal scans. Needs Debian's chromium and chromium-driver and selenium.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

from click.testing import CliRunner
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.wait import WebDriverWait

from synthscan.cli import main
from synthscan.evaluation.reader_study.create import create_study
from synthscan.evaluation.reader_study.server import make_reading_server

HERE = Path(__file__).resolve().parent


def run(*args: str) -> None:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if result.exit_code:
        raise SystemExit(result.output)


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def shoot(
    driver: webdriver.Chrome, url: str, token: str, width: int, height: int, name: str, zoom: bool
) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    driver.delete_all_cookies()
    driver.get(url)
    driver.find_element(By.ID, "token").send_keys(token + Keys.ENTER)
    WebDriverWait(driver, 30).until(
        lambda d: d.find_element(By.ID, "reader").get_attribute("data-ready") == "true"
    )
    body = driver.find_element(By.TAG_NAME, "body")
    for key in ("s", "3", "n"):
        body.send_keys(key)
    if zoom:
        anterior = driver.find_element(By.ID, "view-anterior")
        origin = ScrollOrigin.from_element(anterior, 0, -int(0.28 * anterior.size["height"]))
        for _ in range(5):
            ActionChains(driver).scroll_from_origin(origin, 0, -120).perform()
        body.send_keys("l")
        ActionChains(driver).move_to_element_with_offset(anterior, 10, -20).perform()
    driver.execute_async_script(
        "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(done));"
    )
    driver.save_screenshot(str(HERE / name))
    print("wrote", HERE / name)


def make_screenshots() -> None:
    work = Path(tempfile.mkdtemp(prefix="rs-shots-"))
    try:
        run("simulate", "-n", "12", "--out", str(work / "real"), "--site", "centre_a", "--seed", "3")
        run("sample", "--condition", "normal", "-n", "2", "--out", str(work / "synthetic"))
        created = create_study(
            work / "real", work / "synthetic", work / "study", n_cases=4, n_readers=1, allow_tells=True
        )
        print("blinding audit (4 cases, only a demonstration):", created.audit["auc"])
        server = make_reading_server(created.root, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}/"
        driver = browser()
        try:
            token = created.reader_tokens["reader01"]
            shoot(driver, url, token, 1920, 1080, "reading-1920x1080.png", zoom=False)
            shoot(driver, url, token, 1366, 768, "reading-1366x768.png", zoom=False)
            shoot(driver, url, token, 1920, 1080, "zoom-loupe-1920x1080.png", zoom=True)
        finally:
            driver.quit()
            server.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    make_screenshots()
