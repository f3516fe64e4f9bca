"""Test-session setup. Triton reads TRITON_INTERPRET when it is first imported, so the choice is made here,
before any test module imports it: without a CUDA device the Triton kernels run in the interpreter. And the fixtures
that several test files share."""

import os
import shutil
import sys

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# tests/op_testing.py is a shared helper module, importable from every test file.
sys.path.insert(0, os.path.dirname(__file__))


def make_checkpoint(folder, options, class_names):
    """``folder/best.pt``: a real jna_fast checkpoint of an untrained model configured by ``options`` (train's
    command-line options; the dataset root does not exist), made without any data."""
    from jna_fast.builders import build_model, data_settings
    from jna_fast.checkpoint import save_checkpoint
    from jna_fast.config import parse_args

    # fp32: the tests compare outputs of different paths to 1e-5, which bf16 autocast (what precision auto means on
    # a CPU with native bf16) does not give.
    cfg = parse_args(["--root", str(folder / "no-data"), "--size", "32", "--num-segments", "2", "--flow-length", "2",
                      "--precision", "fp32", *options, "--out", str(folder / "run")])
    torch.manual_seed(0)
    path = folder / "best.pt"
    save_checkpoint(path, {"model": build_model(cfg, len(class_names)).state_dict(), "config": cfg.to_dict(),
                           "class_names": list(class_names), "data": data_settings(cfg)})
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """An untrained ResNet-18 RGB branch, 3 classes, 32 px (one branch keeps it quick to load): for the tests of
    what loads one."""
    return make_checkpoint(tmp_path_factory.mktemp("checkpoint"),
                           ["--test-segments", "2", "--streams", "rgb", "--share-after", "", "--consensus", "average"],
                           ["a", "b", "c"])


@pytest.fixture(scope="session")
def synthetic_checkpoint(tmp_path_factory):
    """An untrained two-stream model (ResNet-18, 32 px, the synthetic recipe's cross-stitches) whose classes are the
    first 3 of the synthetic set, marked as trained on it: what the demo offers synthetic examples for."""
    from jna_fast.data.synthetic import DEFAULT_FAMILIES, catalogue

    return make_checkpoint(tmp_path_factory.mktemp("synthetic-checkpoint"),
                           ["--dataset", "synthetic", "--synthetic-classes", "3", "--no-flip"],
                           [spec.name for spec in catalogue(DEFAULT_FAMILIES)[:3]])


def browser_binaries() -> tuple[str, str] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver") or ("/usr/bin/chromedriver"
                                                   if os.access("/usr/bin/chromedriver", os.X_OK) else None)
    return (chromium, chromedriver) if chromium and chromedriver else None


@pytest.fixture
def browser():
    """Headless Chromium driven by selenium (the demo's and the documentation site's browser tests)."""
    pytest.importorskip("selenium", reason="selenium is not installed (pip install 'jna_fast[test]')")
    binaries = browser_binaries()
    if binaries is None:
        pytest.skip("chromium or chromedriver not found (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = binaries[0]
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(binaries[1]))
    try:
        driver.set_page_load_timeout(60)
        driver.set_script_timeout(30)
        yield driver
    finally:
        driver.quit()
