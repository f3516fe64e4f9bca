"""The documentation site (mkdocs.yml, docs/): it builds with warnings as errors (broken links, missing references,
docstrings that do not render), every public name and every command has its reference page, every guide command
marked ``<!-- run -->`` runs on a CPU, and the built site works in headless Chromium. Building needs the ``docs``
extra; the browser test needs chromium and chromedriver (each skips, saying what is missing)."""

import functools
import http.server
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BUILD_S = 300
BLOCK_S = 300
# A fenced block preceded by this line is run by test_the_marked_guide_commands_run.
RUN_MARK = re.compile(r"^<!-- run -->\n```(bash|python)\n(.*?)^```", re.MULTILINE | re.DOTALL)
# Where "A run of seconds" leaves its checkpoint; the other guides' marked commands use it.
TINY_RUN_PAGE = "guides/synthetic.md"
# Modules run with ``if __name__ == "__main__"`` that are checks for developers, not commands for users.
NOT_USER_COMMANDS = {"jna_fast/triton/compile_check.py"}


def nav_pages() -> list[str]:
    """The Markdown pages of the site's navigation, in its order (the generated reference pages included)."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    pages: list[str] = []

    def walk(entries):
        for entry in entries:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            walk(value) if isinstance(value, list) else pages.append(value)

    walk(config["nav"])
    return pages


def marked_blocks(page: str) -> list[tuple[str, str]]:
    """``(language, code)`` of every block of ``docs/page`` marked to run."""
    return RUN_MARK.findall((DOCS / page).read_text(encoding="utf-8"))


def hooks():
    sys.path.insert(0, str(DOCS))
    try:
        import hooks as module
    finally:
        sys.path.remove(str(DOCS))
    return module


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The site built by ``mkdocs build --strict`` into a temporary folder."""
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install 'jna_fast[docs]')")
    pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings-python is not installed "
                        "(pip install 'jna_fast[docs]')")
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                           capture_output=True, text=True, timeout=BUILD_S,
                           env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert built.returncode == 0, f"mkdocs build --strict failed:\n{built.stderr[-5000:]}"
    return out


def test_the_site_builds_with_warnings_as_errors(site):
    for page in nav_pages():
        html = site / Path(page).with_suffix("") / "index.html" if page != "index.md" else site / "index.html"
        assert html.exists(), f"{page} was not built"


def test_every_command_has_a_reference_page_from_its_help(site):
    """Every module a user runs with ``python -m`` (it has ``if __name__ == "__main__"`` or is a ``__main__.py``)
    has a page, and the page holds what the command's --help prints."""
    documented = {typed.split()[-1] for _, typed, _, _ in hooks().COMMANDS}  # "python -m jna_fast.train"
    commands = set()
    for path in (ROOT / "jna_fast").rglob("*.py"):
        relative = path.relative_to(ROOT).as_posix()
        runnable = path.name == "__main__.py" or re.search(r'^if __name__ == "__main__":',
                                                            path.read_text(encoding="utf-8"), re.MULTILINE)
        if runnable and relative not in NOT_USER_COMMANDS:
            commands.add(relative[:-3].replace("/", ".").removesuffix(".__main__"))
    assert not commands - documented, f"commands without a reference page: {sorted(commands - documented)}"
    train = (site / "reference" / "commands" / "train" / "index.html").read_text(encoding="utf-8")
    assert "usage: python -m jna_fast.train" in train and "--optim.lr" in train


def test_every_public_name_has_a_reference_entry(site):
    module = hooks()
    for name in module.API_MODULES:
        html = (site / "reference" / "api" / name / "index.html").read_text(encoding="utf-8")
        for public, where in module.public_names(name):
            assert f'id="{where}"' in html or f"{where}.md" in html or f"{where}/" in html or f'#{where}"' in html, \
                f"{name}.{public} ({where}) has no entry in the API reference"


@pytest.fixture(scope="session")
def guide_workspace(tmp_path_factory):
    """A scratch folder (the commands' working directory and home, so that caches land in it), after the blocks of
    "A run of seconds", which leave the checkpoint ``runs/tiny/last.pt`` the other guides use."""
    workspace = tmp_path_factory.mktemp("guides")
    (workspace / "home").mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("JNA_FAST_")}
    env.update(HOME=str(workspace / "home"), OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
               MPLCONFIGDIR=os.environ.get("MPLCONFIGDIR", str(Path.home() / ".config" / "matplotlib")))
    for language, code in marked_blocks(TINY_RUN_PAGE):
        run_block(TINY_RUN_PAGE, language, code, workspace, env)
    return workspace, env


def run_block(page: str, language: str, code: str, workspace: Path, env: dict) -> None:
    command = ["bash", "-euo", "pipefail", "-c", code] if language == "bash" else [sys.executable, "-c", code]
    done = subprocess.run(command, cwd=workspace, env=env, capture_output=True, text=True, timeout=BLOCK_S)
    assert done.returncode == 0, (f"{page}: this block failed with status {done.returncode}:\n{code}\n"
                                  f"stdout:\n{done.stdout[-2000:]}\nstderr:\n{done.stderr[-3000:]}")


MARKED_PAGES = [page for page in nav_pages() if (DOCS / page).exists() and marked_blocks(page)]


def test_the_marked_blocks_are_found():
    """Not vacuous: the guides mark commands of several kinds (train, evaluate, predict, export, Python)."""
    blocks = [code for page in MARKED_PAGES for _, code in marked_blocks(page)]
    for command in ("jna_fast.train", "jna_fast.evaluate", "jna_fast.predict", "jna_fast.export", "import torch"):
        assert any(command in code for code in blocks), command


@pytest.mark.parametrize("page", MARKED_PAGES)
def test_the_marked_guide_commands_run(page, guide_workspace):
    workspace, env = guide_workspace
    if page == TINY_RUN_PAGE:  # ran by the fixture, before every other page
        assert (workspace / "runs" / "tiny" / "last.pt").exists()
        return
    for language, code in marked_blocks(page):
        run_block(page, language, code, workspace, env)


@pytest.fixture
def served_site(site):
    """The built site over HTTP on a free local port (the pages' links are folders, which file:// cannot open)."""
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_the_site_navigates_in_a_browser(served_site, browser, tmp_path):
    """From the home page, follow the navigation to three pages, each showing its heading, and save screenshots."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(served_site)
    assert browser.title.startswith("jna_fast")
    for link, heading in (("Get started", "Get started"), ("Train on the synthetic set", "Train on the synthetic set"),
                          ("jna_fast.ops", "jna_fast.ops")):
        WebDriverWait(browser, 30).until(lambda _: browser.find_elements(By.CSS_SELECTOR, "nav.md-nav a.md-nav__link"))
        target = next(a for a in browser.find_elements(By.CSS_SELECTOR, "nav.md-nav--primary a.md-nav__link")
                      if a.get_attribute("textContent").strip() == link)
        browser.get(target.get_attribute("href"))
        WebDriverWait(browser, 30).until(lambda _: browser.find_elements(By.CSS_SELECTOR, "article h1"))
        shown = browser.find_element(By.CSS_SELECTOR, "article h1").text
        assert shown.replace("¶", "").strip() == heading, (link, shown)
        assert browser.title.startswith(heading), browser.title
        screenshot = tmp_path / f"{heading.replace(' ', '_')}.png"
        assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000
