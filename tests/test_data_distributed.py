"""The loader under distributed training and on CUDA machines: which loader a trainer asks for (with and without
DALI), pinned CPU batches, the DALI device per local rank, and ranks that keep the same step count when clips are
skipped (two gloo ranks with corrupt videos)."""

import json
import shutil
import time
from dataclasses import replace
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from jna_fast.data import (ClipSampling, DataError, Decoding, FlowSource, Sharding, build_loader, loader, loader_device,
                           make_synthetic)
from jna_fast.data import dali_pipeline
from jna_fast.flow import extract_flow

needs_dali = pytest.mark.skipif(not dali_pipeline.dali_available(), reason="no nvidia-dali")


@pytest.fixture
def machine(monkeypatch):
    """Sets the facts the loader choice depends on: whether CUDA and DALI are there."""
    def set_facts(cuda: bool, dali: bool):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(loader, "dali_available", lambda: dali)
    return set_facts


@pytest.mark.parametrize("cuda, dali, model_device, backend, expected", [
    (True, True, "cuda", "auto", ("dali", "gpu")),
    (True, False, "cuda", "auto", ("pyav", "cpu")),    # CUDA without DALI: the CPU loader feeds the GPU
    (True, True, "cuda", "pyav", ("pyav", "cpu")),
    (True, True, "cpu", "auto", ("pyav", "cpu")),      # model kept on the CPU of a CUDA machine
    (False, True, "cpu", "auto", ("pyav", "cpu")),     # on the CPU PyAV, which the memory cache serves
    (False, True, "cpu", "dali", ("dali", "cpu")),
    (False, False, "cpu", "auto", ("pyav", "cpu")),
])
def test_loader_device_for_the_models_device(machine, cuda, dali, model_device, backend, expected):
    machine(cuda, dali)
    assert loader_device(torch.device(model_device), backend) == expected
    assert loader_device(torch.device(model_device), backend, "rawframes") == expected


@pytest.mark.parametrize("cuda, dali", [(True, True), (True, False), (False, True)])
def test_loader_device_runs_online_flow_in_the_cpu_loader(machine, cuda, dali):
    machine(cuda, dali)
    # online flow is computed on the frames PyAV decodes: pinned CPU batches feed a CUDA model
    for backend in ("auto", "pyav"):
        assert loader_device(torch.device("cuda" if cuda else "cpu"), backend, "online") == ("pyav", "cpu")
    with pytest.raises(ValueError, match="flow_source='online' runs on backend='pyav'"):
        loader_device(torch.device("cuda", 0), "dali", "online")
    with pytest.raises(ValueError, match="flow_source must be one of"):
        loader_device(torch.device("cpu"), "auto", "disk")


def test_loader_device_refuses_dali_when_it_is_missing(machine):
    machine(True, False)
    with pytest.raises(ValueError, match="backend='dali' needs nvidia-dali"):
        loader_device(torch.device("cuda", 0), "dali")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic(root, num_classes=2, videos_per_class=8, frames=12, size=32, seed=1)
    summary = extract_flow(root / "UCF-101", root / "frames", algorithm="dis", workers=1, progress=False)
    assert not summary["failed"]
    return root


def _copy(synthetic, tmp_path):
    """A copy of the module's dataset, to corrupt."""
    return shutil.copytree(synthetic, tmp_path / "data")


DECODING = Decoding(backend="pyav", num_threads=1, on_error="skip")


def _train_loader(root, *, decoding=DECODING, sharding=Sharding(drop_last=True), flow=FlowSource()):
    return build_loader("ucf101", root, split=1, subset="train", frames_root=root / "frames", batch_size=1,
                        sampling=ClipSampling(num_segments=2, flow_length=1, size=16), sharding=sharding,
                        decoding=decoding, flow=flow)


def test_cuda_without_dali_builds_a_cpu_loader_with_pinned_batches(machine, synthetic):
    machine(True, False)
    # the device chosen by build_loader, as loader_device says
    clips = _train_loader(synthetic, decoding=replace(DECODING, backend="auto"))
    assert clips.device == "cpu" and clips.backend.name == "pyav"
    assert clips.pin_memory and clips.backend.pin_memory


def test_online_flow_on_a_dali_cuda_machine_builds_the_pinned_pyav_loader(machine, synthetic):
    machine(True, True)
    clips = _train_loader(synthetic, decoding=replace(DECODING, backend="auto"), flow=FlowSource.online())
    assert clips.device == "cpu" and clips.backend.name == "pyav" and clips.backend.online_flow is not None
    assert clips.pin_memory and clips.backend.pin_memory
    with pytest.raises(ValueError, match="device='gpu' needs backend='dali'"):
        _train_loader(synthetic, decoding=replace(DECODING, backend="auto", device="gpu"), flow=FlowSource.online())


