"""python -m jna_fast.ablate: the studies and options as the runs they plan, the figures of given run records, and
on a tiny setting, every variant trains and evaluates, the outputs and their schema, and resumption of an interrupted
ablation."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jna_fast.ablate import ablate, main
from jna_fast.ablation_results import differences, markdown_table, run_record, summarise
from jna_fast.config import config_from_dict, parse_args, parse_command_line, read_config_file, with_overrides
from jna_fast.data import make_synthetic
from jna_fast.data.synthetic import FAMILIES
from jna_fast.variants import default_folder, read_ablations

ABLATIONS = read_ablations()  # configs/ablations/
VARIANTS = ABLATIONS.studies["default"].variants  # what ablate runs without --study, in index.yaml's order
REJECTED_DESIGNS = ("fc_fusion", "branch_selection", "spatial_attention")
TINY = ["--size", "32", "--num-segments", "2", "--test-segments", "2", "--flow-length", "2", "--batch-size", "2",
        "--epochs", "1", "--max-steps", "1", "--data-backend", "pyav", "--no-progress", "--no-tensorboard"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic(root, num_classes=3, videos_per_class=4, frames=16, size=48, seed=1, families=FAMILIES)
    return root


@pytest.mark.slow
def test_the_default_ablation_trains_and_evaluates_its_variants(root, tmp_path):
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


@pytest.mark.slow
@pytest.mark.skipif(bool(set(REJECTED_DESIGNS) & set(ABLATIONS.unavailable)),
                    reason="the rejected designs' parts are not registered: "
                           + "; ".join(f"{name} {why}" for name, why in ABLATIONS.unavailable.items()))
def test_the_alternatives_study_trains_and_evaluates_quickly(root, tmp_path):
    out = tmp_path / "ablation"
    assert main(["--study", "alternatives", "--quick", "--out", str(out), "--seeds", "1", "--root", str(root),
                 *TINY]) == 0
    results = json.loads((out / "ablation.json").read_text())
    assert [run["variant"] for run in results["runs"]] == ["tsn", "jna", *REJECTED_DESIGNS]
    runs = {run["variant"]: run for run in results["runs"]}
    for name in REJECTED_DESIGNS:
        assert 0.0 <= runs[name]["top1"] <= 1.0 and set(runs[name]["families"]) == {"motion", "appearance", "binding"}
        assert runs[name]["attention_on_salient"] is None  # the snippets are averaged: no attention to score
    selection = runs["branch_selection"]
    assert selection["selected_rgb"] + selection["selected_flow"] == pytest.approx(1.0)
    assert runs["tsn"]["selected_rgb"] is None and "Branch selected at test" in (out / "ablation.md").read_text()
    assert [row["comparison"] for row in results["differences"]] == [
        "jna - tsn", *(f"{better} - {name}" for better in ("tsn", "jna") for name in REJECTED_DESIGNS)]


@pytest.mark.slow
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


@pytest.mark.slow
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
@pytest.mark.slow
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


def _stand_ins(tmp_path):
    """The shipped variants with the rejected designs as TSN: what the options plan, whatever parts are registered."""
    folder = tmp_path / "ablations"
    shutil.copytree(default_folder(), folder)
    for name in REJECTED_DESIGNS:
        shutil.copy(folder / "tsn.yaml", folder / f"{name}.yaml")
    return read_ablations(folder)


@pytest.mark.parametrize("argv, variants, seeds, one_stream_seeds, budget", [
    ([], VARIANTS, 5, 3, "default"),
    (["--study", "alternatives"], ("tsn", "jna", *REJECTED_DESIGNS), 5, None, "train"),
    (["--study", "alternatives", "--quick"], ("tsn", "jna", *REJECTED_DESIGNS), 5, None, "quick"),
    (["--variants", ",".join(REJECTED_DESIGNS), "--quick"], REJECTED_DESIGNS, 5, 3, "quick"),
    (["--study", "alternatives", "--variants", "tsn,fc_fusion", "--seeds", "2", "--epochs", "3"],
     ("tsn", "fc_fusion"), 2, None, "epochs 3"),
])
def test_a_study_and_the_options_plan_the_runs(tmp_path, monkeypatch, argv, variants, seeds, one_stream_seeds,
                                               budget):
    """No run trains: the ablation is handed what it would run. A study's budget is below the command line."""
    ablations, planned = _stand_ins(tmp_path), {}
    monkeypatch.setattr("jna_fast.ablate.read_ablations", lambda: ablations)

    def plan(base, out, *args):
        planned.update(base=base, args=args)
        return {"summary": {}, "settings": {}, "differences": []}

    monkeypatch.setattr("jna_fast.ablate.ablate", plan)
    assert main(["--out", str(tmp_path / "ablation"), "--jobs", "1", *argv]) == 0
    assert planned["args"] == (list(variants), list(range(seeds)), one_stream_seeds, 1, ablations)
    base = planned["base"]
    if budget == "default":
        defaults = ablations.studies["default"].budget
        assert base.flat_values() == parse_command_line([], defaults=defaults)[0].flat_values()
    elif budget == "train":  # the main run's: 12 epochs on 10 classes x 40 videos
        assert base.flat_values() == parse_args([]).flat_values() and base.optim.epochs == 12
        assert (base.data.synthetic.classes, base.data.synthetic.videos_per_class) == (10, 40)
    elif budget == "quick":
        assert base.optim.epochs == 1 and base.data.size == 32
    else:
        assert base.optim.epochs == 3 and base.data.synthetic.videos_per_class == 40


