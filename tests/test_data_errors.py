"""Bad input at load time: unreadable/truncated videos, missing/short flow folders; raise or skip-and-count."""

import logging
import shutil

import pytest
import torch

from jna_fast.data import ClipSampling, DataError, Decoding, build_loader
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
    return build_loader("videos", root, list_file="list.txt", frames_root=frames_root, batch_size=3,
                        sampling=ClipSampling(num_segments=2, flow_length=2, size=16),
                        decoding=Decoding(backend=backend, on_error=on_error, num_threads=1))


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
def test_skip_mode_replaces_the_clip_by_a_good_one_warns_and_counts(dataset, backend, case, caplog):
    CASES[case][0](*dataset)
    clips = _loader(dataset, backend, on_error="skip")
    with caplog.at_level(logging.WARNING, logger="jna_fast.data"):
        for epoch in range(2):
            clips.set_epoch(epoch)
            (batch,) = list(clips)
            # the bad clip's row is filled by a good clip of the shard (here the shard is this batch, so one of its
            # good clips is repeated, same pixels and label), flagged; never zero-filled, never dropped
            assert len(batch) == 3 and "c/bad" not in batch.video_ids
            assert sorted(set(batch.video_ids)) == ["c/good", "c/other"]
            assert batch.replaced.tolist() == [False, False, True]
            original = batch.video_ids.index(batch.video_ids[2])
            assert torch.equal(batch.rgb[2], batch.rgb[original]) and torch.equal(batch.flow[2], batch.flow[original])
            assert batch.label[2] == batch.label[original]
            assert clips.skipped_clips == 1 and "c/bad" in clips.last_epoch_issues[0]
    assert sum("skipped 1 clips" in r.message for r in caplog.records) == 2


def test_a_shard_without_any_loadable_clip_raises(dataset):
    root, frames_root = dataset
    for video_id in VIDEOS:
        _remove_flow_folder(frames_root / video_id)
    with pytest.raises(DataError, match=r"shard 0/1: none of its 3 clips loads in epoch 0"):
        list(_loader(dataset, "pyav", on_error="skip"))


def test_frames_root_is_required_for_video_datasets(dataset):
    root, _ = dataset
    with pytest.raises(ValueError, match="needs frames_root="):
        build_loader("videos", root, list_file="list.txt")
