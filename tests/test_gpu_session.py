"""benchmarks/gpu_session.sh runs only on a lent GPU machine; here it is checked as far as a CPU allows: it
parses, every Python entry point it calls exists and takes the flags it is given, and a run where every step
fails still goes through every step and records each one in the summary."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SESSION = REPO / "benchmarks" / "gpu_session.sh"
WHEELS = REPO / "benchmarks" / "gpu_wheels.sh"
# Steps the script records, in order (a run that fails everywhere still lists each).
STEPS = ("wheels", "build", "info", "gpu_tests", "train_dali", "train_pyav", "evaluate", "predict", "copy_bandwidth",
         "op_benchmarks", "throughput", "throughput_compile", "loader")


def python_calls() -> list[tuple[str, list[str]]]:
    """(entry point, every flag the script gives it) for each `"$py" -m module ...` / `"$py" benchmarks/x.py ...`
    in the script, with continuation lines joined (pip, which installs, is not checked)."""
    text = SESSION.read_text().replace("\\\n", " ")
    flags: dict[str, set[str]] = {}
    for match in re.finditer(r'"\$py" (-m [\w.]+|benchmarks/\w+\.py)([^\n;&|]*)', text):
        if match.group(1) != "-m pip":
            flags.setdefault(match.group(1), set()).update(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", match.group(2)))
    common = re.search(r"train_common=\(([^)]*)\)", text)  # the flags both training runs share
    flags["-m jna_fast.train"].update(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", common.group(1)))
    return sorted((entry, sorted(names - {"--help"})) for entry, names in flags.items())


@pytest.mark.parametrize("script", [SESSION, WHEELS], ids=lambda p: p.name)
def test_scripts_parse(script):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_wheels_script_names_its_commands():
    result = subprocess.run(["bash", str(WHEELS)], capture_output=True, text=True)
    assert result.returncode == 2 and "download [DIR] | install [DIR] [SITE]" in result.stderr


def test_the_script_calls_the_entry_points_the_issue_names():
    entries = {entry for entry, _ in python_calls()}
    assert {"-m jna_fast.train", "-m jna_fast.evaluate", "-m jna_fast.predict", "-m pytest",
            "benchmarks/throughput.py", "benchmarks/copy_bandwidth.py", "benchmarks/bench_loader.py",
            "benchmarks/report.py"} <= entries, entries


@pytest.mark.parametrize("entry,flags", python_calls(), ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_every_entry_point_takes_its_flags(entry, flags):
    if entry.startswith("-m "):
        module = entry[3:]
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not in this tree (issue 5 adds it): its flags are checked once it is")
        command = [sys.executable, "-m", module, "--help"]
    else:
        command = [sys.executable, str(REPO / entry), "--help"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr[-2000:]}"
    missing = [flag for flag in flags if flag not in result.stdout]
    assert not missing, f"{entry} --help does not list {missing}"


def test_a_run_where_every_step_fails_records_every_step(tmp_path):
    """PYTHON=false: every command fails at once. The script must go on after each failure, record every step,
    write the summary into OUT and exit non-zero."""
    out = tmp_path / "out"
    result = subprocess.run(["bash", str(SESSION)], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PYTHON": "false", "OUT": str(out), "BUDGET_S": "100",
                                 "JNA_FAST_WHEELS": str(tmp_path / "no_wheels")})
    assert result.returncode != 0
    summary = (out / "summary.txt").read_text()
    recorded = [line.split()[0] for line in summary.splitlines() if line and not line.startswith("==")]
    for name in STEPS:
        assert name in recorded, f"step {name} not in the summary:\n{summary}"
    assert "FAILED(rc=1)" in summary and "SKIPPED" in summary
    assert (out / "logs.tar.gz").exists()
    assert len(list(out.iterdir())) <= 8  # the device tool brings back at most 8 files
