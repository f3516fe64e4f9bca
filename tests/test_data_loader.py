"""Decoding, flow assembly, augmentation, backends and sharding of the clip loader, on small real files."""

import dataclasses

import av
import numpy as np
import pytest
import torch

from jna_fast.data import (FLOW_CENTRE, IMAGENET_MEAN, IMAGENET_STD, ClipSampling, Decoding, Sharding, build_loader,
                           decode_frames, flow_stack_indices, tsn_snippet_starts)
from jna_fast.data.dali_pipeline import dali_available, dali_decodes
from test_data_common import (VIDEO_CODECS, flow_code, make_video_dataset, smooth_frames, video_path,
                              write_rawframes, write_video)

needs_dali = pytest.mark.skipif(not dali_available(), reason="nvidia-dali is not installed")
BACKENDS = [pytest.param("dali", marks=needs_dali), "pyav"]
HEIGHT, WIDTH = 24, 32
VIDEOS = {"walk/v_a": (16, "vp9", 1), "walk/v_b": (14, "h264", 2), "jump/v_c": (20, "mpeg4", 3),
          "jump/v_d": (12, "mjpeg", 4), "jump/v_e": (18, "vp9", 5)}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    frames_root = tmp_path_factory.mktemp("rawframes")
    sources = make_video_dataset(root, frames_root, VIDEOS, HEIGHT, WIDTH)
    lines = [f"{vid}{VIDEO_CODECS[codec][2]} {0 if vid.startswith('walk') else 1}"
             for vid, (_, codec, _) in VIDEOS.items()]
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    return root, frames_root, sources


def loader(dataset, backend, *, subset="train", batch_size=2,
           sampling=ClipSampling(num_segments=3, flow_length=2, size=16), sharding=Sharding()):
    root, frames_root, _ = dataset
    return build_loader("videos", root, list_file="list.txt", frames_root=frames_root, subset=subset,
                        batch_size=batch_size, sampling=sampling, sharding=sharding,
                        decoding=Decoding(backend=backend, num_threads=2))


def pyav_rgb24(path):
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


@pytest.mark.parametrize("codec", list(VIDEO_CODECS))
def test_decoded_frames_are_pyavs_frames_at_the_indices(dataset, codec):
    root, _, _ = dataset
    video_id = next(v for v, (_, c, _) in VIDEOS.items() if c == codec)
    path = video_path(root, video_id, codec)
    reference = pyav_rgb24(path).astype(np.float32)
    indices = [0, 5, 11, 5, len(reference) - 1]
    decoded = decode_frames(path, indices).astype(np.float32)
    for frame, index in zip(decoded, indices):
        errors = np.abs(reference - frame).mean(axis=(1, 2, 3))
        # PyAV's own rgb24 conversion upsamples chroma differently (a few codes); the frame must still be
        # PyAV's frame `index`, much closer to it than to any other frame
        assert errors.argmin() == index
        assert errors[index] * 3 < np.delete(errors, index).min()


@needs_dali
@pytest.mark.parametrize("codec, decodes", [("vp9", True), ("mjpeg", True), ("h264", False), ("mpeg4", False)])
def test_dali_cpu_codec_probe_and_colour_match(dataset, codec, decodes):
    from nvidia.dali import fn, pipeline_def, types

    root, _, _ = dataset
    video_id = next(v for v, (_, c, _) in VIDEOS.items() if c == codec)
    path = video_path(root, video_id, codec)
    assert dali_decodes(codec, path, "cpu") is decodes
    if not decodes:
        return

    @pipeline_def(batch_size=1, num_threads=1, device_id=None)
    def whole_video():
        return fn.decoders.video(fn.external_source(name="encoded", dtype=types.UINT8), device="cpu")

    pipe = whole_video()
    pipe.build()
    pipe.feed_input("encoded", [np.fromfile(path, np.uint8)])
    dali_frames = np.array(pipe.run()[0].at(0)).astype(np.int32)
    ours = decode_frames(path, range(len(dali_frames))).astype(np.int32)
    # the PyAV path converts YUV the way DALI does: equal up to one rounding step
    assert np.abs(dali_frames - ours).max() <= 1


def denormalise_rgb(rgb):
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1) * 255
    return rgb * std + mean


