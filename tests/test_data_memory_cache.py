"""The in-memory clip source (docs/design.md §6.9): the same batches as the decoding path, bit for bit, for every
flow and RGB source, in training and test views, flips included; the size rule; the log line."""

import logging
import shutil
import threading

import numpy as np
import pytest
import torch

from jna_fast.data import ClipSampling, Decoding, FlowSource, Sharding, build_loader
from jna_fast.data.loader_settings import MIB, memory_limit, prefetch_depth
from jna_fast.data.memory_cache import use_memory_cache
from test_data_common import VIDEO_CODECS, make_video_dataset

HEIGHT, WIDTH = 24, 32
VIDEOS = {"walk/v_a": (16, "vp9", 1), "walk/v_b": (14, "h264", 2), "jump/v_c": (20, "mpeg4", 3),
          "jump/v_d": (12, "mjpeg", 4), "jump/v_e": (18, "vp9", 5)}
TRAIN = ClipSampling(num_segments=3, flow_length=2, size=16, flip=True)
TEST = ClipSampling(num_segments=4, flow_length=2, size=16, flip=True, num_crops=10)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    frames_root = tmp_path_factory.mktemp("rawframes")
    make_video_dataset(root, frames_root, VIDEOS, HEIGHT, WIDTH)
    lines = [f"{vid}{VIDEO_CODECS[codec][2]} {0 if vid.startswith('walk') else 1}"
             for vid, (_, codec, _) in VIDEOS.items()]
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    # The same folders as TSN's dense_flow writes them: N-1 img files (the first frame's dropped) for N-1 flows.
    dense = tmp_path_factory.mktemp("dense")
    rows = []
    for vid, (num_frames, _, _) in VIDEOS.items():
        shutil.copytree(frames_root / vid, dense / vid)
        (dense / vid / f"img_{num_frames:05d}.jpg").unlink()
        rows.append(f"{vid} {num_frames - 1} {0 if vid.startswith('walk') else 1}")
    (dense / "list.txt").write_text("\n".join(rows) + "\n")
    return root, frames_root, dense


def make_loader(dataset, source, sampling, memory="off", limit=None, seed=3):
    root, frames_root, dense = dataset
    subset = "train" if sampling.train is not False and sampling.num_crops == 1 else "test"
    decoding = Decoding(backend="pyav", num_threads=2, memory_cache=memory, memory_limit=limit)
    options = dict(subset=subset, batch_size=2, sampling=sampling, sharding=Sharding(seed=seed), decoding=decoding)
    if source == "dense_flow":
        return build_loader("rawframes", dense, list_file="list.txt", **options)
    if source.startswith("online"):
        flow = FlowSource.online("dis", quantise=source == "online")
        return build_loader("videos", root, list_file="list.txt", flow=flow, **options)
    decoding = Decoding(backend="pyav", num_threads=2, memory_cache=memory, memory_limit=limit,
                        rgb_source="frames" if source == "rawframes_frames" else "video")
    return build_loader("videos", root, list_file="list.txt", frames_root=frames_root,
                        **{**options, "decoding": decoding})


def epoch_batches(loader, epochs=2):
    batches = []
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        batches += list(loader)
    return batches


SOURCES = ["rawframes_video", "rawframes_frames", "dense_flow", "online", "online_float"]


@pytest.mark.parametrize("sampling", [TRAIN, TEST], ids=["train", "test10"])
@pytest.mark.parametrize("source", SOURCES)
def test_cached_batches_equal_decoded_ones(dataset, source, sampling):
    decoded = epoch_batches(make_loader(dataset, source, sampling))
    cached_loader = make_loader(dataset, source, sampling, memory="on")
    assert cached_loader.memory is not None and cached_loader.backend.memory is cached_loader.memory
    cached = epoch_batches(cached_loader)
    assert len(cached_loader.memory) == len(VIDEOS)
    assert len(decoded) == len(cached) > 0
    for a, b in zip(decoded, cached):
        assert a.video_ids == b.video_ids
        for name in ("rgb", "flow", "mask", "label", "indices", "replaced"):
            assert torch.equal(getattr(a, name), getattr(b, name)), (source, name)


