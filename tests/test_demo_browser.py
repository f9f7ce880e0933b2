"""The web demo in a real browser: ``panosamic demo`` (the CLI, in a subprocess) serves a tiny test checkpoint on 127.0.0.1, headless
Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by Selenium) uploads the real panorama,
the overlay shown equals the library's own prediction, the 360° view loads, turns and toggles, and a
non-2:1 upload shows the library's message while the server keeps serving.

Screenshots go to ``$PANOSAMIC_DEMO_SCREENSHOTS`` (default: a pytest temp folder, printed).
Needs: ``apt-get install -y chromium chromium-driver`` and ``uv run --extra demo``; skipped otherwise.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.browser, pytest.mark.slow]

pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed: uv run --extra demo pytest")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (dev group) is not installed")

from conftest import FIXTURES, make_tiny_model
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

REAL = FIXTURES / "real" / "panocontext_unlabelled" / "pano_asmasuxybohhcj.png"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--window-size=1400,1900",
    "--use-angle=swiftshader",  # WebGL for the viewer without a GPU
    "--enable-unsafe-swiftshader",
)
START_TIMEOUT = 180  # s: the server imports torch and gradio and loads the checkpoint
RESULT_TIMEOUT = 120  # s: one prediction on a loaded CI machine

if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip(
        "needs Debian's Chromium and its driver: apt-get install -y chromium chromium-driver",
        allow_module_level=True,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_checkpoint")
    make_tiny_model(seed=3).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "demo.log"
    cmd = [sys.executable, "-m", "panosamic.cli", "demo", "--checkpoint", str(checkpoint), "--host", "127.0.0.1",
           "--port", str(port), "--device", "cpu", "--cache-dir", str(log.parent / "cache")]  # `panosamic demo ...`
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_until_serving(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the demo exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"the demo did not serve {url} within {START_TIMEOUT} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def driver():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def screens(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("PANOSAMIC_DEMO_SCREENSHOTS") or tmp_path_factory.mktemp("demo_screens"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"demo screenshots: {folder}")
    return folder


# ---------------------------------------------------------------------------- page actions
def segment(d, path: Path) -> None:
    """Upload ``path`` as the panorama and press Segment."""
    box = WebDriverWait(d, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, "#panorama input[type=file]"))
    box.send_keys(str(path))
    WebDriverWait(d, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#panorama img"))
    d.find_element(By.ID, "segment-button").click()


def shown_overlay(d, previous_src: str | None = None) -> str:
    """The src of the overlay image, once a (new) result is shown."""

    def src(d):
        imgs = d.find_elements(By.CSS_SELECTOR, "#overlay img")
        s = imgs[0].get_attribute("src") if imgs else None
        return s if s and s != previous_src else None

    return WebDriverWait(d, RESULT_TIMEOUT).until(src)


def fetch_image(url: str) -> np.ndarray:
    with urllib.request.urlopen(url, timeout=30) as r:
        return np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))


def viewer_state(d) -> dict:
    return d.execute_script("return {scene: panoViewer.getScene(), yaw: panoViewer.getYaw()};")


def drag_and_toggle_viewer(d, screens: Path) -> None:
    """Inside the viewer iframe: wait for the overlay scene, drag it, toggle to the panorama."""
    WebDriverWait(d, 60).until(lambda d: d.execute_script("return !!(window.panoViewer && panoViewer.isLoaded())"))
    before = viewer_state(d)
    assert before["scene"] == "overlay"
    d.save_screenshot(str(screens / "02_viewer_overlay.png"))
    ActionChains(d).move_to_element(d.find_element(By.ID, "panorama")).click_and_hold().move_by_offset(
        -250, 0
    ).release().perform()
    WebDriverWait(d, 10).until(lambda d: abs(viewer_state(d)["yaw"] - before["yaw"]) > 5)
    turned = viewer_state(d)
    d.find_element(By.ID, "toggle").click()
    WebDriverWait(d, 30).until(lambda d: d.execute_script("return panoViewer.isLoaded()"))
    after = viewer_state(d)
    assert after["scene"] == "panorama" and abs(after["yaw"] - turned["yaw"]) < 1  # the view is kept
    assert d.find_element(By.ID, "toggle").text == "Overlay: off"
    d.save_screenshot(str(screens / "03_viewer_panorama.png"))


def chart_fits_its_box(d, screens: Path) -> None:
    """The class chart (Vega) lies inside its block, and a screenshot of it (05_chart.png) to look at; that it
    draws no colour legend of its own (13 entries, cut off at this width) is tests/test_demo.py's check."""
    chart = d.find_element(By.ID, "fractions")
    d.execute_script("arguments[0].scrollIntoView();", chart)
    WebDriverWait(d, 30).until(lambda d: d.execute_script("return !!arguments[0].querySelector('canvas, svg')", chart))
    chart.screenshot(str(screens / "05_chart.png"))
    box, plot, scroll = d.execute_script(
        "const b = arguments[0].getBoundingClientRect(), v = arguments[0].querySelector('canvas, svg')"
        ".getBoundingClientRect(); const r = x => [x.left, x.top, x.right, x.bottom];"
        "return [r(b), r(v), arguments[0].querySelector('canvas, svg').parentElement.scrollWidth - "
        "arguments[0].querySelector('canvas, svg').parentElement.clientWidth];", chart)
    assert plot[0] >= box[0] - 1 and plot[1] >= box[1] - 1 and plot[2] <= box[2] + 1 and plot[3] <= box[3] + 1, \
        f"chart {plot} outside its block {box}"
    assert scroll <= 1, f"the chart overflows its block by {scroll} px"


