"""Rawframes as other tools write them (dense_flow, denseflow / mmaction2) and flow computed online.

Every frame and flow image of the folders here is constant and encodes its own index, so the tests read back from
the loader's tensors which video frame and which flow field each snippet got (constant images survive JPEG at
quality 100, crop and resize exactly)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from jna_fast.data import ClipSampling, DataError, Decoding, FlowSource, Sharding, build_loader, decode_frames
from jna_fast.data.dali_pipeline import dali_available
from jna_fast.data.rawframes import RawframesNaming
from jna_fast.flow import encoded_flow_stacks, extract_video, make_estimator
from test_data_common import EXACT_JPEG, flow_code, smooth_frames, write_video
from test_data_loader import denormalise_rgb

NUM_FRAMES, HEIGHT, WIDTH = 14, 16, 32
SEGMENTS, FLOW_LENGTH = 4, 3
DEFAULT = RawframesNaming()
# mmaction2 configs numbering from 0, and tsn-pytorch's x_/y_ flow names
NAMINGS = {"default": DEFAULT,
           "mmaction2_start0": RawframesNaming("img_{:05d}.jpg", "flow_{}_{:05d}.jpg", 0),
           "tsn_pytorch": RawframesNaming("img_{:05d}.jpg", "{}_{:05d}.jpg", 1)}


def frame_value(frame: int) -> int:
    return 12 + 16 * frame


def write_tool_folder(frames_dir: Path, convention: str, naming: RawframesNaming = DEFAULT,
                      num_frames: int = NUM_FRAMES) -> None:
    """A folder as the tools write it: "all" = N img files (img p is frame p: jna_fast, denseflow, mmaction2),
    "later" = N-1 img files (img p is frame p+1, the later frame of flow p: TSN dense_flow); N-1 flow pairs."""
    frames_dir.mkdir(parents=True, exist_ok=True)
    first_frame = {"all": 0, "later": 1}[convention]
    for position, frame in enumerate(range(first_frame, num_frames)):
        image = np.full((HEIGHT, WIDTH, 3), frame_value(frame), np.uint8)
        cv2.imwrite(str(frames_dir / naming.rgb_name(position)), image, EXACT_JPEG)
    for flow in range(num_frames - 1):
        for component, name in enumerate(naming.flow_names(flow)):
            cv2.imwrite(str(frames_dir / name), np.full((HEIGHT, WIDTH), flow_code(flow, component, num_frames - 1),
                                                        np.uint8), EXACT_JPEG)


def check_snippets_by_value(batch, num_frames: int = NUM_FRAMES, first_frame: int = 0,
                            mirrored: tuple[bool, ...] = (False,)) -> None:
    """Each snippet is RGB frame i and flow fields i .. i+L-1 (clamped), i = batch.indices, read from the pixels,
    in every view of its clip (row clip * V + v; ``mirrored[v]``: view v is flipped, so its x codes are negated)."""
    assert batch.num_views == len(mirrored)
    values = denormalise_rgb(batch.rgb)
    codes = batch.flow * 127.5 + 127.5
    for clip in range(len(batch)):
        for view, flip in enumerate(mirrored):
            row = clip * batch.num_views + view
            for t, start in enumerate(batch.indices[clip].tolist()):
                assert first_frame <= start <= num_frames - 2
                assert torch.allclose(values[row, t], torch.tensor(float(frame_value(start))), atol=0.01)
                for j in range(FLOW_LENGTH):
                    flow = min(start + j, num_frames - 2)
                    for component in range(2):
                        expected = float(flow_code(flow, component, num_frames - 1))
                        if flip and component == 0:
                            expected = 255.0 - expected
                        assert torch.allclose(codes[row, t, 2 * j + component], torch.tensor(expected),
                                              atol=0.01)


def make_ucf101(root: Path, frames_root: Path, convention: str, naming: RawframesNaming) -> None:
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("1 Jump\n2 Run\n")
    names = ["Jump/v_Jump_g01_c01.avi", "Run/v_Run_g01_c01.avi"]
    (lists / "testlist01.txt").write_text("\n".join(names) + "\n")
    for name in names:
        (root / "UCF-101" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "UCF-101" / name).write_bytes(b"")  # rgb_source="frames": the video is listed, never read
        write_tool_folder(frames_root / Path(name).with_suffix(""), convention, naming)


def make_hmdb51(root: Path, frames_root: Path, convention: str, naming: RawframesNaming) -> None:
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for name in ("climb", "climb_stairs"):
        (splits / f"{name}_test_split1.txt").write_text(f"{name}_1.avi 2\n")
        (root / name).mkdir()
        (root / name / f"{name}_1.avi").write_bytes(b"")
        write_tool_folder(frames_root / name / f"{name}_1", convention, naming)


def make_rawframes(root: Path, convention: str, naming: RawframesNaming, count: str) -> None:
    """A kind="rawframes" dataset whose list counts the frames (mmaction2's RGB lists) or the flow pairs (its flow
    lists; also what TSN's list builder writes for a dense_flow folder)."""
    number = {"frames": NUM_FRAMES, "flows": NUM_FRAMES - 1}[count]
    lines = []
    for index in range(2):
        write_tool_folder(root / f"v{index}", convention, naming)
        lines.append(f"v{index} {number} {index}")
    (root / "list.txt").write_text("\n".join(lines) + "\n")


def tool_loader(tmp_path: Path, kind: str, convention: str, naming_name: str, backend: str = "pyav",
                device: str | None = None, num_crops: int = 1):
    naming = NAMINGS[naming_name]
    common = dict(subset="test", batch_size=2, naming=naming, sampling=ClipSampling(
        num_segments=SEGMENTS, flow_length=FLOW_LENGTH, size=WIDTH // 2, num_crops=num_crops))
    if kind.startswith("rawframes"):
        make_rawframes(tmp_path, convention, naming, kind.split("_")[1])
        return build_loader("rawframes", tmp_path, list_file="list.txt",
                            decoding=Decoding(backend=backend, device=device, prefetch=0), **common)
    maker = {"ucf101": make_ucf101, "hmdb51": make_hmdb51}[kind]
    maker(tmp_path / "data", tmp_path / "frames", convention, naming)
    return build_loader(kind, tmp_path / "data", frames_root=tmp_path / "frames",
                        decoding=Decoding(backend=backend, device=device, rgb_source="frames", prefetch=0), **common)


@pytest.mark.parametrize("naming_name", list(NAMINGS))
@pytest.mark.parametrize("convention", ["all", "later"])
@pytest.mark.parametrize("kind", ["rawframes_frames", "rawframes_flows", "ucf101", "hmdb51"])
def test_tool_folders_give_each_snippet_its_frame_and_flows(tmp_path, kind, convention, naming_name):
    loader = tool_loader(tmp_path, kind, convention, naming_name)
    (batch,) = list(loader)
    assert len(batch) == 2
    check_snippets_by_value(batch, first_frame={"all": 0, "later": 1}[convention])


@pytest.mark.parametrize("backend", ["pyav", "dali"])
def test_tool_folder_names_and_start_frame_hold_in_every_test_view(tmp_path, backend):
    if backend == "dali" and not dali_available():
        pytest.skip("nvidia-dali is not installed")
    loader = tool_loader(tmp_path, "rawframes_flows", "later", "tsn_pytorch", backend=backend, device="cpu",
                         num_crops=10)
    (batch,) = list(loader)
    assert len(batch) == 2 and batch.rgb.shape[0] == 20
    check_snippets_by_value(batch, first_frame=1, mirrored=(False,) * 5 + (True,) * 5)


@pytest.mark.skipif(not dali_available(), reason="nvidia-dali is not installed")
def test_dense_flow_folder_through_dali(tmp_path):
    (batch,) = list(tool_loader(tmp_path, "rawframes_flows", "later", "default", backend="dali", device="cpu"))
    check_snippets_by_value(batch, first_frame=1)


def test_dense_flow_folder_with_rgb_from_the_video_uses_every_flow(tmp_path):
    frames = np.stack([np.full((HEIGHT, WIDTH, 3), frame_value(f), np.uint8) for f in range(NUM_FRAMES)])
    write_video(tmp_path / "videos" / "a", frames, "mjpeg")
    write_tool_folder(tmp_path / "frames" / "a", "later")
    (tmp_path / "videos" / "list.txt").write_text("a.avi 0\n")
    loader = build_loader("videos", tmp_path / "videos", list_file="list.txt", frames_root=tmp_path / "frames",
                          subset="test",
                          sampling=ClipSampling(num_segments=NUM_FRAMES, flow_length=FLOW_LENGTH, size=WIDTH // 2),
                          decoding=Decoding(backend="pyav", prefetch=0))
    (batch,) = list(loader)
    assert batch.indices[0, 0] == 0  # the video has frame 0, so flow 0 is used too
    values = denormalise_rgb(batch.rgb)[0, :, 0, 0, 0]
    real = batch.mask[0]
    assert torch.allclose(values[real], batch.indices[0][real].float() * 16 + 12, atol=2.5)  # MJPEG's rounding
    codes = (batch.flow[0, :, 0, 0, 0] * 127.5 + 127.5)[real]
    assert torch.allclose(codes, torch.tensor([float(flow_code(int(i), 0, NUM_FRAMES - 1))
                                               for i in batch.indices[0][real]]), atol=0.01)


def test_img_count_of_neither_convention_is_an_error_naming_both_counts(tmp_path):
    loader = tool_loader(tmp_path, "rawframes_frames", "all", "default")
    for extra in range(NUM_FRAMES, NUM_FRAMES + 2):
        cv2.imwrite(str(tmp_path / "v0" / DEFAULT.rgb_name(extra)), np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    with pytest.raises(DataError, match=rf"v0: {NUM_FRAMES + 2} img files .* beside {NUM_FRAMES - 1} flow pairs"):
        list(loader)


@pytest.mark.parametrize("count", [NUM_FRAMES - 2, NUM_FRAMES + 1])
def test_list_count_neither_frames_nor_flows_names_the_line(tmp_path, count):
    make_rawframes(tmp_path, "all", DEFAULT, "frames")
    (tmp_path / "list.txt").write_text(f"v0 {NUM_FRAMES} 0\nv1 {count} 1\n")
    loader = build_loader("rawframes", tmp_path, list_file="list.txt", subset="test",
                          sampling=ClipSampling(num_segments=2, flow_length=2, size=8),
                          decoding=Decoding(backend="pyav", prefetch=0))
    with pytest.raises(DataError, match=rf"list.txt:2: count {count} does not match .*v1.* frames \({NUM_FRAMES}\) "
                                        rf"or the flow pairs \({NUM_FRAMES - 1}\)"):
        list(loader)


def test_wrong_start_index_names_the_file_it_looked_for(tmp_path):
    make_rawframes(tmp_path, "all", DEFAULT, "frames")
    loader = build_loader("rawframes", tmp_path, list_file="list.txt", subset="test",
                          naming=RawframesNaming(start_index=0), decoding=Decoding(backend="pyav", prefetch=0))
    with pytest.raises(DataError, match="no flow_x_00000.jpg / flow_y_00000.jpg"):
        list(loader)


@pytest.mark.parametrize("options, problem", [
    (lambda: dict(naming=RawframesNaming(rgb_template="img_.jpg")),
     "rgb_template='img_.jpg' must have 1 positional field"),
    (lambda: dict(naming=RawframesNaming(flow_template="flow_{:05d}.jpg")),
     "flow_template='flow_{:05d}.jpg' must have 2 positional field"),
    (lambda: dict(naming=RawframesNaming(rgb_template="frames/img_{:05d}.jpg")), "must be a file name"),
    (lambda: dict(naming=RawframesNaming(start_index=-1)), "start_index must be a non-negative integer"),
    (lambda: dict(flow=FlowSource("disk")), "flow_source must be one of"),
    (lambda: dict(flow=FlowSource.online("brox")), "flow_algorithm must be one of"),
])
def test_bad_naming_and_flow_options_name_the_argument(tmp_path, options, problem):
    make_rawframes(tmp_path, "all", DEFAULT, "frames")
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace("{", r"\{").replace("}", r"\}")):
        build_loader("rawframes", tmp_path, list_file="list.txt", **options())


# --- online flow -----------------------------------------------------------------------------------------------

def moving_video(path: Path, num_frames: int = 12, seed: int = 0) -> Path:
    return write_video(path, smooth_frames(num_frames, 32, 48, seed), "mpeg4")


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """Two videos and their rawframes extracted with DIS (JPEG quality 95, the extractor's default)."""
    root = tmp_path_factory.mktemp("online")
    lines = []
    for index in range(2):
        video = moving_video(root / "videos" / f"v{index}", seed=index)
        extract_video(video, root / "frames" / f"v{index}", algorithm="dis")
        lines.append(f"v{index}.avi {index}")
    (root / "videos" / "list.txt").write_text("\n".join(lines) + "\n")
    return root


def test_online_stacks_are_the_extracted_flow_images_before_jpeg(extracted):
    video, frames_dir = extracted / "videos" / "v0.avi", extracted / "frames" / "v0"
    flows = np.array([[0, 1, 2], [5, 6, 7], [10, 10, 10]])
    needed = sorted({int(f) + d for f in flows.flat for d in (0, 1)})
    frames = dict(zip(needed, decode_frames(video, needed)))
    stacks = encoded_flow_stacks(frames, flows, estimator=make_estimator("dis"))
    assert stacks.dtype == np.uint8 and stacks.shape == (3, 6, 32, 48)
    for t, stack in enumerate(flows):
        for j, flow in enumerate(stack):
            images = stacks[t]
            for component, name in enumerate(DEFAULT.flow_names(int(flow))):
                on_disk = cv2.imread(str(frames_dir / name), cv2.IMREAD_GRAYSCALE)
                # the same codes through the extractor's JPEG encoder give the file, bit for bit
                ok, encoded = cv2.imencode(".jpg", images[2 * j + component], [cv2.IMWRITE_JPEG_QUALITY, 95])
                assert ok and np.array_equal(cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE), on_disk)


def jpeg_error(extracted: Path) -> float:
    """Largest difference between the extracted flow JPEGs and the codes they encode, over both videos."""
    worst = 0
    for index in range(2):
        video, frames_dir = extracted / "videos" / f"v{index}.avi", extracted / "frames" / f"v{index}"
        count = len(list(frames_dir.glob("flow_x_*.jpg")))
        frames = dict(enumerate(decode_frames(video, range(count + 1))))
        stacks = encoded_flow_stacks(frames, np.arange(count)[None, :], estimator=make_estimator("dis"))[0]
        for flow in range(count):
            for component, name in enumerate(DEFAULT.flow_names(flow)):
                on_disk = cv2.imread(str(frames_dir / name), cv2.IMREAD_GRAYSCALE).astype(int)
                worst = max(worst, int(np.abs(on_disk - stacks[2 * flow + component]).max()))
    return worst


@pytest.mark.parametrize("train", [True, False])
def test_online_loader_matches_the_rawframes_loader(extracted, train):
    options = dict(list_file="list.txt", batch_size=2, sharding=Sharding(seed=3),
                   sampling=ClipSampling(num_segments=3, flow_length=FLOW_LENGTH, size=24, train=train),
                   decoding=Decoding(backend="pyav", prefetch=0))
    from_disk = build_loader("videos", extracted / "videos", frames_root=extracted / "frames", **options)
    online = build_loader("videos", extracted / "videos", flow=FlowSource.online("dis"), **options)
    tolerance = jpeg_error(extracted) / 127.5 + 1e-6
    for epoch in range(2):
        from_disk.set_epoch(epoch)
        online.set_epoch(epoch)
        for disk_batch, online_batch in zip(from_disk, online, strict=True):
            assert torch.equal(disk_batch.indices, online_batch.indices)
            assert torch.equal(disk_batch.mask, online_batch.mask)
            assert torch.equal(disk_batch.rgb, online_batch.rgb)  # same frames, same crop and flip
            assert (disk_batch.flow - online_batch.flow).abs().max() <= tolerance


def test_online_flow_ten_views_match_the_rawframes_views_and_mirror_flow_x(extracted):
    options = dict(list_file="list.txt", subset="test", batch_size=2,
                   sampling=ClipSampling(num_segments=3, flow_length=FLOW_LENGTH, size=16, num_crops=10),
                   decoding=Decoding(backend="pyav", prefetch=0))
    (from_disk,) = list(build_loader("videos", extracted / "videos", frames_root=extracted / "frames", **options))
    (online,) = list(build_loader("videos", extracted / "videos", flow=FlowSource.online("dis"), **options))
    assert online.num_views == 10 and online.video_ids == ["v0", "v1"]
    assert online.rgb.shape == (20, 3, 3, 16, 16) and online.flow.shape == (20, 3, 2 * FLOW_LENGTH, 16, 16)
    assert online.view_mask().shape == (20, 3)
    # every view cut from the same window of the same frames as the rawframes path, flow up to its JPEG error
    assert torch.equal(from_disk.indices, online.indices) and torch.equal(from_disk.mask, online.mask)
    assert torch.equal(from_disk.rgb, online.rgb)
    assert (from_disk.flow - online.flow).abs().max() <= jpeg_error(extracted) / 127.5 + 1e-6
    views = online.flow.view(2, 10, *online.flow.shape[1:])
    plain, mirrored = views[:, :5], views[:, 5:]
    assert plain[:, :, :, 0::2].abs().max() > 0.1  # the videos move, so a wrong sign cannot pass unseen
    # a mirrored view is its twin flipped left-right, with the x motion negated and y kept
    torch.testing.assert_close(mirrored[:, :, :, 0::2], -plain[:, :, :, 0::2].flip(-1), rtol=0, atol=1e-6)
    torch.testing.assert_close(mirrored[:, :, :, 1::2], plain[:, :, :, 1::2].flip(-1), rtol=0, atol=1e-6)


def test_unquantised_online_flow_stays_within_a_code_of_the_quantised(extracted):
    options = dict(list_file="list.txt", subset="test",
                   sampling=ClipSampling(num_segments=3, flow_length=FLOW_LENGTH, size=24),
                   decoding=Decoding(backend="pyav", prefetch=0))
    (rounded,) = list(build_loader("videos", extracted / "videos", flow=FlowSource.online(), **options))
    (fine,) = list(build_loader("videos", extracted / "videos", flow=FlowSource.online(quantise=False), **options))
    difference = (rounded.flow - fine.flow).abs()
    # half a code from the quantisation, half a code from the uint8 resize's own rounding (float stays unrounded)
    assert 0 < difference.max() <= 1 / 127.5 + 1e-6


@pytest.mark.parametrize("num_crops", [1, 3])
def test_corrupt_video_on_the_online_path_is_named(extracted, tmp_path, num_crops):
    videos = tmp_path / "videos"
    moving_video(videos / "good")
    (videos / "bad.avi").write_bytes(b"\x00not a video" * 100)
    (videos / "list.txt").write_text("good.avi 0\nbad.avi 1\n")
    options = dict(list_file="list.txt", subset="test", sampling=ClipSampling(size=16, num_crops=num_crops),
                   flow=FlowSource.online())
    with pytest.raises(DataError, match=r"bad\.avi: unreadable video"):
        list(build_loader("videos", videos, decoding=Decoding(backend="pyav", prefetch=0), **options))
    skipping = build_loader("videos", videos, decoding=Decoding(backend="pyav", prefetch=0, on_error="skip"),
                            **options)
    (batch,) = list(skipping)
    # the bad clip's row is filled by the shard's good clip (all its views), flagged as a stand-in
    assert batch.video_ids == ["good", "good"] and batch.replaced.tolist() == [False, True]
    assert batch.num_views == num_crops and batch.flow.shape[0] == 2 * num_crops
    assert torch.equal(batch.rgb[:num_crops], batch.rgb[num_crops:])
    assert torch.equal(batch.flow[:num_crops], batch.flow[num_crops:])
    assert skipping.skipped_clips == 1
    assert any("bad.avi" in issue for issue in skipping.last_epoch_issues)


def test_one_video_file_with_online_flow(extracted):
    loader = build_loader("video", extracted / "videos" / "v1.avi", subset="test",
                          sampling=ClipSampling(num_segments=5, size=16), decoding=Decoding(prefetch=0),
                          flow=FlowSource.online())
    (batch,) = list(loader)
    assert batch.video_ids == ["v1"] and batch.label.tolist() == [-1]
    assert batch.rgb.shape == (1, 5, 3, 16, 16) and batch.flow.shape == (1, 5, 10, 16, 16)


def test_online_flow_needs_a_video_kind_and_the_pyav_backend(extracted, tmp_path):
    make_rawframes(tmp_path, "all", DEFAULT, "frames")
    with pytest.raises(ValueError, match="use a video kind"):
        build_loader("rawframes", tmp_path, list_file="list.txt", flow=FlowSource.online())
    with pytest.raises(ValueError, match="backend='pyav'"):
        build_loader("video", extracted / "videos" / "v0.avi", flow=FlowSource.online(),
                     decoding=Decoding(backend="dali"))
