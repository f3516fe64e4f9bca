"""Bad input at load time: unreadable/truncated videos, missing/short flow folders; raise or skip-and-count."""

import logging
import shutil

import pytest

from jna_fast.data import DataError, build_loader
from jna_fast.data.dali_pipeline import dali_available
from test_data_common import VIDEO_CODECS, make_video_dataset, video_path

BACKENDS = [pytest.param("dali", marks=pytest.mark.skipif(not dali_available(), reason="no nvidia-dali")), "pyav"]
VIDEOS = {"c/good": (12, "vp9", 1), "c/bad": (12, "mjpeg", 2), "c/other": (12, "h264", 3)}


@pytest.fixture
def dataset(tmp_path):
    root, frames_root = tmp_path / "videos", tmp_path / "frames"
    make_video_dataset(root, frames_root, VIDEOS)
    lines = [f"{vid}{VIDEO_CODECS[codec][2]} 0" for vid, (_, codec, _) in VIDEOS.items()]
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    return root, frames_root


def _loader(dataset, backend, on_error="raise"):
    root, frames_root = dataset
    return build_loader("videos", root, list_file="list.txt", frames_root=frames_root, batch_size=3, size=16,
                        num_segments=2, flow_length=2, backend=backend, on_error=on_error, num_threads=1)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])


def _garble(path):
    path.write_bytes(b"this is not a video file" * 20)


def _remove_flow_folder(frames_dir):
    shutil.rmtree(frames_dir)


def _shorten_flow_folder(frames_dir):
    last = max(int(p.stem.split("_")[-1]) for p in frames_dir.glob("flow_x_*.jpg"))
    (frames_dir / f"flow_x_{last:05d}.jpg").unlink()
    (frames_dir / f"flow_y_{last:05d}.jpg").unlink()


CASES = {
    "truncated video": (lambda root, frames: _truncate(video_path(root, "c/bad", "mjpeg")), r"bad\.avi"),
    "unreadable video": (lambda root, frames: _garble(video_path(root, "c/bad", "mjpeg")),
                         r"bad\.avi: unreadable video"),
    "missing flow folder": (lambda root, frames: _remove_flow_folder(frames / "c/bad"),
                            r"c/bad: rawframes folder not found"),
    "short flow folder": (lambda root, frames: _shorten_flow_folder(frames / "c/bad"),
                          r"c/bad: short flow folder: 10 flow pairs"),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
def test_bad_clip_raises_naming_file_and_list_line(dataset, backend, case):
    damage, message = CASES[case]
    damage(*dataset)
    with pytest.raises(DataError, match=message) as raised:
        list(_loader(dataset, backend))
    assert "list.txt:2]" in str(raised.value)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["truncated video", "short flow folder"])
def test_skip_mode_drops_the_clip_warns_and_counts(dataset, backend, case, caplog):
    CASES[case][0](*dataset)
    clips = _loader(dataset, backend, on_error="skip")
    with caplog.at_level(logging.WARNING, logger="jna_fast.data"):
        for epoch in range(2):
            clips.set_epoch(epoch)
            ids = [video_id for batch in clips for video_id in batch.video_ids]
            assert sorted(ids) == ["c/good", "c/other"]  # the bad clip is dropped, never zero-filled
            assert len(clips.last_epoch_issues) == 1 and "c/bad" in clips.last_epoch_issues[0]
    assert sum("skipped 1 clips" in r.message for r in caplog.records) == 2


def test_frames_root_is_required_for_video_datasets(dataset):
    root, _ = dataset
    with pytest.raises(ValueError, match="needs frames_root="):
        build_loader("videos", root, list_file="list.txt")
