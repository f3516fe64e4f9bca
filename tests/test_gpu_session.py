"""benchmarks/gpu_session.sh runs whole only on a lent GPU machine; here it is checked as far as a CPU allows:
`--dry-run` runs every step that needs no GPU (at small sizes) and must pass, every Python entry point takes the
flags the GPU run gives it, and a run where every step fails still records every step."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SESSION = REPO / "benchmarks" / "gpu_session.sh"
WHEELS = REPO / "benchmarks" / "gpu_wheels.sh"
# Steps every full run records, in order (a run that fails everywhere still lists each).
STEPS = ("wheels", "build", "info", "synthetic_data", "gpu_tests", "copy_bandwidth", "op_benchmarks", "throughput",
         "train", "evaluate", "predict", "throughput_compile")
# The steps a dry run on this CPU must pass.
CPU_STEPS = ("info", "synthetic_data", "gpu_tests", "copy_bandwidth", "op_benchmarks", "op_report", "throughput",
             "train", "evaluate", "predict")
FLAG = r"(?<![\w-])(--[a-z][\w-]*)"


def python_calls() -> list[tuple[str, list[str]]]:
    """(entry point, every flag the script gives it) for each `"$py" -m module ...` / `"$py" benchmarks/x.py ...`
    in the script, continuation lines joined and `"${name[@]}"` arrays expanded to the flags of both their
    definitions (the dry run's and the GPU run's); pip, which installs, is not checked."""
    text = SESSION.read_text().replace("\\\n", " ")
    arrays: dict[str, set[str]] = {}
    for match in re.finditer(r"(\w+)=\(([^)]*)\)", text):
        arrays.setdefault(match.group(1), set()).update(re.findall(FLAG, match.group(2)))
    flags: dict[str, set[str]] = {}
    for match in re.finditer(r'"\$py" (-m [\w.]+|benchmarks/\w+\.py)([^\n;&|]*)', text):
        if match.group(1) == "-m pip":
            continue
        found = flags.setdefault(match.group(1), set())
        found.update(re.findall(FLAG, match.group(2)))
        for name in re.findall(r'"\$\{(\w+)\[@\]\}"', match.group(2)):
            found.update(arrays[name])
    return sorted((entry, sorted(names - {"--help"})) for entry, names in flags.items())


def run_session(*args, env: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SESSION), *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env})


def summary_rows(out: Path) -> dict[str, str]:
    """step name -> verdict, from summary.txt."""
    rows = [line.split() for line in (out / "summary.txt").read_text().splitlines()]
    return {row[0]: row[1] for row in rows if len(row) >= 2 and not row[0].startswith("==")}


@pytest.mark.parametrize("script", [SESSION, WHEELS], ids=lambda p: p.name)
def test_scripts_parse(script):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_wheels_script_names_its_command():
    result = subprocess.run(["bash", str(WHEELS)], capture_output=True, text=True)
    assert result.returncode == 2 and "download [DIR]" in result.stderr


def test_an_unknown_part_is_refused(tmp_path):
    result = run_session("--only", "ops,bogus", env={"OUT": str(tmp_path / "out")}, timeout=30)
    assert result.returncode == 2 and "--only: unknown part 'bogus'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_script_calls_the_entry_points_the_session_needs():
    entries = {entry for entry, _ in python_calls()}
    assert {"-m jna_fast.train", "-m jna_fast.evaluate", "-m jna_fast.predict", "-m pytest",
            "benchmarks/throughput.py", "benchmarks/copy_bandwidth.py", "benchmarks/report.py"} <= entries, entries


@pytest.mark.parametrize("entry,flags", python_calls(), ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_every_entry_point_takes_its_flags(entry, flags):
    if entry.startswith("-m "):
        module = entry[3:]
        assert importlib.util.find_spec(module) is not None, f"{module} is not importable"
        command = [sys.executable, "-m", module, "--help"]
    else:
        command = [sys.executable, str(REPO / entry), "--help"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr[-2000:]}"
    missing = [flag for flag in flags if flag not in result.stdout]
    assert not missing, f"{entry} --help does not list {missing}"


@pytest.mark.slow
def test_dry_run_passes_every_step_a_cpu_can_run(tmp_path):
    out = tmp_path / "out"
    result = run_session("--dry-run", env={"OUT": str(out), "PYTHON": sys.executable,
                                           "JNA_FAST_WHEELS": str(tmp_path / "no_wheels")}, timeout=1500)
    rows = summary_rows(out)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-2000:]}"
    for name in CPU_STEPS:
        assert rows.get(name) == "ok", f"step {name}: {rows.get(name)}\n{result.stdout[-3000:]}"
    for name in ("wheels", "build", "throughput_compile"):
        assert rows.get(name) == "skipped", f"step {name}: {rows.get(name)}"
    assert {"ops.json", "ops.md", "throughput.json", "train.txt", "summary.txt", "logs.tar.gz"} <= {
        p.name for p in out.iterdir()}
    assert len(list(out.iterdir())) <= 8  # the device tool brings back at most 8 files


def test_a_run_where_every_step_fails_records_every_step(tmp_path):
    """PYTHON=false: every command fails at once. The script must go on after each failure, record every step,
    write the summary into OUT and exit non-zero."""
    out = tmp_path / "out"
    result = subprocess.run(["bash", str(SESSION)], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PYTHON": "false", "OUT": str(out), "BUDGET_S": "100",
                                 "JNA_FAST_WHEELS": str(tmp_path / "no_wheels")})
    assert result.returncode != 0
    rows = summary_rows(out)
    for name in STEPS:
        assert name in rows, f"step {name} not in the summary:\n{(out / 'summary.txt').read_text()}"
    assert rows["build"] == "FAILED(rc=1)" and rows["wheels"] == "skipped"
    assert (out / "logs.tar.gz").exists()
    assert len(list(out.iterdir())) <= 8
