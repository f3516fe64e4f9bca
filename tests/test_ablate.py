"""python -m jna_fast.ablate on a tiny setting: every variant trains and evaluates, the outputs and their schema,
and resumption of an interrupted ablation."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jna_fast.ablate import ablate, main
from jna_fast.config import config_from_dict, parse_args, read_config_file, with_overrides
from jna_fast.data import make_synthetic
from jna_fast.data.synthetic import FAMILIES
from jna_fast.variants import read_ablations

pytestmark = pytest.mark.slow
VARIANTS = read_ablations().names()  # configs/ablations/, in index.yaml's order
TINY = ["--size", "32", "--num-segments", "2", "--test-segments", "2", "--flow-length", "2", "--batch-size", "2",
        "--epochs", "1", "--max-steps", "1", "--data-backend", "pyav", "--no-progress", "--no-tensorboard"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic(root, num_classes=3, videos_per_class=4, frames=16, size=48, seed=1, families=FAMILIES)
    return root


def test_every_variant_trains_and_evaluates(root, tmp_path):
    out = tmp_path / "ablation"
    assert main(["--out", str(out), "--seeds", "1", "--root", str(root), *TINY]) == 0
    results = json.loads((out / "ablation.json").read_text())
    assert [run["variant"] for run in results["runs"]] == list(VARIANTS)
    for run in results["runs"]:
        assert run["seed"] == 0 and 0.0 <= run["top1"] <= 1.0
        assert (run["top1_rgb"] is None) == (run["variant"] == "flow")
        assert (run["top1_flow"] is None) == (run["variant"] == "rgb")
        if run["variant"] in ("attention", "jna"):
            assert 0.0 <= run["attention_on_salient"] <= 1.0 and 0.0 <= run["top_snippet_in_window"] <= 1.0
        else:  # averaged snippets: no attention to score
            assert run["attention_on_salient"] is None and run["top_snippet_in_window"] is None
        assert set(run["families"]) == {"motion", "appearance", "binding"}
    assert set(results["summary"]) == set(VARIANTS)
    assert results["summary"]["jna"]["top1"]["sd"] == 0.0 and results["summary"]["jna"]["seeds"] == 1
    table = (out / "ablation.md").read_text()
    assert all(f"| {variant} |" in table for variant in VARIANTS)
    assert (out / "ablation.png").stat().st_size > 0 and list((out / "attention").glob("jna-*.png"))
    configs = {run: json.loads((out / "runs" / run / "eval" / "report.json").read_text()) for run in
               ("rgb-s0", "tsn-s0", "jna-s0")}
    assert configs["rgb-s0"]["top1_flow"] is None and configs["tsn-s0"]["top1_flow"] is not None


def test_an_interrupted_ablation_resumes_and_skips_finished_runs(root, tmp_path):
    out = tmp_path / "ablation"
    base = config_from_dict(parse_args(["--root", str(root), *TINY]).to_dict(), "test")
    ablate(base, out, ["rgb"], [0])
    finished = (out / "runs" / "rgb-s0" / "eval" / "report.json").stat().st_mtime_ns
    # an interrupted run: trained a step, no final evaluation yet
    from jna_fast.train import train

    interrupted = with_overrides(base, {"run.out": str(out / "runs" / "jna-s0"), "run.final_eval": False,
                                        "optim.epochs": 2}, "test")
    train(interrupted)
    assert not (out / "runs" / "jna-s0" / "eval").exists()
    results = ablate(with_overrides(base, {"optim.epochs": 2}, "test"), out, ["rgb", "jna"], [0])
    assert (out / "runs" / "rgb-s0" / "eval" / "report.json").stat().st_mtime_ns == finished
    assert [run["variant"] for run in results["runs"]] == ["rgb", "jna"]
    assert json.loads((out / "runs" / "jna-s0" / "eval" / "report.json").read_text())["clips"] == 6


def test_parallel_runs_are_the_planned_runs_in_order(root, tmp_path):
    base = config_from_dict(parse_args(["--root", str(root), *TINY]).to_dict(), "test")
    results = ablate(base, tmp_path / "parallel", ["rgb", "tsn"], [0, 1], one_stream_seeds=1, jobs=2)
    # the records come in the planned order (seed, then variant), whichever run finished first
    assert [(run["variant"], run["seed"]) for run in results["runs"]] == [("rgb", 0), ("tsn", 0), ("tsn", 1)]
    for run in results["runs"]:
        saved = read_config_file(tmp_path / "parallel" / "runs" / f"{run['variant']}-s{run['seed']}" / "config.yaml")
        assert saved["run.seed"] == run["seed"] and saved["run.progress"] is False  # bars of parallel runs would mix
    assert set(results["summary"]) == {"rgb", "tsn"} and results["summary"]["tsn"]["seeds"] == 2


@pytest.mark.parametrize("jobs", ["0", "-1"])
def test_jobs_below_one_are_refused_before_anything_is_written(tmp_path, capsys, jobs):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "ablation"), "--jobs", jobs])
    assert "--jobs must be >= 1" in capsys.readouterr().err and not (tmp_path / "ablation").exists()


def _ended(pid: int) -> bool:
    # A zombie (ended, not yet reaped by whoever inherited it) counts as ended.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_a_parallel_run_ends_with_the_ablation_that_started_it(tmp_path):
    # An ablation killed with SIGKILL (no handler runs) while its pool's worker is busy: the worker must not train
    # on, orphaned, into a run folder (it did, for minutes, before it watched its parent).
    script = tmp_path / "ablation.py"
    script.write_text(
        "import multiprocessing, os, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from jna_fast.ablate import _start_worker\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn'),\n"
        "                               initializer=_start_worker, initargs=(1, os.getpid()))\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    pool.submit(time.sleep, 120)\n"
        "    time.sleep(120)\n")
    package_root = str(Path(__file__).resolve().parents[1])  # a script's folder, not the checkout, is on its path
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    ablation = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    worker = int(ablation.stdout.readline())
    time.sleep(0.5)  # the worker is now in its 120 s task
    assert not _ended(worker)
    os.kill(ablation.pid, signal.SIGKILL)
    ablation.wait()
    deadline = time.monotonic() + 15
    while not _ended(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not _ended(worker):
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its ablation by 15 s")
