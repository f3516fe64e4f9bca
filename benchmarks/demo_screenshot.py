"""The demo page with a result, for docs/guides/demo.md:
``python benchmarks/demo_screenshot.py CHECKPOINT OUT.png``.

Starts ``python -m jna_fast.demo CHECKPOINT`` on a free local port, opens it in headless Chromium (Selenium), runs
the first bundled synthetic example (or ``--video FILE``: uploads it) and saves the page once the result shows.
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint")
    parser.add_argument("out", help="the PNG to write")
    parser.add_argument("--video", help="upload this file instead of running the first synthetic example")
    parser.add_argument("--segments", type=int, default=25)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = parser.parse_args()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    work = tempfile.mkdtemp(prefix="jna_fast-demo-")
    server = subprocess.Popen([sys.executable, "-m", "jna_fast.demo", args.checkpoint, "--port", str(port),
                               "--segments", str(args.segments), "--examples-cache", os.path.join(work, "examples")],
                              env={**os.environ, "GRADIO_TEMP_DIR": os.path.join(work, "gradio")})
    options = Options()
    options.binary_location = args.chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(argument)
    driver = None
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                raise SystemExit(f"the demo server exited with status {server.returncode}")
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the demo server did not answer within 180 s")
                time.sleep(0.5)
        driver = webdriver.Chrome(options=options, service=Service(args.chromedriver))
        driver.set_page_load_timeout(60)
        driver.get(url)
        wait = WebDriverWait(driver, 180)
        wait.until(lambda _: driver.find_elements(By.CSS_SELECTOR, "#video input[type=file]"))
        if args.video:
            driver.find_element(By.CSS_SELECTOR, "#video input[type=file]").send_keys(os.path.abspath(args.video))
        else:
            examples = [button for button in driver.find_elements(By.CSS_SELECTOR, "#examples button") if button.text]
            if not examples:
                raise SystemExit("the checkpoint has no synthetic examples: pass --video FILE")
            examples[0].click()
        wait.until(lambda _: driver.find_elements(By.CSS_SELECTOR, "#strip img") and driver.execute_script(
            "return arguments[0].naturalWidth", driver.find_element(By.CSS_SELECTOR, "#strip img")) > 0)
        time.sleep(1)  # let the label's bars finish their transition
        driver.save_screenshot(args.out)
        print(f"{args.out}: {driver.find_element(By.ID, 'message').text}")
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