def test_memory_holds_each_video_once_as_uint8(dataset):
    loader = make_loader(dataset, "rawframes_video", TRAIN, memory="on")
    epoch_batches(loader, 1)
    frames, flows = sum(n for n, _, _ in VIDEOS.values()), sum(n - 1 for n, _, _ in VIDEOS.values())
    assert loader.memory.nbytes == frames * HEIGHT * WIDTH * 3 + flows * 2 * HEIGHT * WIDTH == loader.memory_bytes
    video = next(iter(loader.memory._videos.values()))
    assert video.frames.dtype == video.flows.dtype == np.uint8


def test_size_rule():
    assert use_memory_cache("auto", 10, 10) and not use_memory_cache("auto", 11, 10)
    assert use_memory_cache("on", 1 << 40, 10) and not use_memory_cache("off", 0, 10)
    with pytest.raises(ValueError, match="memory_cache"):
        use_memory_cache("always", 0, 10)
    assert memory_limit(5) == 5 * MIB
    assert 0 < memory_limit(None)


def test_auto_caches_under_the_limit_and_refuses_over_it(dataset, caplog):
    need = sum(n * HEIGHT * WIDTH * 3 + (n - 1) * 2 * HEIGHT * WIDTH for n, _, _ in VIDEOS.values())
    with caplog.at_level(logging.INFO, logger="jna_fast.data"):
        under = make_loader(dataset, "rawframes_video", TRAIN, memory="auto", limit=need)
    assert under.memory is not None and under.memory_bytes == need
    assert f"caching {len(VIDEOS)} videos of the train split in memory: " in caplog.text
    assert "thread split: the loader 1 thread" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="jna_fast.data"):
        over = make_loader(dataset, "rawframes_video", TRAIN, memory="auto", limit=need - 1)
    assert over.memory is None and over.memory_bytes == 0
    assert "not caching the train split in memory" in caplog.text
    assert make_loader(dataset, "rawframes_video", TRAIN, memory="on", limit=1).memory is not None
    assert make_loader(dataset, "rawframes_video", TRAIN, memory="off").memory is None


def test_a_bad_video_fails_its_clips_as_without_the_cache(dataset, tmp_path):
    root, frames_root, _ = dataset
    broken = tmp_path / "frames"
    shutil.copytree(frames_root, broken)
    (broken / "walk/v_a/flow_x_00003.jpg").write_bytes(b"not a jpeg")
    counts = []
    for memory in ("off", "on"):
        loader = build_loader("videos", root, list_file="list.txt", frames_root=broken, batch_size=2,
                              sampling=ClipSampling(num_segments=3, flow_length=2, size=16, train=False),
                              decoding=Decoding(backend="pyav", num_threads=2, on_error="skip", memory_cache=memory))
        list(loader)
        counts.append(loader.skipped_clips)
    assert counts[1] == 1 and counts[0] <= 1


def test_batches_from_memory_are_assembled_between_the_steps_without_a_gpu(dataset, monkeypatch):
    """Served from memory with no GPU to train on, each batch is assembled when the step asks for it: a prefetching
    thread would take a core from the step's intra-op threads (docs/design.md §6.9). Decoding, or with a GPU, two
    batches are assembled ahead; a prefetch the caller sets is kept."""
    def prefetch_threads():
        return {thread for thread in threading.enumerate() if thread.name == "jna_fast_data_prefetch"}

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cached = make_loader(dataset, "rawframes_video", TRAIN, memory="on")
    assert cached.prefetch == 0
    before = prefetch_threads()
    batches = iter(cached)
    next(batches)
    assert prefetch_threads() <= before  # no thread of its own (any other loader's left running is not its)
    batches.close()
    decoding = make_loader(dataset, "rawframes_video", TRAIN)
    assert decoding.prefetch == 2
    before = prefetch_threads()
    batches = iter(decoding)
    next(batches)
    assert prefetch_threads() - before
    batches.close()
    assert prefetch_depth(1, from_memory=True) == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert prefetch_depth(None, from_memory=True) == 2 and prefetch_depth(0, from_memory=False) == 0