# ---------------------------------------------------------------------------- tests
def test_overlay_shown_is_the_librarys_prediction_and_the_360_view_works(server, driver, screens, checkpoint):
    from panosamic.apps.demo.backend import DEFAULT_ALPHA
    from panosamic.inference import predict
    from panosamic.model import load_model

    driver.get(server)
    segment(driver, REAL)
    src = shown_overlay(driver)
    shown = fetch_image(src)
    expected = np.asarray(predict(load_model(checkpoint), REAL).overlay(DEFAULT_ALPHA))
    assert shown.shape == expected.shape == (512, 1024, 3)
    assert np.array_equal(shown, expected)
    body = driver.find_element(By.TAG_NAME, "body").text
    assert "Pixels per class" in body and "Legend" in body and "total" in body  # chart, legend, timings
    driver.save_screenshot(str(screens / "01_result.png"))
    chart_fits_its_box(driver, screens)

    frame = driver.find_element(By.ID, "panosamic-viewer")
    driver.execute_script("arguments[0].scrollIntoView();", frame)
    driver.switch_to.frame(frame)
    try:
        drag_and_toggle_viewer(driver, screens)
    finally:
        driver.switch_to.default_content()


def test_non_2to1_upload_shows_the_librarys_message_and_the_server_keeps_serving(server, driver, screens, tmp_path):
    bad = tmp_path / "four_by_three.png"
    Image.new("RGB", (400, 300), (120, 90, 60)).save(bad)
    driver.get(server)
    segment(driver, bad)
    message = "400x300 (WxH), which is not an equirectangular panorama"
    WebDriverWait(driver, RESULT_TIMEOUT).until(lambda d: message in d.find_element(By.TAG_NAME, "body").text)
    driver.save_screenshot(str(screens / "04_error_non_2to1.png"))
    # one message: the toast's title and one badge (on the overlay), not a red badge on every output
    leaves = driver.execute_script(
        "return [...document.querySelectorAll('body *')].filter(e => e.children.length === 0 && "
        "e.offsetParent !== null && e.textContent.trim() === 'Error').length;")
    assert leaves <= 2, f"{leaves} visible 'Error' labels"

    driver.get(server)  # a fresh page, same server process
    segment(driver, REAL)
    assert shown_overlay(driver).startswith(server)
