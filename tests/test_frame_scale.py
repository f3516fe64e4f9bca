"""Prediction decodes a video at the scale of the checkpoint's training frames (its data settings' short_side):
the frames are resized as they are decoded (io.video.frame_to_rgb's size, VideoStream's short_side, the loader's
Decoding.short_side), so a 4K video is predicted as the same video resized beforehand (from its full-size RGB
frames) is, whatever the camera; a checkpoint without the setting gets its dataset kind's, and one with a bad value
is refused."""

import re
import shutil

import cv2
import numpy as np
import pytest

from conftest import make_checkpoint
from test_data_common import write_video
from jna_fast.builders import TSN_SHORT_SIDE, data_settings
from jna_fast.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from jna_fast.config import parse_args
from jna_fast.data import ClipSampling, Decoding, FlowSource, build_loader
from jna_fast.data.synthetic import DEFAULT_FRAME_SIZE
from jna_fast.inference import Predictor
from jna_fast.io.video import VideoStream, decode_frames, short_side_size
from jna_fast.predict import main as predict

HEIGHT, WIDTH, FRAMES = 2160, 3840, 4
SHORT_SIDE = 64
SMALL = short_side_size(HEIGHT, WIDTH, SHORT_SIDE)  # (64, 114)


def scenes() -> list[np.ndarray]:
    """4K frames: a smooth texture panning 60 px a frame (beyond the flow bound at this size, 2 px at 64 px) and a
    red disc crossing it."""
    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.uniform(40, 220, (9, 20, 3)).astype(np.uint8), (WIDTH + 60 * FRAMES, HEIGHT),
                         interpolation=cv2.INTER_CUBIC)
    frames = [np.ascontiguousarray(texture[:, 60 * index:60 * index + WIDTH]) for index in range(FRAMES)]
    for index, image in enumerate(frames):
        cv2.circle(image, (WIDTH // 4 + 90 * index, HEIGHT // 2), HEIGHT // 6, (230, 30, 30), -1)
    return frames


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """The 4K video (MPEG-4, yuv420p) and the same video resized to a short side of 64 beforehand (its full-size
    RGB frames through an area filter), stored losslessly."""
    folder = tmp_path_factory.mktemp("scale")
    big = write_video(folder / "big", np.stack(scenes()), "mpeg4", fps=10, options={"qscale": "2"})
    resized = [cv2.resize(frame, SMALL[::-1], interpolation=cv2.INTER_AREA)
               for frame in decode_frames(big, range(FRAMES))]
    small = write_video(folder / "small", np.stack(resized), "rgb-lossless", fps=10, options={"qp": "0"})
    return {"big": big, "small": small, "resized": np.stack(resized)}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A two-stream checkpoint (32 px crops, L = 2) trained, says its data settings, on frames of short side 64."""
    path = make_checkpoint(tmp_path_factory.mktemp("checkpoint"), ["--test-segments", "2"], ["a", "b", "c"])
    return with_data(path, short_side=SHORT_SIDE)


def with_data(path, **settings):
    state = load_checkpoint(path)
    state["data"].update(settings)
    save_checkpoint(path, state)
    return path


def test_frames_are_resized_as_they_are_decoded(videos):
    decoded = decode_frames(videos["big"], [0, 3, 2], size=SMALL)
    assert decoded.shape == (3, *SMALL, 3)
    # The planes resized before the colour conversion: the pixels of the full-size RGB resized, to a level.
    difference = np.abs(decoded.astype(int) - videos["resized"][[0, 3, 2]])
    assert difference.mean() < 0.5 and difference.max() <= 8
    with VideoStream(videos["big"], short_side=SHORT_SIDE) as stream:
        assert (stream.height, stream.width) == SMALL
        streamed = np.stack(list(stream))
    np.testing.assert_array_equal(streamed, decode_frames(videos["big"], range(FRAMES), size=SMALL))


def test_prediction_decodes_at_the_checkpoints_scale(checkpoint, videos, monkeypatch):
    import jna_fast.data.backends as backends

    shapes, real_decode = [], backends.decode_frames

    def recording_decode(*args, **kwargs):
        frames = real_decode(*args, **kwargs)
        shapes.append(frames.shape)
        return frames

    monkeypatch.setattr(backends, "decode_frames", recording_decode)
    model = Predictor.from_checkpoint(checkpoint)
    assert model.short_side == SHORT_SIDE
    big = model.analyse(videos["big"], top_k=3, segments=2, crops=3)
    assert shapes and all(shape[1:] == (*SMALL, 3) for shape in shapes)
    small = model.analyse(videos["small"], top_k=3, segments=2, crops=3)
    assert big.prediction.snippet_starts == small.prediction.snippet_starts
    # The same up to the resize filters (measured: 4e-5; decoded at 4K, the probabilities differ by 4e-3: the
    # texture moves 60 px a frame there, beyond the flow bound of 20 px, and 2 px at the training scale).
    np.testing.assert_allclose(big.prediction.probabilities, small.prediction.probabilities, atol=5e-4)
    np.testing.assert_allclose(big.prediction.attention, small.prediction.attention, atol=5e-4)
    # What the model saw (the centre crops, and the magnitude of their first flow field in bound units): measured
    # 0.04 and 3e-4 here, 1.1 and 0.04 decoded at 4K.
    for name, tolerance in (("rgb", 0.3), ("flow_magnitude", 0.005)):
        difference = np.abs(big.pictures[name].astype(float) - small.pictures[name].astype(float))
        assert difference.mean() < tolerance, name


def test_long_videos_are_decoded_at_the_checkpoints_scale(checkpoint, videos):
    model = Predictor.from_checkpoint(checkpoint)
    big = model.predict_long_video(videos["big"], window=0.3, stride=0.1, top_k=3, segments=2)
    small = model.predict_long_video(videos["small"], window=0.3, stride=0.1, top_k=3, segments=2)
    assert len(big.windows) == len(small.windows) == 2
    for ours, theirs in zip(big.windows, small.windows):
        np.testing.assert_allclose(ours.scores, theirs.scores, atol=5e-4)
        np.testing.assert_allclose(ours.attention, theirs.attention, atol=5e-4)


def test_the_loader_resizes_online_flow_frames_and_reports_the_training_scale(videos):
    def loader(short_side, flow=FlowSource.online()):
        return build_loader("video", videos["big"], subset="test", batch_size=1,
                            sampling=ClipSampling(num_segments=2, flow_length=2, size=32),
                            decoding=Decoding(backend="pyav", device="cpu", prefetch=0, short_side=short_side),
                            flow=flow)

    assert loader(None).frame_short_side() == HEIGHT
    scaled = loader(SHORT_SIDE)
    assert scaled.frame_short_side() == SHORT_SIDE and scaled.request(0).flow_size == SMALL
    cfg = parse_args(["--root", "no-data", "--size", "32"])
    assert data_settings(cfg, scaled.frame_short_side())["short_side"] == SHORT_SIDE
    with pytest.raises(ValueError, match="short_side=64: .* online flow"):
        loader(SHORT_SIDE, flow=FlowSource())
    with pytest.raises(ValueError, match="short_side=0"):
        loader(0)


@pytest.mark.parametrize("dataset, expected", [("synthetic", DEFAULT_FRAME_SIZE), ("ucf101", TSN_SHORT_SIDE)])
def test_a_checkpoint_without_the_training_scale_gets_its_dataset_kinds(tmp_path, dataset, expected):
    path = make_checkpoint(tmp_path, ["--dataset", dataset, "--backbone", "resnet18", "--streams", "rgb",
                                      "--share-after", "", "--consensus", "average"], ["a", "b"])
    state = load_checkpoint(path)
    del state["data"]["short_side"]  # as saved before the setting existed
    save_checkpoint(path, state)
    assert Predictor.from_checkpoint(path).short_side == expected


@pytest.mark.parametrize("value", [0, -64, 64.5, "64", True])
def test_a_bad_training_scale_is_refused_by_name(tiny_checkpoint, tmp_path, capsys, value):
    path = tmp_path / "bad.pt"
    shutil.copyfile(tiny_checkpoint, path)
    with_data(path, short_side=value)
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: data.short_side: ")):
        Predictor.from_checkpoint(path)
    assert predict([str(path), str(tmp_path / "any.mp4")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith(f"error: {path}: data.short_side: "), error
