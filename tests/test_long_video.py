"""Long-video prediction (jna_fast.inference.predict_long_video, ``predict --window``): the windows' frames and
times, each window scored as a short video is, one streaming decode with a buffer of one window's frames, the JSON,
the timeline PNG and the annotated MP4, and the errors."""

import json
import subprocess
import sys

import av
import numpy as np
import pytest

from conftest import make_checkpoint
from jna_fast.io.video import decode_frames, short_side_size
from jna_fast.inference import (Predictor, check_window_seconds, predict_long_video, window_bounds, window_frames)
from jna_fast.predict import main as predict

FPS = 10


def make_video(path, frames: int, fps: int = FPS, height: int = 48, width: int = 64):
    """An MPEG-4 video of a square sliding right, changing colour with time."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            image = np.full((height, width, 3), 30, np.uint8)
            x = (3 * index) % (width - 10)
            image[10:22, x:x + 10] = (250, 8 * index % 250, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def two_stream_checkpoint(tmp_path_factory):
    """A two-stream JNA checkpoint (untrained ResNet-18 branches, cross-stitch, joint attention, 32 px, L = 2,
    3 classes): the flow branch makes prediction compute the online flow."""
    return make_checkpoint(tmp_path_factory.mktemp("two_stream"), ["--test-segments", "2"], ["a", "b", "c"])


@pytest.fixture(scope="module")
def model(two_stream_checkpoint):
    return Predictor.from_checkpoint(two_stream_checkpoint)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return {"short": make_video(folder / "short.mp4", 15), "long": make_video(folder / "long.mp4", 57),
            "one_frame": make_video(folder / "one.mp4", 1)}


# --- windows ---------------------------------------------------------------------------------------------------
def test_window_frames_round_to_frames_with_floors():
    assert window_frames(2.0, 1.0, 25) == (50, 25)
    assert window_frames(2.0, 0.5, 29.97) == (60, 15)
    assert window_frames(0.01, 0.01, 25) == (2, 1)  # one flow pair, one frame of stride at least


@pytest.mark.parametrize("num_frames, length, stride, expected", [
    (57, 20, 10, [(0, 20), (10, 20), (20, 20), (30, 20), (37, 20)]),   # a tail window ends at the last frame
    (50, 20, 10, [(0, 20), (10, 20), (20, 20), (30, 20)]),             # the last full window ends there already
    (20, 20, 10, [(0, 20)]),                                            # exactly one window
    (15, 20, 10, [(0, 15)]),                                            # shorter than a window: one window
    (100, 20, 30, [(0, 20), (30, 20), (60, 20), (80, 20)]),             # stride > window: gaps, then the tail
    (5, 2, 1, [(0, 2), (1, 2), (2, 2), (3, 2)]),
])
def test_window_bounds(num_frames, length, stride, expected):
    assert window_bounds(num_frames, length, stride) == expected


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "two", None])
def test_window_seconds_are_checked(value):
    with pytest.raises(ValueError, match=r"^stride: .*got"):
        check_window_seconds("stride", value)


# --- scoring ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["two_stream", "rgb"])
def test_a_video_shorter_than_a_window_is_scored_as_predict_scores_it(which, model, tiny_checkpoint, videos):
    net = model if which == "two_stream" else Predictor.from_checkpoint(tiny_checkpoint)
    short = net.predict(videos["short"], top_k=3, segments=4, crops=3)
    long = predict_long_video(net, videos["short"], window=2.0, stride=1.0, top_k=3, segments=4, crops=3)
    assert len(long.windows) == 1 and long.num_frames == 15
    window = long.windows[0]
    assert (window.first_frame, window.num_frames, window.start, window.end) == (0, 15, 0.0, 1.5)
    assert window.class_indices == short.class_indices == long.class_indices
    np.testing.assert_allclose(window.probabilities, short.probabilities, atol=1e-5)
    np.testing.assert_allclose(long.probabilities, short.probabilities, atol=1e-5)
    assert window.snippet_starts == short.snippet_starts
    np.testing.assert_allclose(window.attention, short.attention, atol=1e-5)


def test_windows_of_a_long_video(model, videos):
    result = predict_long_video(model, videos["long"], window=2.0, stride=1.0, top_k=2, segments=4)
    assert (result.num_frames, result.fps, result.window_frames, result.stride_frames) == (57, FPS, 20, 10)
    assert [(w.first_frame, w.num_frames) for w in result.windows] == window_bounds(57, 20, 10)
    assert [w.start for w in result.windows] == pytest.approx([0.0, 1.0, 2.0, 3.0, 3.7])
    assert [w.end for w in result.windows] == pytest.approx([2.0, 3.0, 4.0, 5.0, 5.7])
    assert result.duration == pytest.approx(5.7)
    for window in result.windows:
        assert len(window.classes) == len(window.probabilities) == 2
        assert len(window.scores) == 3 and sum(window.scores) == pytest.approx(1, abs=1e-5)
        assert all(window.first_frame <= s < window.first_frame + window.num_frames for s in window.snippet_starts)
        assert len(window.attention) == 4 and sum(window.attention) == pytest.approx(1, abs=1e-5)
    mean = np.mean([w.scores for w in result.windows], axis=0)
    assert result.class_indices == sorted(range(3), key=lambda c: (-mean[c], c))[:2]
    np.testing.assert_allclose(result.probabilities, mean[result.class_indices], atol=1e-6)
    assert result.aggregation == "mean of the window probabilities"


def test_stride_longer_than_the_window(model, videos):
    result = predict_long_video(model, videos["long"], window=1.0, stride=2.5, segments=2)
    assert [(w.first_frame, w.num_frames) for w in result.windows] == [(0, 10), (25, 10), (47, 10)]


def test_the_video_is_decoded_once_into_a_buffer_of_one_window(model, videos, monkeypatch):
    import jna_fast.io.video as pyav
    import jna_fast.inference as inference

    opened, streams, scored = [], [], []
    real_open, real_stream, real_call = pyav.av.open, pyav.VideoStream, inference._WindowScorer.__call__

    def counting_open(*args, **kwargs):
        opened.append(args[0])
        return real_open(*args, **kwargs)

    class RecordedStream(real_stream):
        def __init__(self, path, **options):
            super().__init__(path, **options)
            streams.append(self)

    def recording_call(self, frames):
        scored.append((streams[-1].frames_read, [frame.copy() for frame in frames]))
        return real_call(self, frames)

    monkeypatch.setattr(pyav.av, "open", counting_open)
    monkeypatch.setattr(pyav, "VideoStream", RecordedStream)
    monkeypatch.setattr(inference._WindowScorer, "__call__", recording_call)
    result = predict_long_video(model, videos["long"], window=2.0, stride=1.0, segments=4)
    assert opened == [str(videos["long"])]
    assert result.max_buffered_frames == result.window_frames == 20
    monkeypatch.setattr(pyav.av, "open", real_open)
    # As decoded for the model: at the short side of its training frames (the synthetic set's 96 px).
    everything = decode_frames(videos["long"], range(57), size=short_side_size(48, 64, model.short_side))
    assert everything.shape[1:3] == (96, 128)
    for (read, frames), window in zip(scored, result.windows, strict=True):
        assert len(frames) == window.num_frames <= 20
        # Each window is scored as soon as it is full (the tail one at the end), with exactly its frames.
        assert read == window.first_frame + window.num_frames
        np.testing.assert_array_equal(np.stack(frames), everything[window.first_frame:window.first_frame + 20])


def test_each_frame_is_labelled_by_the_window_centred_nearest():
    from types import SimpleNamespace

    from jna_fast.visualize import frame_windows

    windows = [SimpleNamespace(first_frame=first, num_frames=count) for first, count in window_bounds(57, 20, 10)]
    chosen = frame_windows(SimpleNamespace(windows=windows, num_frames=57))
    # centres 10, 20, 30, 40, 47: frame 14 (centre 14.5) is nearer 10, frame 15 (15.5) nearer 20; 43/44 split 40/47.
    assert chosen[[0, 14, 15, 24, 25, 43, 44, 56]].tolist() == [0, 0, 1, 1, 2, 3, 4, 4]
    assert frame_windows(SimpleNamespace(windows=windows[:1], num_frames=20)).tolist() == [0] * 20


# --- the command and its files ---------------------------------------------------------------------------------
WINDOW_KEYS = {"index", "start", "end", "first_frame", "num_frames", "classes", "class_indices", "probabilities",
               "scores", "snippet_starts", "attention"}
VIDEO_KEYS = {"video", "fps", "num_frames", "duration", "window", "stride", "window_frames", "stride_frames",
              "segments", "crops", "class_names", "windows", "classes", "class_indices", "probabilities",
              "aggregation", "max_buffered_frames"}


def test_command_prints_a_table_and_json(two_stream_checkpoint, videos, capsys):
    assert predict([str(two_stream_checkpoint), str(videos["long"]), "--window", "2", "--stride", "1",
                    "--segments", "2", "--top-k", "2"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert "5 windows of 2 s every 1 s" in table[0] and table[1].split()[:2] == ["start", "end"]
    assert [line.split()[:2] for line in table[2:7]] == [["0.00", "2.00"], ["1.00", "3.00"], ["2.00", "4.00"],
                                                         ["3.00", "5.00"], ["3.70", "5.70"]]
    assert "mean of the window probabilities" in table[7] and len(table) == 10
    assert predict([str(two_stream_checkpoint), str(videos["long"]), "--window", "2", "--segments", "2",
                    "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == VIDEO_KEYS and data["stride"] == 1.0  # the default stride: half the window
    assert all(set(window) == WINDOW_KEYS for window in data["windows"]) and len(data["windows"]) == 5


def test_out_writes_json_timeline_and_annotated_video(two_stream_checkpoint, videos, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    stale = out / ".timeline.png.tmp-999999999"  # left by a killed run (no such process)
    stale.write_bytes(b"half")
    assert predict([str(two_stream_checkpoint), str(videos["long"]), "--window", "2", "--stride", "1",
                    "--segments", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["annotated.mp4", "notes.txt", "predictions.json",
                                                      "timeline.png"]
    assert (out / "notes.txt").read_text() == "mine"
    data = json.loads((out / "predictions.json").read_text())
    assert set(data) == VIDEO_KEYS and len(data["windows"]) == 5
    import matplotlib.image

    picture = matplotlib.image.imread(out / "timeline.png")
    assert picture.ndim == 3 and picture.shape[0] > 200 and picture.shape[1] > 400
    with av.open(str(out / "annotated.mp4")) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        assert float(stream.average_rate) == FPS
    assert len(frames) == 57 and frames[0].shape == (48, 64, 3)
    original = decode_frames(videos["long"], [0])[0]
    # The label band is drawn over the top rows; the rest of the picture is the video's.
    assert np.abs(frames[0][:20].astype(int) - original[:20].astype(int)).mean() > 5
    assert np.abs(frames[0][40:].astype(int) - original[40:].astype(int)).mean() < 8


def test_several_videos_get_a_folder_each(two_stream_checkpoint, videos, tmp_path, capsys):
    out = tmp_path / "out"
    assert predict([str(two_stream_checkpoint), str(videos["short"]), str(videos["long"]), "--window", "2",
                    "--segments", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["long", "short"]
    assert sorted(p.name for p in (out / "short").iterdir()) == ["annotated.mp4", "predictions.json",
                                                                  "timeline.png"]


def test_the_api_imports_no_matplotlib():
    code = ("import sys, jna_fast.inference, jna_fast.visualize; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- errors ----------------------------------------------------------------------------------------------------
def one_error_line(capsys, *expected):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error: " in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(text in lines[0] for text in expected), lines[0]


@pytest.mark.parametrize("options, expected", [
    (["--window", "0"], ("--window", "> 0")),
    (["--window", "-2"], ("--window", "> 0")),
    (["--window", "nan"], ("--window", "finite")),
    (["--window", "2", "--stride", "0"], ("--stride", "> 0")),
    (["--window", "2", "--stride", "x"], ("--stride", "a number")),
    (["--stride", "1"], ("--stride", "--window")),
    (["--out", "somewhere"], ("--out", "--window")),
])
def test_bad_options(two_stream_checkpoint, videos, options, expected, capsys):
    with pytest.raises(SystemExit) as exit_:
        predict([str(two_stream_checkpoint), str(videos["long"]), *options])
    assert exit_.value.code == 2
    one_error_line(capsys, *expected)


def test_two_videos_of_one_name_refused_with_out(two_stream_checkpoint, videos, tmp_path, capsys):
    other = tmp_path / "long.mp4"
    other.write_bytes(videos["long"].read_bytes())
    with pytest.raises(SystemExit):
        predict([str(two_stream_checkpoint), str(videos["long"]), str(other), "--window", "2", "--out",
                 str(tmp_path / "out")])
    one_error_line(capsys, "--out", "long")


def test_bad_videos_are_reported_by_name(two_stream_checkpoint, videos, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x01not a video" * 100)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(videos["long"].read_bytes()[: videos["long"].stat().st_size // 2])
    for video, problem in ((corrupt, "unreadable video"), (truncated, "unreadable video"),
                           (videos["one_frame"], "optical flow needs at least 2"),
                           (tmp_path / "missing.mp4", "no such video file")):
        assert predict([str(two_stream_checkpoint), str(video), "--window", "2"]) == 2, video
        one_error_line(capsys, str(video), problem)


def test_an_out_folder_that_cannot_be_made(two_stream_checkpoint, videos, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert predict([str(two_stream_checkpoint), str(videos["short"]), "--window", "2", "--segments", "2",
                    "--out", str(blocker / "out")]) == 2
    one_error_line(capsys, f"--out {blocker / 'out'}: {blocker} is not a folder")
    assert blocker.read_text() == ""


def test_api_checks_its_arguments(model, videos):
    with pytest.raises(ValueError, match="^window: "):
        predict_long_video(model, videos["long"], window=0)
    with pytest.raises(ValueError, match="^stride: "):
        predict_long_video(model, videos["long"], stride=-1)
