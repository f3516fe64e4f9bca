"""Flow extraction (jna_fast.flow): encoding, flow signs, rawframes layout, resumability, failures, CLI, nvof."""

import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from jna_fast.data import frame_to_rgb
from jna_fast.data.synthetic import encode_video
from jna_fast.flow import (COMPLETE_MARKER, PARTIAL_MARKER, SUMMARY_NAME, FlowAlgorithmUnavailable, decode_flow,
                           encode_flow, extract_flow, extract_video, make_estimator, read_completion_marker)
from jna_fast.flow.__main__ import main as flow_cli

REPO = Path(__file__).resolve().parents[1]


def translating_frames(count: int, height: int, width: int, step_x: int, step_y: int, seed: int = 0) -> np.ndarray:
    """RGB frames of a smooth random texture whose content moves by (step_x, step_y) pixels per frame."""
    rng = np.random.default_rng(seed)
    margin = 2 + max(abs(step_x), abs(step_y)) * count
    big_height, big_width = height + 2 * margin, width + 2 * margin
    texture = cv2.resize(rng.uniform(0, 255, size=(big_height // 4, big_width // 4, 3)), (big_width, big_height),
                         interpolation=cv2.INTER_CUBIC)
    texture = np.clip(texture, 0, 255).astype(np.uint8)
    # content moving by +step means the viewing window moves by -step over the texture
    return np.stack([texture[margin - i * step_y: margin - i * step_y + height,
                             margin - i * step_x: margin - i * step_x + width] for i in range(count)])


def write_video(path: Path, frames: np.ndarray, codec: str = "mjpeg") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    encode_video(frames, path, codec)
    return path


def listdir_counts(frame_dir: Path) -> dict:
    names = sorted(os.listdir(frame_dir))
    return {prefix: sorted(name for name in names if name.startswith(prefix))
            for prefix in ("img_", "flow_x_", "flow_y_")}


def read_flow(frame_dir: Path, index: int, bound: float = 20.0) -> np.ndarray:
    flow_x = cv2.imread(str(frame_dir / f"flow_x_{index:05d}.jpg"), cv2.IMREAD_GRAYSCALE)
    flow_y = cv2.imread(str(frame_dir / f"flow_y_{index:05d}.jpg"), cv2.IMREAD_GRAYSCALE)
    return decode_flow(flow_x, flow_y, bound)


# Encoding ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bound", [20.0, 5.0])
def test_encode_decode_round_trip_within_half_a_quantisation_step(bound):
    rng = np.random.default_rng()
    flow = rng.uniform(-1.5 * bound, 1.5 * bound, size=(31, 17, 2)).astype(np.float32)
    flow_x, flow_y = encode_flow(flow, bound)
    assert flow_x.dtype == np.uint8 and flow_x.shape == (31, 17)
    decoded = decode_flow(flow_x, flow_y, bound)
    clipped = np.clip(flow, -bound, bound)
    half_step = bound / 255.0
    assert np.abs(decoded - clipped).max() <= half_step * (1 + 1e-5)
    # the encoding formula of docs/design.md §6.2, value by value
    expected_x = np.round(255 * (clipped[..., 0] + bound) / (2 * bound))
    np.testing.assert_array_equal(flow_x, expected_x.astype(np.uint8))
    assert encode_flow(np.array([[[-bound, bound]]]), bound)[0][0, 0] == 0
    assert encode_flow(np.array([[[-bound, bound]]]), bound)[1][0, 0] == 255


@pytest.mark.parametrize("bound", [20.0, 5.0, 16.0])
def test_encoding_at_code_boundaries_matches_dense_flows_double_arithmetic(bound):
    # float32 flow values at and beside each half code, where a float32 computation lands one code off
    halves = ((np.arange(255) + 0.5) * (2 * bound / 255) - bound).astype(np.float32)
    values, above, below = [halves], halves, halves
    for _ in range(4):
        above, below = np.nextafter(above, np.float32(np.inf)), np.nextafter(below, np.float32(-np.inf))
        values += [above, below]
    values = np.concatenate(values)
    # dense_flow: cvRound(255 * (v - L) / (H - L)) in double; Python floats are doubles and round() rounds half to
    # even, as cvRound does
    expected = [round(255 * (min(max(float(v), -bound), bound) + bound) / (2 * bound)) for v in values]
    assert encode_flow(np.stack([values, values], -1)[None], bound)[0][0].tolist() == expected


def test_encode_rejects_wrong_shapes_and_bounds():
    with pytest.raises(ValueError, match=r"\[H, W, 2\]"):
        encode_flow(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="bound"):
        encode_flow(np.zeros((4, 4, 2)), bound=0)
    with pytest.raises(ValueError, match="same shape"):
        decode_flow(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))


# Flow signs and layout --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["dis", "farneback", "tvl1"])
def test_flow_sign_follows_the_motion(tmp_path, algorithm):
    step_x, step_y = 2, -1  # right and up
    frames = translating_frames(4, 64, 64, step_x, step_y)
    video = write_video(tmp_path / "moving.avi", frames)
    frame_dir = tmp_path / "out" / "moving"
    assert extract_video(video, frame_dir, algorithm=algorithm) == 4
    centre = slice(16, 48)
    for index in (1, 2, 3):
        flow = read_flow(frame_dir, index)[centre, centre]
        mean_x, mean_y = flow[..., 0].mean(), flow[..., 1].mean()
        # within a quarter pixel: far inside the 1-pixel gap to the nearest wrong answer
        assert abs(mean_x - step_x) < 0.25 and abs(mean_y - step_y) < 0.25, (algorithm, index, mean_x, mean_y)


def test_rawframes_layout_counts_and_rgb_content(tmp_path):
    videos = tmp_path / "videos"
    first = translating_frames(7, 48, 64, 1, 0, seed=1)
    first[0] = (230, 20, 20)  # a pure red first frame tells RGB from BGR
    write_video(videos / "classA" / "clip one.avi", first)
    write_video(videos / "classB" / "nested" / "clip2.mp4", translating_frames(5, 32, 32, 0, 1, seed=2), "mpeg4")
    (videos / "notes.txt").write_text("not a video")
    summary = extract_flow(videos, tmp_path / "out", algorithm="dis", workers=1, progress=False)
    assert summary["counts"] == {"done": 2, "skipped": 0, "failed": 0}
    assert summary["frames_done"] == 7 + 5
    # elapsed_s is rounded to the millisecond and frames_per_s to 0.01: their product is 12 up to those roundings
    rate, elapsed = summary["frames_per_s"], summary["elapsed_s"]
    assert rate * elapsed == pytest.approx(12, abs=0.0005 * rate + 0.005 * elapsed + 1e-9)
    expected = {"classA/clip one": (7, (48, 64)), "classB/nested/clip2": (5, (32, 32))}
    for entry in summary["done"]:
        frames, shape = expected[entry["frame_dir"]]
        assert entry["frames"] == frames
        frame_dir = tmp_path / "out" / entry["frame_dir"]
        counts = listdir_counts(frame_dir)
        assert counts["img_"] == [f"img_{i:05d}.jpg" for i in range(1, frames + 1)]
        assert counts["flow_x_"] == [f"flow_x_{i:05d}.jpg" for i in range(1, frames)]
        assert counts["flow_y_"] == [f"flow_y_{i:05d}.jpg" for i in range(1, frames)]
        assert cv2.imread(str(frame_dir / "img_00001.jpg")).shape == (*shape, 3)
        assert cv2.imread(str(frame_dir / "flow_x_00001.jpg"), cv2.IMREAD_UNCHANGED).shape == shape
        marker = read_completion_marker(frame_dir)
        assert marker["frames"] == frames and marker["flow_pairs"] == frames - 1
    red_bgr = cv2.imread(str(tmp_path / "out" / "classA" / "clip one" / "img_00001.jpg")).mean(axis=(0, 1))
    assert red_bgr[2] > 200 and red_bgr[0] < 50  # stored as a normal (RGB-looking) JPEG
    on_disk = json.loads((tmp_path / "out" / SUMMARY_NAME).read_text())
    assert on_disk["counts"] == summary["counts"]


def test_short_side_resize(tmp_path):
    video = write_video(tmp_path / "v" / "wide.avi", translating_frames(3, 48, 64, 1, 0))
    summary = extract_flow(video.parent, tmp_path / "out", algorithm="farneback", short_side=32, workers=1,
                           progress=False)
    frame_dir = tmp_path / "out" / summary["done"][0]["frame_dir"]
    assert cv2.imread(str(frame_dir / "img_00003.jpg")).shape == (32, 43, 3)  # 64 * 32 / 48 = 42.7
    assert cv2.imread(str(frame_dir / "flow_y_00002.jpg"), cv2.IMREAD_GRAYSCALE).shape == (32, 43)


# Resumability -----------------------------------------------------------------------------------------------------

def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_resume_redoes_our_partial_folders_and_skips_complete_ones(tmp_path):
    videos, out = tmp_path / "videos", tmp_path / "out"
    for name, seed in (("a", 1), ("b", 2), ("c", 3)):
        write_video(videos / f"{name}.avi", translating_frames(4, 32, 32, 1, 0, seed=seed))
    first = extract_flow(videos, out, algorithm="dis", workers=1, progress=False)
    assert first["counts"]["done"] == 3 and not list(out.rglob(PARTIAL_MARKER))
    # "a", "b": killed while writing: only partial folders of dead processes exist, marked as ours
    for name in "ab":
        os.rename(out / name, out / f"{name}.partial-{dead_pid()}")
    (out / f"b.partial-{dead_pid()}").mkdir()
    for partial in out.glob("*.partial-*"):
        (partial / COMPLETE_MARKER).unlink(missing_ok=True)
        (partial / PARTIAL_MARKER).write_text("{}")
    # a folder of that form that is not ours (no marker) is never deleted
    foreign_partial = out / f"a.partial-{dead_pid()}"
    foreign_partial.mkdir()
    complete_mtime = (out / "c" / "img_00001.jpg").stat().st_mtime_ns

    second = extract_flow(videos, out, algorithm="dis", workers=1, progress=False)
    assert [entry["video"] for entry in second["done"]] == ["a.avi", "b.avi"]
    assert [entry["video"] for entry in second["skipped"]] == ["c.avi"]
    assert (out / "c" / "img_00001.jpg").stat().st_mtime_ns == complete_mtime
    for name in "ab":
        counts = listdir_counts(out / name)
        assert len(counts["img_"]) == 4 and len(counts["flow_x_"]) == 3 and len(counts["flow_y_"]) == 3
        assert read_completion_marker(out / name)["frames"] == 4
    assert list(out.glob("*.partial-*")) == [foreign_partial] and not list(out.rglob(PARTIAL_MARKER))

    # a replaced video is redone, the others stay skipped
    write_video(videos / "c.avi", translating_frames(5, 32, 32, 1, 0, seed=4))
    fourth = extract_flow(videos, out, algorithm="dis", workers=1, progress=False)
    assert [entry["video"] for entry in fourth["done"]] == ["c.avi"] and fourth["counts"]["skipped"] == 2
    assert len(listdir_counts(out / "c")["img_"]) == 5

    # other settings: nothing is taken as complete, everything is redone
    third = extract_flow(videos, out, algorithm="farneback", workers=1, progress=False)
    assert third["counts"] == {"done": 3, "skipped": 0, "failed": 0}


def test_a_folder_not_written_by_the_extractor_is_never_deleted(tmp_path):
    videos, out = tmp_path / "videos", tmp_path / "out"
    for name in ("x", "y"):
        write_video(videos / "cls" / f"{name}.avi", translating_frames(3, 32, 32, 1, 0))
    foreign = out / "cls" / "x"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    (foreign / "flow_x_00001.jpg").write_bytes(b"a half-written folder of another tool")
    for attempt in range(2):
        summary = extract_flow(videos, out, algorithm="dis", workers=1, progress=False)
        assert [entry["video"] for entry in summary["done"] + summary["skipped"]] == ["cls/y.avi"]
        (failure,) = summary["failed"]
        assert failure["video"] == "cls/x.avi"
        assert f"{foreign} exists and was not written by python -m jna_fast.flow extract" in failure["error"]
        assert sorted(path.name for path in foreign.iterdir()) == ["flow_x_00001.jpg", "notes.txt"]
        assert (foreign / "notes.txt").read_text() == "mine" and not list(out.glob("cls/x.partial-*"))
    with pytest.raises(FileExistsError, match="was not written by"):
        extract_video(videos / "cls" / "x.avi", foreign, algorithm="dis")
    assert sorted(path.name for path in foreign.iterdir()) == ["flow_x_00001.jpg", "notes.txt"]


@pytest.fixture
def victim(tmp_path):
    """A user's folder beside the dataset: a video and, where its frames would go, a file of theirs."""
    folder = tmp_path / "victim"
    write_video(folder / "data.avi", translating_frames(3, 32, 32, 1, 0))
    (folder / "data").mkdir()
    (folder / "data" / "thesis.tex").write_text("years of work")
    return folder


def _victim_untouched(victim: Path) -> bool:
    names = sorted(path.relative_to(victim).as_posix() for path in victim.rglob("*"))
    return names == ["data", "data.avi", "data/thesis.tex"] and (victim / "data" / "thesis.tex").read_text() == (
        "years of work")


@pytest.mark.parametrize("way", ["dotdot", "absolute", "symlink"])
def test_list_paths_leading_out_of_videos_are_an_error_and_nothing_is_touched(tmp_path, victim, way, capsys):
    videos, out = tmp_path / "videos", tmp_path / "out"
    write_video(videos / "cls" / "x.avi", translating_frames(3, 32, 32, 1, 0))
    (videos / "link").symlink_to(victim, target_is_directory=True)
    line = {"dotdot": "../victim/data.avi", "absolute": str(victim / "data.avi"), "symlink": "link/data.avi"}[way]
    list_file = tmp_path / "list.txt"
    list_file.write_text(f"cls/x.avi 1\n{line} 1\n")
    # (extraction used to write the frames of '../victim/data.avi' into out/../victim/data, emptied first)
    code = flow_cli(["extract", "--videos", str(videos), "--out", str(out), "--algorithm", "dis", "--workers", "1",
                     "--list", str(list_file), "--no-progress"])
    error = capsys.readouterr().err
    assert code == 2 and f"error: --list {list_file} line 2: {line!r} leads out of --videos {videos}" in error
    assert _victim_untouched(victim) and not out.exists()


def test_an_output_folder_leading_out_of_out_fails_that_video_only(tmp_path, victim):
    videos, out = tmp_path / "videos", tmp_path / "out"
    for name in ("cls/x", "other/y"):
        write_video(videos / f"{name}.avi", translating_frames(3, 32, 32, 1, 0))
    out.mkdir()
    (out / "cls").symlink_to(victim, target_is_directory=True)  # out/cls/x would be victim/x
    summary = extract_flow(videos, out, algorithm="dis", workers=1, progress=False)
    assert [entry["video"] for entry in summary["done"]] == ["other/y.avi"]
    (failure,) = summary["failed"]
    assert failure["video"] == "cls/x.avi" and f"leads out of --out {out}" in failure["error"]
    assert _victim_untouched(victim)


def test_a_video_listed_twice_is_extracted_once(tmp_path):
    videos, out = tmp_path / "videos", tmp_path / "out"
    write_video(videos / "cls" / "x.avi", translating_frames(3, 32, 32, 1, 0))
    (tmp_path / "list.txt").write_text("cls/x.avi 1\ncls/./x.avi 1\n")
    summary = extract_flow(videos, out, algorithm="dis", workers=1, progress=False, list_file=tmp_path / "list.txt")
    assert summary["counts"] == {"done": 1, "skipped": 0, "failed": 0}


def test_a_killed_run_leaves_nothing_taken_as_complete(tmp_path):
    videos, out = tmp_path / "videos", tmp_path / "out"
    write_video(videos / "long.avi", translating_frames(40, 96, 96, 1, 1))
    command = [sys.executable, "-m", "jna_fast.flow", "extract", "--videos", str(videos), "--out", str(out),
               "--algorithm", "tvl1", "--workers", "1", "--no-progress"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            partials = list(out.glob("long.partial-*"))
            if partials and len(list(partials[0].glob("flow_x_*.jpg"))) >= 2:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the extraction finished before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert not (out / "long").exists() and list(out.glob("long.partial-*"))
    summary = extract_flow(videos, out, algorithm="dis", workers=1, progress=False)
    assert summary["counts"] == {"done": 1, "skipped": 0, "failed": 0}
    assert len(listdir_counts(out / "long")["flow_y_"]) == 39
    assert not list(out.glob("long.partial-*"))


# Failures, CLI, nvof ----------------------------------------------------------------------------------------------

def test_corrupt_video_is_reported_and_the_run_goes_on(tmp_path):
    videos = tmp_path / "videos"
    write_video(videos / "good.avi", translating_frames(3, 32, 32, 1, 0))
    (videos / "broken.avi").write_bytes(np.random.default_rng(0).bytes(4096))
    summary = extract_flow(videos, tmp_path / "out", algorithm="dis", workers=1, progress=False)
    assert [entry["video"] for entry in summary["done"]] == ["good.avi"]
    (failure,) = summary["failed"]
    assert failure["video"] == "broken.avi" and failure["path"] == str(videos / "broken.avi")
    assert failure["error"]
    assert not (tmp_path / "out" / "broken").exists() and not list((tmp_path / "out").glob("broken.partial-*"))
    assert json.loads((tmp_path / "out" / SUMMARY_NAME).read_text())["failed"] == [failure]


def test_cli_with_worker_pool_list_file_and_failures(tmp_path):
    videos, out = tmp_path / "videos", tmp_path / "out"
    for name in ("x", "y"):
        write_video(videos / "cls" / f"{name}.avi", translating_frames(3, 32, 32, 1, 0))
    write_video(videos / "cls" / "not_listed.avi", translating_frames(3, 32, 32, 1, 0))
    (videos / "cls" / "bad.avi").write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST")
    list_file = tmp_path / "list.txt"
    list_file.write_text("cls/x.avi 1\ncls/y.avi 1\n\ncls/bad.avi 2\ncls/missing.avi 2\n")
    command = [sys.executable, "-m", "jna_fast.flow", "extract", "--videos", str(videos), "--out", str(out),
               "--algorithm", "dis", "--workers", "2", "--list", str(list_file), "--no-progress"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert [entry["video"] for entry in summary["done"]] == ["cls/x.avi", "cls/y.avi"]
    failed = {entry["video"]: entry["error"] for entry in summary["failed"]}
    assert set(failed) == {"cls/bad.avi", "cls/missing.avi"}
    assert f"{list_file} line 5" in failed["cls/missing.avi"]
    assert str(videos / "cls" / "bad.avi") in result.stderr
    assert not (out / "cls" / "not_listed").exists()
    # without the list: x and y are skipped, not_listed is done, bad.avi fails again
    rerun = extract_flow(videos, out, algorithm="dis", workers=1, progress=False)
    assert rerun["counts"] == {"done": 1, "skipped": 2, "failed": 1}


@pytest.mark.parametrize("algorithm", ["dis", "tvl1"])
def test_flows_in_threads_equal_the_sequential_flows(algorithm):
    gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in translating_frames(6, 24, 32, 1, 1)]
    sequential = list(make_estimator(algorithm).flows(gray))
    threaded = list(make_estimator(algorithm).flows(iter(gray), threads=3))
    assert len(threaded) == len(sequential) == 5
    for one, other in zip(sequential, threaded):
        np.testing.assert_array_equal(one, other)


def test_one_video_uses_every_worker_as_flow_threads(tmp_path):
    write_video(tmp_path / "videos" / "a.avi", translating_frames(8, 32, 32, 1, 0))
    serial = extract_flow(tmp_path / "videos", tmp_path / "one", algorithm="dis", workers=1, progress=False)
    parallel = extract_flow(tmp_path / "videos", tmp_path / "three", algorithm="dis", workers=3, progress=False)
    assert (serial["flow_threads_per_video"], parallel["flow_threads_per_video"]) == (1, 3)
    names = sorted(path.name for path in (tmp_path / "one" / "a").glob("flow_*.jpg"))
    assert len(names) == 14
    for name in names:
        assert (tmp_path / "one" / "a" / name).read_bytes() == (tmp_path / "three" / "a" / name).read_bytes()


def test_cli_summary_reports_frames_per_second(tmp_path, capsys):
    write_video(tmp_path / "videos" / "a.avi", translating_frames(4, 32, 32, 1, 0))
    assert flow_cli(["extract", "--videos", str(tmp_path / "videos"), "--out", str(tmp_path / "out"),
                     "--algorithm", "farneback", "--workers", "1", "--no-progress"]) == 0
    assert re.search(r"4 frames at [0-9.]+ frames/s \(farneback, 1 workers\)", capsys.readouterr().out)


def test_nvof_without_gpu_fails_clearly(tmp_path, capsys):
    from nvidia.dali import backend
    if backend.GetCUDADeviceCount() > 0:
        pytest.skip("a CUDA device is present; the no-GPU error path does not apply")
    write_video(tmp_path / "videos" / "v.avi", translating_frames(3, 32, 32, 1, 0))
    with pytest.raises(FlowAlgorithmUnavailable, match="nvof needs an NVIDIA GPU.*0 CUDA device"):
        extract_flow(tmp_path / "videos", tmp_path / "out", algorithm="nvof", progress=False)
    assert flow_cli(["extract", "--videos", str(tmp_path / "videos"), "--out", str(tmp_path / "out"),
                     "--algorithm", "nvof"]) == 2
    assert "GPU" in capsys.readouterr().err
    assert not (tmp_path / "out" / "v").exists()


def test_bad_arguments_name_themselves(tmp_path):
    with pytest.raises(ValueError, match="algorithm must be one of"):
        extract_flow(tmp_path, tmp_path / "out", algorithm="lucas-kanade")
    with pytest.raises(FileNotFoundError, match="--videos"):
        extract_flow(tmp_path / "absent", tmp_path / "out", algorithm="dis")
    with pytest.raises(ValueError, match="short_side"):
        extract_flow(tmp_path, tmp_path / "out", algorithm="dis", short_side=0)
    with pytest.raises(ValueError, match="bound"):
        extract_flow(tmp_path, tmp_path / "out", algorithm="dis", bound=-1)


def test_video_with_a_single_frame_fails_with_a_reason(tmp_path):
    write_video(tmp_path / "videos" / "still.avi", translating_frames(1, 32, 32, 0, 0))
    summary = extract_flow(tmp_path / "videos", tmp_path / "out", algorithm="dis", workers=1, progress=False)
    assert "needs at least 2" in summary["failed"][0]["error"]


def test_img_files_hold_the_loaders_decoded_frames(tmp_path):
    frames = translating_frames(3, 32, 48, 1, 0)
    video = write_video(tmp_path / "v.avi", frames, "mpeg4")
    extract_video(video, tmp_path / "out", algorithm="dis", jpeg_quality=100)
    with av.open(str(video)) as container:
        decoded = [frame_to_rgb(frame) for frame in container.decode(video=0)]  # the loader's colour conversion
    for index, reference in enumerate(decoded, start=1):
        stored = cv2.imread(str(tmp_path / "out" / f"img_{index:05d}.jpg"), cv2.IMREAD_GRAYSCALE)
        # JPEG at quality 100 keeps luma to rounding (its chroma is subsampled, so compare luma)
        assert np.abs(stored.astype(int) - cv2.cvtColor(reference, cv2.COLOR_RGB2GRAY)).max() <= 2


def test_a_list_with_a_byte_order_mark_extracts_its_first_line(tmp_path, capsys):
    # a list saved by a Windows editor; a missing video's name shows the invisible character that makes it missing
    videos, out = tmp_path / "videos", tmp_path / "out"
    write_video(videos / "cls" / "x.avi", translating_frames(3, 32, 32, 1, 0))
    list_file = tmp_path / "list.txt"
    list_file.write_bytes("\ufeffcls/x.avi 1\ncls/\u200bx.avi 1\n".encode("utf-8"))
    assert flow_cli(["extract", "--videos", str(videos), "--out", str(out), "--algorithm", "dis", "--workers", "1",
                     "--list", str(list_file), "--no-progress"]) == 1
    assert read_completion_marker(out / "cls" / "x") is not None
    err = capsys.readouterr().err
    assert f"failed: '{videos}/cls/\\u200bx.avi': 'cls/\\u200bx.avi' listed in {list_file} line 2" in err, err
    list_file.write_text("cls/x.avi 1\n", encoding="utf-16")
    assert flow_cli(["extract", "--videos", str(videos), "--out", str(out), "--list", str(list_file)]) == 2
    assert f"error: {list_file}:1: not UTF-8 text" in capsys.readouterr().err