@pytest.mark.parametrize("backend", BACKENDS)
def test_test_mode_values_indices_and_flow_order(dataset, backend):
    _, _, sources = dataset
    # centre crop of the whole short side at its own size: no resampling, so values are exact
    clips = loader(dataset, backend, subset="test", batch_size=3,
                   sampling=ClipSampling(num_segments=4, flow_length=3, size=HEIGHT, test_crop_scale=1.0))
    assert len(clips) == 2
    seen = []
    for batch in clips:
        assert batch.rgb.shape[1:] == (4, 3, HEIGHT, HEIGHT) and batch.flow.shape[1:] == (4, 6, HEIGHT, HEIGHT)
        assert batch.rgb.dtype == torch.float32 and batch.flow.dtype == torch.float32
        for b, video_id in enumerate(batch.video_ids):
            num_frames = VIDEOS[video_id][0]
            starts, mask = tsn_snippet_starts(num_frames, 4, 3, train=False)
            assert batch.indices[b].tolist() == starts.tolist() and batch.mask[b].all()
            assert batch.label[b].item() == (0 if video_id.startswith("walk") else 1)
            stacks = flow_stack_indices(starts, 3, num_frames - 1)
            left = (WIDTH - HEIGHT) // 2
            for t in range(4):
                for k in range(6):
                    code = flow_code(int(stacks[t, k // 2]), k % 2, num_frames - 1)
                    expected = torch.full((HEIGHT, WIDTH), float(code))
                    expected[:, WIDTH // 2:] = 255 - code
                    expected = (expected[:, left:left + HEIGHT] - FLOW_CENTRE) / FLOW_CENTRE
                    torch.testing.assert_close(batch.flow[b, t, k], expected, rtol=0, atol=1e-6)
            rgb = denormalise_rgb(batch.rgb[b])
            source = torch.from_numpy(sources[video_id][:, :, left:left + HEIGHT]).permute(0, 3, 1, 2).float()
            for t, start in enumerate(starts):
                # lossy video vs its source: snippet t must be source frame `start`, closer to it than to any other
                errors = (source - rgb[t]).abs().mean(dim=(1, 2, 3))
                assert errors.argmin() == start and errors[start] * 2 < errors[np.arange(len(errors)) != start].min()
            seen.append(video_id)
    assert sorted(seen) == sorted(VIDEOS)


@needs_dali
@pytest.mark.parametrize("num_crops", [1, 10])
def test_dali_and_pyav_backends_agree(dataset, num_crops):
    outputs = {}
    for backend in ("dali", "pyav"):
        batches = list(loader(dataset, backend, subset="test", batch_size=5, sampling=ClipSampling(
            num_segments=3, flow_length=2, size=HEIGHT, test_crop_scale=1.0, num_crops=num_crops)))
        assert len(batches) == 1 and batches[0].rgb.shape[0] == 5 * num_crops
        outputs[backend] = batches[0]
    dali, pyav = outputs["dali"], outputs["pyav"]
    assert dali.video_ids == pyav.video_ids and torch.equal(dali.indices, pyav.indices)
    torch.testing.assert_close(dali.flow, pyav.flow, rtol=0, atol=1e-6)
    # DALI decodes VP9/MJPEG itself, PyAV the others: one rounding step of YUV conversion at most
    step = 1.0 / (255 * min(IMAGENET_STD))
    assert (dali.rgb - pyav.rgb).abs().max() <= step + 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_flip_mirrors_both_streams_and_negates_flow_x(dataset, backend):
    clips = loader(dataset, backend, subset="train", sharding=Sharding(seed=3))
    request = clips.request(0)
    (crop,) = request.crops
    flipped = dataclasses.replace(request, crops=(dataclasses.replace(crop, flip=not crop.flip),))
    rgb, flow, failures = clips.backend.decode([request, flipped])
    assert not failures
    torch.testing.assert_close(rgb[1], rgb[0].flip(-1), rtol=0, atol=1e-5)
    torch.testing.assert_close(flow[1, :, 1::2], flow[0, :, 1::2].flip(-1), rtol=0, atol=1e-6)
    torch.testing.assert_close(flow[1, :, 0::2], -flow[0, :, 0::2].flip(-1), rtol=0, atol=1e-6)
    assert (flow[0, :, 0::2] - flow[1, :, 0::2].flip(-1)).abs().max() > 0.1  # the negation is visible


@pytest.mark.parametrize("backend", BACKENDS)
def test_crop_and_flip_are_shared_by_rgb_and_flow(tmp_path, backend):
    # img, flow_x and flow_y hold the same grey blocks, so after any shared crop/flip the RGB (in grey levels) and
    # the flow (un-negated) must be the same image
    rng = np.random.default_rng(0)
    blocks = rng.integers(30, 226, size=(10, 3, 4)).astype(np.uint8)
    pattern = blocks.repeat(8, axis=1).repeat(8, axis=2)  # [10 frames, 24, 32], constant on 8x8 blocks
    write_rawframes(tmp_path / "clip", np.repeat(pattern[..., None], 3, axis=-1), pattern[:-1], pattern[:-1])
    (tmp_path / "list.txt").write_text("clip 10 0\n")
    clips = build_loader("rawframes", tmp_path, list_file="list.txt", batch_size=1,
                         sampling=ClipSampling(num_segments=3, flow_length=1, size=20),
                         decoding=Decoding(backend=backend, num_threads=1, prefetch=0))
    flips = set()
    for epoch in range(6):
        clips.set_epoch(epoch)
        (batch,) = list(clips)
        flips.add(clips.request(0, epoch).crops[0].flip)
        grey = denormalise_rgb(batch.rgb[0])
        assert (grey[:, 0] - grey[:, 1]).abs().max() < 1e-3
        flow = batch.flow[0]
        sign = -1.0 if clips.request(0, epoch).crops[0].flip else 1.0
        x_levels = flow[:, 0] * sign * FLOW_CENTRE + FLOW_CENTRE
        y_levels = flow[:, 1] * FLOW_CENTRE + FLOW_CENTRE
        assert (y_levels - grey[:, 0]).abs().max() < 1e-2
        assert (x_levels - grey[:, 0]).abs().max() < 1e-2
        assert (y_levels - grey[:, 0].flip(-1)).abs().max() > 10  # a mismatched flip would be caught
    assert flips == {False, True}


@pytest.mark.parametrize("backend", BACKENDS)
def test_rgb_from_video_aligns_with_flow_extracted_at_another_size(tmp_path, backend):
    # the flow folder is at twice the video's resolution (extraction with a resize); crops are relative
    frames = smooth_frames(12, HEIGHT, WIDTH, seed=7)
    write_video(tmp_path / "videos" / "v", frames, "mjpeg")
    grey = ((frames[..., 0].astype(np.uint16) + frames[..., 1]) // 2).astype(np.uint8)  # varies along x and y
    big = np.stack([np.kron(g, np.ones((2, 2), np.uint8)) for g in grey])
    write_rawframes(tmp_path / "frames" / "v", None, big[:-1], big[:-1])
    (tmp_path / "videos" / "list.txt").write_text("v.avi 0\n")
    clips = build_loader("videos", tmp_path / "videos", list_file="list.txt", frames_root=tmp_path / "frames",
                         batch_size=1, sampling=ClipSampling(num_segments=3, flow_length=1, size=16),
                         decoding=Decoding(backend=backend, prefetch=0))
    for epoch in range(4):
        clips.set_epoch(epoch)
        (batch,) = list(clips)
        rgb = denormalise_rgb(batch.rgb[0])
        red_green = (rgb[:, 0] + rgb[:, 1]) / 2
        flow_y = batch.flow[0, :, 1] * FLOW_CENTRE + FLOW_CENTRE
        aligned = (red_green - flow_y).abs().mean()
        assert aligned < 6
        assert (red_green - flow_y.flip(-1)).abs().mean() > 3 * aligned
        assert (red_green - flow_y.flip(-2)).abs().mean() > 3 * aligned


@pytest.mark.parametrize("num_shards", [1, 2, 3])
def test_shards_are_disjoint_and_cover_every_video_once(dataset, num_shards):
    for epoch in (0, 1):
        seen = []
        for shard in range(num_shards):
            clips = loader(dataset, "pyav", sharding=Sharding(shard_id=shard, num_shards=num_shards))
            clips.set_epoch(epoch)
            ids = [video_id for batch in clips for video_id in batch.video_ids]
            assert len(ids) <= len(clips) * clips.batch_size
            seen += ids
        assert sorted(seen) == sorted(VIDEOS)


def test_epochs_reshuffle_and_are_deterministic(dataset):
    clips = loader(dataset, "pyav")
    orders = [clips.shard_positions(epoch).tolist() for epoch in range(4)]
    assert len({tuple(order) for order in orders}) > 1
    assert orders[2] == loader(dataset, "pyav").shard_positions(2).tolist()
    first, again = (next(iter(loader(dataset, "pyav", sharding=Sharding(seed=5)))) for _ in range(2))
    assert torch.equal(first.rgb, again.rgb) and torch.equal(first.indices, again.indices)


def test_drop_last_gives_every_rank_the_same_number_of_batches(dataset):
    # 5 videos over 2 shards: shards of 2 and 3 videos; with batch 2 and drop_last both ranks run 1 step.
    counts = []
    for shard in range(2):
        clips = loader(dataset, "pyav", sharding=Sharding(shard_id=shard, num_shards=2, drop_last=True))
        counts.append((len(clips), sum(1 for _ in clips)))
    assert counts == [(1, 1), (1, 1)]


def test_batches_resume_from_a_batch_number_without_repeating(dataset):
    clips = loader(dataset, "pyav", sharding=Sharding(seed=3))
    clips.set_epoch(1)
    full = [batch.video_ids for batch in clips]
    resumed = [batch.video_ids for batch in clips.batches(start_batch=1)]
    assert len(full) == 3 and resumed == full[1:]
