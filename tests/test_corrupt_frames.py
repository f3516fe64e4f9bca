"""Damaged rawframes JPEGs: the structure check (jna_fast/data/jpeg.py), both backends skipping the same clips, and
`python -m jna_fast.evaluate` reporting them instead of dying in DALI (it used to segfault)."""

import io
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from jna_fast.data import ClipSampling, DataError, Decoding, build_loader
from jna_fast.data.dali_pipeline import dali_available
from jna_fast.data.jpeg import jpeg_problem
from test_data_common import coded_flow, smooth_frames, write_rawframes

BACKENDS = [pytest.param("dali", marks=pytest.mark.skipif(not dali_available(), reason="no nvidia-dali")), "pyav"]
HEIGHT, WIDTH = 24, 32


def _smooth_grey(height=48, width=64, seed=0):
    low = np.random.default_rng(seed).integers(0, 256, size=(height // 8, width // 8)).astype(np.uint8)
    return cv2.resize(low, (width, height), interpolation=cv2.INTER_LINEAR)


def _opencv(image, *parameters) -> np.ndarray:
    return cv2.imencode(".jpg", image, list(parameters))[1].reshape(-1)


def _pillow(image, **options) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", **options)
    return np.frombuffer(buffer.getvalue(), np.uint8).copy()


def _colour():
    return np.repeat(_smooth_grey()[..., None], 3, axis=2)


VALID_FILES = {
    "opencv baseline": lambda: _opencv(_smooth_grey()),
    "opencv quality 100": lambda: _opencv(_smooth_grey(), cv2.IMWRITE_JPEG_QUALITY, 100),
    "opencv progressive colour": lambda: _opencv(_colour(), cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
    "opencv restart markers": lambda: _opencv(_smooth_grey(), cv2.IMWRITE_JPEG_RST_INTERVAL, 1),
    "pillow optimised colour": lambda: _pillow(_colour(), quality=75, optimize=True),
    "pillow progressive 4:4:4": lambda: _pillow(_colour(), progressive=True, subsampling=0),
}


@pytest.mark.parametrize("name", list(VALID_FILES))
def test_valid_jpegs_of_common_writers_pass(name):
    data = VALID_FILES[name]()
    assert jpeg_problem(data) is None
    assert jpeg_problem(data, (48, 64)) is None


def _without_huffman_tables(data: np.ndarray) -> np.ndarray:
    """The file with its DHT segments removed, as Motion-JPEG frames are written (decoders use the standard ones)."""
    raw, kept, position = data.tobytes(), bytearray(data[:2].tobytes()), 2
    while True:
        marker, length = raw[position + 1], (raw[position + 2] << 8) | raw[position + 3]
        if marker != 0xC4:
            kept += raw[position:position + 2 + length]
        position += 2 + length
        if marker == 0xDA:
            return np.frombuffer(bytes(kept + raw[position:]), np.uint8)


def test_a_sequential_jpeg_may_leave_out_the_standard_huffman_tables():
    assert jpeg_problem(_without_huffman_tables(_opencv(_smooth_grey()))) is None


def _segment_offset(data: np.ndarray, marker: int) -> int:
    """Byte offset of the first marker segment 0xFF<marker> in the headers."""
    raw, position = data.tobytes(), 2
    while raw[position + 1] != marker:
        position += 2 + ((raw[position + 2] << 8) | raw[position + 3])
    return position


def _damaged(data: np.ndarray, damage: str) -> np.ndarray:
    data = data.copy()
    if damage == "truncated":
        return data[: len(data) * 2 // 3]
    if damage == "end marker missing":
        return data[:-2]
    if damage == "not a JPEG":
        return np.frombuffer(b"<html>404 not found</html>" * 10, np.uint8)
    if damage == "empty":
        return data[:0]
    if damage == "zeroed headers":
        data[_segment_offset(data, 0xC4):_segment_offset(data, 0xDA)] = 0
        return data
    if damage == "impossible Huffman code":
        counts = _segment_offset(data, 0xC4) + 5  # the 16 code-length counts of the first table (the standard DC)
        assert data[counts:counts + 3].tolist() == [0, 1, 5]
        data[counts:counts + 3] = 2, 0, 4  # as many symbols, but 2 codes of 1 bit: no 1-bit code may be all ones
        return data
    if damage == "bad sampling factors":
        data[_segment_offset(data, 0xC0) + 11] = 0x00  # first component: horizontal and vertical factors 0
        return data
    if damage == "undefined quantisation table":
        data[_segment_offset(data, 0xC0) + 12] = 2  # first component uses table 2, never defined
        return data
    if damage == "another size":
        start = _segment_offset(data, 0xC0) + 5
        data[start:start + 4] = 0xFF  # 65535 x 65535 pixels: the decoder would allocate gigabytes
        return data
    raise ValueError(damage)


DAMAGES = {"truncated": "truncated", "end marker missing": "truncated", "not a JPEG": "not a JPEG file",
           "empty": "not a JPEG file", "zeroed headers": "no marker where one must be",
           "impossible Huffman code": "bogus Huffman table", "bad sampling factors": "sampling factors",
           "undefined quantisation table": "quantisation table 2 is not defined",
           "another size": "65535x65535 pixels, where the folder's flow images have 48x64"}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_jpegs_are_refused_with_the_reason(damage):
    problem = jpeg_problem(_damaged(_opencv(_smooth_grey()), damage), (48, 64))
    assert problem is not None and DAMAGES[damage] in problem


# --- the loader and evaluate --------------------------------------------------------------------------------------
def _overwrite_middle(path):
    data = bytearray(path.read_bytes())
    third = len(data) // 3
    data[third:2 * third] = bytes(third)
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[:150])


def _garble(path):
    path.write_bytes(b"not a JPEG file" * 20)


CORRUPTIONS = {"c1": ("flow_x_00003.jpg", _truncate), "c3": ("flow_y_00002.jpg", _overwrite_middle),
               "c4": ("img_00004.jpg", _garble), "c6": ("flow_x_00001.jpg", _truncate)}


def make_rawframes(root, videos=8, frames=12):
    lines = []
    for index in range(videos):
        write_rawframes(root / f"c{index}", smooth_frames(frames, HEIGHT, WIDTH, seed=index),
                        *coded_flow(frames, HEIGHT, WIDTH))
        lines.append(f"c{index} {frames} {index % 2}")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    for video, (name, damage) in CORRUPTIONS.items():
        damage(root / video / name)
    return root


@pytest.mark.parametrize("backend", BACKENDS)
def test_both_backends_skip_the_clips_with_a_damaged_jpeg(tmp_path, backend):
    root = make_rawframes(tmp_path)
    sampling = ClipSampling(num_segments=12, flow_length=1, size=16)
    loader = build_loader("rawframes", root, list_file="list.txt", subset="test", batch_size=4, sampling=sampling,
                          decoding=Decoding(backend=backend, on_error="skip", num_threads=2))
    batches = list(loader)
    assert sorted({video for batch in batches for video in batch.video_ids}) == ["c0", "c2", "c5", "c7"]
    assert [entry["video"] for entry in loader.last_epoch_skipped] == sorted(CORRUPTIONS)
    for entry in loader.last_epoch_skipped:
        name = CORRUPTIONS[entry["video"]][0]
        assert f"{entry['video']}/{name}: corrupt JPEG: " in entry["reason"] and "list.txt:" in entry["reason"]
    with pytest.raises(DataError, match=r"c1/flow_x_00003\.jpg: corrupt JPEG: truncated"):
        list(build_loader("rawframes", root, list_file="list.txt", subset="test", batch_size=4, sampling=sampling,
                          decoding=Decoding(backend=backend, on_error="raise", num_threads=2)))


@pytest.mark.slow
def test_evaluate_reports_damaged_clips_instead_of_crashing(tmp_path):
    from jna_fast.checkpoint import save_checkpoint
    from jna_fast.config import parse_args
    from jna_fast.builders import build_model

    root = make_rawframes(tmp_path / "data")
    cfg = parse_args(["--dataset", "rawframes", "--root", str(root), "--train-list", "list.txt", "--val-list",
                      "list.txt", "--backbone", "resnet18", "--size", "32", "--num-segments", "2",
                      "--flow-length", "2", "--batch-size", "4"])
    save_checkpoint(tmp_path / "model.pt", {"model": build_model(cfg, 2).state_dict(), "config": cfg.to_dict(),
                                            "class_names": ["even", "odd"]})
    # The default backend (DALI on this CPU when installed), --on-error skip (the default), batches of 4 clips.
    result = subprocess.run([sys.executable, "-m", "jna_fast.evaluate", str(tmp_path / "model.pt"), "--out",
                             str(tmp_path / "eval"), "--segments", "10", "--no-progress"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode in (0, 2), f"killed by signal {-result.returncode}: {result.stderr[-2000:]}"
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["clips"] == 4
    assert [entry["video"] for entry in report["skipped"]] == sorted(CORRUPTIONS)
    assert all("corrupt JPEG" in entry["reason"] for entry in report["skipped"])
    assert "c1/flow_x_00003.jpg: corrupt JPEG: truncated" in result.stderr  # the log names the file
