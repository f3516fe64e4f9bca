"""TSN test-time views (1 / 3 / 10 crops) and the flip switch: crop geometry, the views' pixels and flow values,
the batch layout, one decode per clip."""

import numpy as np
import pytest
import torch

from jna_fast.data import (FLOW_CENTRE, IMAGENET_MEAN, IMAGENET_STD, ClipSampling, Decoding, build_loader,
                           sample_train_crop, tsn_test_crops, tsn_view_count)
from jna_fast.data import backends
from jna_fast.data.dali_pipeline import dali_available
from test_data_common import VIDEO_CODECS, make_video_dataset, write_rawframes

BACKENDS = [pytest.param("dali", marks=pytest.mark.skipif(not dali_available(), reason="no nvidia-dali")), "pyav"]


def _window(crop):
    return crop.top, crop.left, crop.height, crop.width, crop.flip


def test_ten_crops_are_the_corners_and_centre_then_their_mirrors():
    # 240 x 320 frame, 0.875 of the short side: 210 px squares; 30 px of play vertically, 110 horizontally
    views = tsn_test_crops(240, 320, 0.875, num_crops=10)
    corners_and_centre = [(0, 0), (0, 110), (30, 0), (30, 110), (15, 55)]
    assert [_window(c) for c in views] == [(t, l, 210, 210, False) for t, l in corners_and_centre] + \
        [(t, l, 210, 210, True) for t, l in corners_and_centre]
    assert all((c.frame_height, c.frame_width) == (240, 320) for c in views)


def test_three_crops_run_along_the_long_side():
    landscape = tsn_test_crops(240, 320, 0.875, num_crops=3)
    assert [_window(c) for c in landscape] == [(15, 0, 210, 210, False), (15, 55, 210, 210, False),
                                               (15, 110, 210, 210, False)]
    portrait = tsn_test_crops(320, 240, 1.0, num_crops=3)
    assert [_window(c) for c in portrait] == [(0, 0, 240, 240, False), (40, 0, 240, 240, False),
                                              (80, 0, 240, 240, False)]


def test_one_crop_is_the_centre_and_flip_off_leaves_five_unmirrored_views():
    assert [_window(c) for c in tsn_test_crops(240, 320, 0.875, num_crops=1)] == [(15, 55, 210, 210, False)]
    unflipped = tsn_test_crops(240, 320, 0.875, num_crops=10, flip=False)
    assert [_window(c) for c in unflipped] == [_window(c) for c in tsn_test_crops(240, 320, 0.875, 10)[:5]]
    assert [tsn_view_count(n, flip) for n in (1, 3, 10) for flip in (True, False)] == [1, 1, 3, 3, 10, 5]
    with pytest.raises(ValueError, match="num_crops must be one of"):
        tsn_test_crops(240, 320, 0.875, num_crops=5)


def test_training_crops_never_flip_when_flip_is_off_and_keep_their_windows():
    crops = [(sample_train_crop(240, 320, np.random.default_rng(seed)),
              sample_train_crop(240, 320, np.random.default_rng(seed), flip=False)) for seed in range(40)]
    assert {on.flip for on, _ in crops} == {False, True} and not any(off.flip for _, off in crops)
    assert all(_window(on)[:4] == _window(off)[:4] for on, off in crops)


HEIGHT, WIDTH, SIDE = 24, 32, 12


