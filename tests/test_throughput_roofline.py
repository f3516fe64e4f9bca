"""benchmarks/throughput.py's roofline on a tiny configuration: the FLOP per clip is counted, the matmul peak
measured, and the share of it is a fraction. No speed is asserted (the peak measure is noisy on a shared CPU)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def benchmarks(monkeypatch):
    """benchmarks/ on the path (throughput.py imports matmul_peak.py beside it), one thread: a small torch.mm
    reaches a core's peak on one thread, where two threads on a busy 2-core machine wait on each other."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    import matmul_peak
    import throughput
    yield matmul_peak, throughput
    torch.set_num_threads(threads)


def test_the_matmul_peak_is_measured(benchmarks):
    matmul_peak, _ = benchmarks
    peak = matmul_peak.matmul_peak(torch.device("cpu"), "fp32", sizes=(64, 256), min_seconds=0.05)
    assert set(peak["by_size"]) == {64, 256} and peak["gflops"] == max(peak["by_size"].values()) > 0
    assert peak["threads"] == 1 and peak["precision"] == "fp32"
    with pytest.raises(ValueError, match="tf32"):
        matmul_peak.matmul_peak(torch.device("cpu"), "tf32")
    assert matmul_peak.bf16_support(torch.device("cpu")).startswith(("native", "emulated"))
    assert matmul_peak.step_precision(torch.device("cpu"), "fp32") == "fp32"
    assert matmul_peak.step_precision(torch.device("cpu"), "bf16") == "bf16"


def test_throughput_reports_the_roofline_of_each_step(benchmarks, tmp_path, capsys):
    _, throughput = benchmarks
    out = tmp_path / "throughput.json"
    throughput.main(["--device", "cpu", "--backbone", "resnet18", "--size", "32", "--batch-size", "2", "--segments",
                     "2", "--flow-length", "2", "--precision", "fp32", "--no-channels-last", "--warmup", "1",
                     "--steps", "1", "--backends", "reference", "--peak-sizes", "256", "--optimizer", "adamw",
                     "--json", str(out)])
    printed = capsys.readouterr().out
    assert "fp32, contiguous, adamw" in printed and "matmul peak fp32" in printed
    assert "train GFLOP/clip" in printed and "infer %peak" in printed
    report = json.loads(out.read_text())
    assert report["config"]["optimizer"] == "adamw"
    assert report["matmul_peak"]["step"] == "fp32" and report["matmul_peak"]["peaks"]["fp32"]["gflops"] > 0
    (result,) = report["results"]
    for mode in ("train", "infer"):
        assert result[f"{mode}_flop_per_step"] > 0 and result[f"{mode}_gflops"] > 0
        assert result[f"{mode}_gflop_per_clip"] == pytest.approx(result[f"{mode}_flop_per_step"] / 2 / 1e9)
        assert 0 < result[f"{mode}_peak_fraction"] < 1.5
    # backward counts about twice the forward's convolutions (the first convolution has no input gradient)
    assert 2.5 < result["train_flop_per_step"] / result["infer_flop_per_step"] < 3.0


def test_train_loop_compares_the_fed_step_with_the_preloaded_one(benchmarks, tmp_path, monkeypatch, capsys):
    """benchmarks/train_loop.py on a tiny synthetic run: the trainer's step fed by the loader and on preloaded
    batches, alternated, and the loader alone."""
    import train_loop

    monkeypatch.setenv("JNA_FAST_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "train_loop.json"
    train_loop.main(["--repeats", "2", "--json", str(out), "--dataset", "synthetic", "--synthetic-classes", "2",
                     "--synthetic-videos-per-class", "4", "--size", "32", "--num-segments", "2", "--flow-length",
                     "2", "--batch-size", "2", "--precision", "fp32"])
    printed = capsys.readouterr().out
    expected_prefetch = 2 if torch.cuda.is_available() else 0  # served from memory: ahead only for a GPU's step
    assert "step fed by the loader" in printed and f"memory cache on, prefetch {expected_prefetch}" in printed
    report = json.loads(out.read_text())
    assert len(report["fed_by_loader_clips_per_s"]) == len(report["preloaded_clips_per_s"]) == 2
    assert all(value > 0 for value in report["fed_by_loader_clips_per_s"] + report["preloaded_clips_per_s"])
    assert report["fed_over_preloaded"] > 0 and report["loader_alone"]["cpu_ms_per_batch"] > 0
    assert report["config"]["optim"]["batch_size"] == 2
