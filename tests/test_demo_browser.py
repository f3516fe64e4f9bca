"""The demo in a real browser: ``python -m jna_fast.demo`` serving a checkpoint on a free local port, headless
Chromium driven by Selenium uploading a synthetic clip. The page must show the class ``model.predict`` gives for the
same file and the attention strip; a corrupt upload must show an error message; a bundled example must run.
Skipped (saying what is missing) only where gradio, selenium, chromium or chromedriver cannot be found."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from test_demo import SEGMENTS, synthetic_clip

pytest.importorskip("gradio", reason="gradio is not installed (pip install 'jna_fast[demo]')")
pytest.importorskip("selenium", reason="selenium is not installed (pip install 'jna_fast[test]')")

pytestmark = pytest.mark.slow

SERVER_START_S = 180    # torch, gradio and the checkpoint load on a busy 2-core machine
RESULT_S = 120          # one video: decoding, flow, the forward pass, the strip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(synthetic_checkpoint, tmp_path):
    """The demo's URL, its server running in a subprocess; always stopped afterwards."""
    port = free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "GRADIO_TEMP_DIR": str(tmp_path / "gradio"), "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "jna_fast.demo", str(synthetic_checkpoint), "--port", str(port), "--host",
             "127.0.0.1", "--segments", str(SEGMENTS), "--examples-cache", str(tmp_path / "examples")],
            stdout=output, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"the demo server exited with status {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the demo server did not answer within {SERVER_START_S} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def test_the_page_shows_predicts_class_and_the_attention_strip(synthetic_checkpoint, browser, server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from jna_fast.inference import Predictor

    clip = synthetic_clip(tmp_path / "clip.avi")
    expected = Predictor.from_checkpoint(synthetic_checkpoint).predict(clip, segments=SEGMENTS)

    def message():
        return browser.find_element(By.ID, "message").text

    def upload(path: Path):
        WebDriverWait(browser, 30).until(lambda _: browser.find_elements(By.CSS_SELECTOR, "#video input[type=file]"))
        browser.find_element(By.CSS_SELECTOR, "#video input[type=file]").send_keys(str(path))

    def strip_width():
        images = browser.find_elements(By.CSS_SELECTOR, "#strip img")
        return browser.execute_script("return arguments[0].naturalWidth", images[0]) if images else 0

    browser.get(server)
    upload(clip)
    WebDriverWait(browser, RESULT_S).until(lambda _: strip_width() > 0 and message().startswith(expected.classes[0]),
                                           message=f"no result for {clip.name} within {RESULT_S} s")
    shown = browser.find_element(By.CSS_SELECTOR, "#top-classes [data-testid=label-output-value]").text
    assert shown == expected.classes[0], (shown, expected)
    ranked = browser.find_elements(By.CSS_SELECTOR, "#top-classes dt")
    assert [row.text for row in ranked] == expected.classes
    screenshot = tmp_path / "demo.png"
    assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 0

    # A corrupt upload: a message on the page, no result, the server still serving.
    browser.find_element(By.CSS_SELECTOR, "#video button[aria-label='Clear']").click()
    corrupt = tmp_path / "corrupt.avi"
    corrupt.write_bytes(clip.read_bytes()[:300])
    upload(corrupt)
    WebDriverWait(browser, RESULT_S).until(lambda _: message().startswith("error: corrupt.avi: "),
                                           message="no error message for a corrupt upload")
    assert strip_width() == 0 and not browser.find_elements(By.CSS_SELECTOR,
                                                           "#top-classes [data-testid=label-output-value]")

    # A bundled synthetic example (the checkpoint's classes are the synthetic set's): one click runs it.
    browser.find_element(By.CSS_SELECTOR, "#video button[aria-label='Clear']").click()
    example = next(button for button in browser.find_elements(By.CSS_SELECTOR, "#examples button")
                   if button.text == expected.classes[-1])
    example.click()
    WebDriverWait(browser, RESULT_S).until(lambda _: strip_width() > 0 and not message().startswith("error"),
                                           message="no result for a bundled example")