@pytest.fixture(scope="module")
def block_dataset(tmp_path_factory):
    """One rawframes clip whose img, flow_x and flow_y frames are distinct random grey levels on 8x8 blocks (JPEG
    keeps them exactly), so every view's pixels can be checked against the source window."""
    root = tmp_path_factory.mktemp("views")
    rng = np.random.default_rng(0)
    patterns = rng.integers(30, 226, size=(3, 10, HEIGHT // 8, WIDTH // 8)).astype(np.uint8)
    patterns = patterns.repeat(8, axis=2).repeat(8, axis=3)  # [img|x|y, 10 frames, H, W]
    write_rawframes(root / "clip", np.repeat(patterns[0][..., None], 3, axis=-1), patterns[1][:-1],
                    patterns[2][:-1])
    (root / "list.txt").write_text("clip 10 0\n")
    return root, patterns


def _views_loader(root, backend, num_crops, flip=True):
    return build_loader("rawframes", root, list_file="list.txt", subset="test", batch_size=1,
                        sampling=ClipSampling(num_segments=3, flow_length=1, size=SIDE, test_crop_scale=SIDE / HEIGHT,
                                              num_crops=num_crops, flip=flip),
                        decoding=Decoding(backend=backend, num_threads=1, prefetch=0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_ten_views_hold_their_windows_and_mirrored_views_negate_flow_x(block_dataset, backend):
    root, patterns = block_dataset
    clips = _views_loader(root, backend, num_crops=10)
    (batch,) = list(clips)
    assert batch.num_views == 10 and len(batch) == 1
    assert batch.rgb.shape == (10, 3, 3, SIDE, SIDE) and batch.flow.shape == (10, 3, 2, SIDE, SIDE)
    assert batch.view_mask().shape == (10, 3) and batch.mask.shape == (1, 3)
    frames = batch.indices[0].numpy()
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1) * 255
    crops = tsn_test_crops(HEIGHT, WIDTH, SIDE / HEIGHT, 10)
    for view, crop in enumerate(crops):
        window = np.s_[:, crop.top:crop.top + SIDE, crop.left:crop.left + SIDE]
        source = {name: torch.from_numpy(patterns[k][frames][window]).float() for k, name in enumerate("ixy")}
        if crop.flip:
            source = {name: image.flip(-1) for name, image in source.items()}
        grey = batch.rgb[view] * std + mean
        for channel in range(3):
            torch.testing.assert_close(grey[:, channel], source["i"], rtol=0, atol=1e-2)
        sign = -1.0 if crop.flip else 1.0  # a mirrored view's motion is mirrored: x negated (255 - v)
        torch.testing.assert_close(batch.flow[view, :, 0], sign * (source["x"] - FLOW_CENTRE) / FLOW_CENTRE,
                                   rtol=0, atol=1e-6)
        torch.testing.assert_close(batch.flow[view, :, 1], (source["y"] - FLOW_CENTRE) / FLOW_CENTRE,
                                   rtol=0, atol=1e-6)
    torch.testing.assert_close(batch.flow[5:, :, 0], -batch.flow[:5, :, 0].flip(-1), rtol=0, atol=1e-6)
    # the five windows differ from each other, so a view in the wrong place is caught
    assert all((batch.rgb[a] - batch.rgb[b]).abs().max() > 0.1 for a in range(5) for b in range(a))


@pytest.mark.parametrize("backend", BACKENDS)
def test_view_counts_and_flip_off(block_dataset, backend):
    root, _ = block_dataset
    for num_crops, flip, views in ((1, True, 1), (3, True, 3), (10, False, 5)):
        (batch,) = list(_views_loader(root, backend, num_crops, flip))
        assert batch.num_views == views and batch.rgb.shape[0] == views and batch.flow.shape[0] == views
    ten = next(iter(_views_loader(root, backend, 10)))
    five = next(iter(_views_loader(root, backend, 10, flip=False)))
    torch.testing.assert_close(five.rgb, ten.rgb[:5], rtol=0, atol=1e-5)
    torch.testing.assert_close(five.flow, ten.flow[:5], rtol=0, atol=1e-6)
    centre = next(iter(_views_loader(root, backend, 1)))
    torch.testing.assert_close(centre.rgb, ten.rgb[4:5], rtol=0, atol=1e-5)


def test_scores_average_over_each_clips_views(block_dataset):
    root, _ = block_dataset
    (batch,) = list(_views_loader(root, "pyav", 3))
    scores = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    torch.testing.assert_close(batch.mean_over_views(scores), torch.tensor([[0.5, 0.5]]))


def test_num_crops_is_test_time_only(block_dataset):
    root, _ = block_dataset
    with pytest.raises(ValueError, match="num_crops=3 is a test-time setting"):
        build_loader("rawframes", root, list_file="list.txt", subset="train", sampling=ClipSampling(num_crops=3),
                     decoding=Decoding(backend="pyav"))


def test_pyav_decodes_each_clip_once_for_all_its_views(tmp_path, monkeypatch):
    make_video_dataset(tmp_path / "videos", tmp_path / "frames", {"a/v": (12, "mpeg4", 1), "b/w": (14, "h264", 2)})
    (tmp_path / "videos" / "list.txt").write_text(
        f"a/v{VIDEO_CODECS['mpeg4'][2]} 0\nb/w{VIDEO_CODECS['h264'][2]} 1\n")
    calls = []
    real_decode = backends.decode_frames

    def counted_decode(path, indices):
        calls.append(path)
        return real_decode(path, indices)

    monkeypatch.setattr(backends, "decode_frames", counted_decode)
    clips = build_loader("videos", tmp_path / "videos", list_file="list.txt", frames_root=tmp_path / "frames",
                         subset="test", batch_size=2,
                         sampling=ClipSampling(num_segments=2, flow_length=1, size=16, num_crops=10),
                         decoding=Decoding(backend="pyav", prefetch=0))
    (batch,) = list(clips)
    assert batch.rgb.shape[:2] == (20, 2) and batch.video_ids == ["a/v", "b/w"]
    assert len(calls) == 2 and len(set(calls)) == 2
