"""python -m jna_fast.ablate on a tiny setting: every variant trains and evaluates, the outputs and their schema,
and resumption of an interrupted ablation."""

import json

import pytest

from jna_fast.ablate import VARIANTS, ablate, main
from jna_fast.config import config_from_dict, parse_args, read_config_file
from jna_fast.data import make_synthetic
from jna_fast.data.synthetic import FAMILIES

pytestmark = pytest.mark.slow
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

    interrupted = config_from_dict({**base.to_dict(), "out": str(out / "runs" / "jna-s0"), "final_eval": False,
                                    "epochs": 2}, "test")
    train(interrupted)
    assert not (out / "runs" / "jna-s0" / "eval").exists()
    results = ablate(config_from_dict({**base.to_dict(), "epochs": 2}, "test"), out, ["rgb", "jna"], [0])
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
        assert saved["seed"] == run["seed"] and saved["progress"] is False  # bars of parallel runs would mix
    assert set(results["summary"]) == {"rgb", "tsn"} and results["summary"]["tsn"]["seeds"] == 2


@pytest.mark.parametrize("jobs", ["0", "-1"])
def test_jobs_below_one_are_refused_before_anything_is_written(tmp_path, capsys, jobs):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "ablation"), "--jobs", jobs])
    assert "--jobs must be >= 1" in capsys.readouterr().err and not (tmp_path / "ablation").exists()