def test_pinned_memory_needs_cuda(machine, synthetic):
    machine(False, False)
    assert not _train_loader(synthetic).pin_memory
    with pytest.raises(ValueError, match="pin_memory=True needs CUDA"):
        _train_loader(synthetic, decoding=replace(DECODING, pin_memory=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("flow_source", ["rawframes", "online"])
def test_cpu_batches_are_pinned_on_a_cuda_machine(synthetic, flow_source):
    batch = next(iter(_train_loader(synthetic, flow=FlowSource(flow_source))))
    assert all(t.is_pinned() for t in (batch.rgb, batch.flow, batch.mask, batch.label, batch.indices))
    moved = batch.to(torch.device("cuda"), non_blocking=True)
    torch.cuda.synchronize()
    assert torch.equal(moved.rgb.cpu(), batch.rgb)


@pytest.mark.parametrize("local_rank, visible, current, expected", [
    ("0", 8, 0, 0), ("3", 8, 0, 3), ("7", 8, 5, 7),
    (None, 8, 5, 5),   # not under torchrun: torch's current device
    ("3", 1, 0, 0),    # one GPU visible per process (CUDA_VISIBLE_DEVICES): its only device
])
def test_dali_device_is_the_local_ranks_gpu(monkeypatch, local_rank, visible, current, expected):
    if local_rank is None:
        monkeypatch.delenv("LOCAL_RANK", raising=False)
    else:
        monkeypatch.setenv("LOCAL_RANK", local_rank)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current)
    assert dali_pipeline.dali_device_id() == expected


def test_dali_device_rejects_a_malformed_local_rank(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "one")
    with pytest.raises(ValueError, match="LOCAL_RANK must be an integer, got 'one'"):
        dali_pipeline.dali_device_id()


@needs_dali
def test_each_ranks_dali_pipelines_and_outputs_use_its_gpu(monkeypatch):
    from jna_fast.data.backends import DaliBackend

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    for rank in range(4):
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        decoder = DaliBackend(16, 2, 1, 2, "gpu", 1, 0)  # pipelines are built on first use: no GPU touched here
        assert decoder.runner.device_id == rank and decoder.torch_device == torch.device("cuda", rank)
        assert not decoder.pin_memory


RANKS = 2


def _rank_main(rank: int, root, init_file: str, results_dir, epochs: int) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=RANKS,
                            timeout=timedelta(seconds=60))
    try:
        clips = _train_loader(root)  # shard from torch.distributed
        report = {"len": len(clips), "steps": [], "skipped": [], "replaced": []}
        for epoch in range(epochs):
            clips.set_epoch(epoch)
            steps = replaced = 0
            for batch in clips:
                assert len(batch) == 1
                total = torch.ones(1)
                dist.all_reduce(total)  # a collective per step, as DDP's gradient all-reduce
                steps += 1
                replaced += int(batch.replaced.sum())
            skipped = torch.tensor([clips.skipped_clips], dtype=torch.float64)
            dist.all_reduce(skipped)
            report["steps"].append(steps)
            report["skipped"].append(int(skipped))
            report["replaced"].append(replaced)
        (results_dir / f"rank{rank}.json").write_text(json.dumps(report))
    finally:
        dist.destroy_process_group()


def test_ranks_make_equal_steps_when_one_skips_clips(synthetic, tmp_path):
    # corrupt two clips of rank 0's shard in epoch 0: one unreadable video (found when probing), one with
    # unreadable flow JPEGs (found when decoding); rank 1's shard is clean, so a rank that skipped would make fewer
    # steps and the per-step collectives would stop matching
    root = _copy(synthetic, tmp_path)
    shard0 = _train_loader(root, sharding=Sharding(shard_id=0, num_shards=RANKS, drop_last=True))
    assert len(shard0.index.records) % RANKS == 0  # every clip is in a batch, so every bad one is met once
    first, second = (shard0.index.records[int(p)] for p in shard0.shard_positions(0)[:2])
    first.video_path.write_bytes(b"not a video" * 10)
    for flow_file in sorted(second.frames_dir.glob("flow_x_*.jpg"))[1:]:  # the folder scan reads only the first
        flow_file.write_bytes(b"not a jpeg")

    context = mp.spawn(_rank_main, args=(root, str(tmp_path / "init"), tmp_path, 2), nprocs=RANKS,
                       join=False)
    deadline = time.monotonic() + 240
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the ranks did not finish within 240 s: their step counts differ (collectives hang)")
    reports = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(RANKS)]
    for report in reports:
        assert report["steps"] == [report["len"]] * 2
    assert reports[0]["len"] == reports[1]["len"]
    assert [r["skipped"] for r in reports] == [[2, 2]] * RANKS  # summed over ranks: both bad clips, each once
    assert reports[0]["replaced"][0] == 2 and reports[1]["replaced"][0] == 0  # epoch 0: both on rank 0


def test_a_skipped_clip_is_reported_once_per_epoch_even_when_met_as_a_stand_in(synthetic, tmp_path):
    root = _copy(synthetic, tmp_path)
    clips = _train_loader(root, sharding=Sharding(shuffle=False, drop_last=True))
    records = clips.index.records
    records[1].video_path.write_bytes(b"broken")
    records[2].video_path.write_bytes(b"broken")
    batches = list(clips)
    # batch 0's clip is fine; batch 1's clip is bad and its stand-in search meets clip 2 (also bad) first
    assert [b.video_ids[0] for b in batches][:4] == [records[0].video_id, records[3].video_id,
                                                     records[3].video_id, records[3].video_id]
    assert [bool(b.replaced[0]) for b in batches][:4] == [False, True, True, False]
    assert clips.skipped_clips == 2
    with pytest.raises(DataError, match="unreadable video"):
        list(_train_loader(root, sharding=Sharding(shuffle=False, drop_last=True),
                                decoding=replace(DECODING, on_error="raise")))