def test_a_variant_outside_the_study_is_refused_before_anything_is_written(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "ablation"), "--study", "alternatives", "--variants", "tsn,sharing"])
    assert "--variants names sharing, not in --study alternatives" in capsys.readouterr().err
    assert not (tmp_path / "ablation").exists()


def _report(top1: dict, selected_rgb: dict | None = None) -> dict:
    """A report.json's figures: top-1 per family (their mean overall), and a gate's selection rates."""
    report = {"top1": sum(top1.values()) / len(top1), "families": {f: {"top1": v} for f, v in top1.items()}}
    if selected_rgb is not None:
        report.update(selected_rgb=sum(selected_rgb.values()) / len(selected_rgb),
                      selected_flow=1 - sum(selected_rgb.values()) / len(selected_rgb))
        for family, rate in selected_rgb.items():
            report["families"][family].update(selected_rgb=rate, selected_flow=1 - rate)
    return report


def test_claim_4_is_paired_by_seed_per_family_with_the_selection_rates():
    """From run records alone: the comparisons of the variants that ran, and the gate's rates where it ran."""
    reports = {
        "tsn": [_report({"motion": 0.9, "binding": 0.5}), _report({"motion": 0.8, "binding": 0.4})],
        "jna": [_report({"motion": 1.0, "binding": 0.8}), _report({"motion": 0.9, "binding": 0.6})],
        "fc_fusion": [_report({"motion": 0.7, "binding": 0.5}), _report({"motion": 0.8, "binding": 0.2})],
        "branch_selection": [_report({"motion": 0.6, "binding": 0.3}, {"motion": 0.2, "binding": 0.6}),
                             _report({"motion": 0.8, "binding": 0.3}, {"motion": 0.4, "binding": 0.8})],
    }
    runs = [run_record(variant, seed, report, attention=False) for variant, seeds in reports.items()
            for seed, report in enumerate(seeds)]
    rows = {row["comparison"]: row for row in differences(runs, ABLATIONS.comparisons)}
    # spatial_attention did not run, nor sharing or attention: their comparisons are left out
    assert list(rows) == ["jna - tsn", "tsn - fc_fusion", "tsn - branch_selection", "jna - fc_fusion",
                          "jna - branch_selection"]
    fc = rows["tsn - fc_fusion"]
    assert fc["meaning"].startswith("claim 4") and fc["seeds"] == 2
    assert fc["top1_binding"]["mean"] == pytest.approx(0.1)
    assert fc["top1_binding"]["sd"] == pytest.approx(0.02 ** 0.5)  # differences 0.0 and 0.2
    assert fc["top1_motion"]["mean"] == pytest.approx(0.1)
    summary = summarise(runs, ABLATIONS.names())
    gate = summary["branch_selection"]
    assert gate["selected_rgb"]["mean"] == pytest.approx(0.5) and gate["selected_flow"]["mean"] == pytest.approx(0.5)
    assert gate["families"]["binding"]["selected_rgb"]["mean"] == pytest.approx(0.7)
    assert "selected_rgb" not in summary["tsn"] and "selected_rgb" not in summary["tsn"]["families"]["binding"]
    table = markdown_table(summary, {}, list(rows.values()))
    selection = table[table.index("Branch selected at test"):].split("\n\n")[1].splitlines()
    assert selection[0] == "| variant | branch | all | binding | motion |"
    assert selection[2] == "| branch_selection | RGB | 0.500 ± 0.141 | 0.700 ± 0.141 | 0.300 ± 0.141 |"
    assert selection[3].startswith("| branch_selection | flow | 0.500 ± 0.141 |") and len(selection) == 4
    assert "| tsn - branch_selection | claim 4: " in table
    assert "Branch selected" not in markdown_table(summarise(runs[:4], ABLATIONS.names()), {}, [])
