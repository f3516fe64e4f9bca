"""Clips/s of the two-stream loader on a small generated dataset (a plain script printing a table).

    python benchmarks/bench_loader.py [--videos 16 --frames 48 --height 240 --width 320 --epochs 2]
    python benchmarks/bench_loader.py --online [--json out.json]     # online flow vs rawframes, per algorithm

Paths: DALI on the CPU decoding the video itself (MJPEG, which DALI's CPU decoder reads); DALI on the CPU fed by
PyAV (MPEG-4 part 2 .avi as in UCF101, which it does not read); the PyAV backend on both; a plain
torch.utils.data.DataLoader baseline decoding with OpenCV (cv2.VideoCapture) that does the same work (TSN
sampling, one crop per clip, resize, flip, normalisation, flow stacks from the same JPEGs); DALI on the GPU when
CUDA is available. Each row: train mode, T=3 snippets, L=5 flow fields, 224x224, batch 8; the first epoch warms
up (codec probes, folder scans, page cache) and the following ones are timed.

``--online``: the synthetic dataset at its training defaults (96 px MPEG-4 videos of 32 frames, 64 px crops, T=3,
L=5, batch 8, train mode), read with flow from DIS rawframes (extracted beforehand) and with flow computed online
by each algorithm (PyAV backend both, so the rows differ only in where the flow comes from).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from jna_fast.data import (ClipSampling, Decoding, FlowSource, build_loader, flow_stack_indices, make_synthetic,
                           sample_train_crop, tsn_snippet_starts)
from jna_fast.data.dali_pipeline import dali_available
from jna_fast.data.backends import crop_and_resize
from jna_fast.data.transforms import normalise_flow, normalise_rgb

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_data_common import smooth_frames, write_video  # noqa: E402

SEGMENTS, FLOW_LENGTH, SIZE, BATCH = 3, 5, 224, 8


def make_dataset(root: Path, videos: int, frames: int, height: int, width: int) -> None:
    rng = np.random.default_rng(0)
    for codec in ("mjpeg", "mpeg4"):
        lines = []
        for index in range(videos):
            video_id = f"{codec}/v_{index:03d}"
            write_video(root / "videos" / video_id, smooth_frames(frames, height, width, seed=index), codec)
            frames_dir = root / "frames" / video_id
            frames_dir.mkdir(parents=True, exist_ok=True)
            low = rng.integers(0, 256, size=(frames - 1, 2, height // 8, width // 8)).astype(np.uint8)
            for flow in range(frames - 1):
                for component, name in enumerate(("flow_x", "flow_y")):
                    image = cv2.resize(low[flow, component], (width, height), interpolation=cv2.INTER_LINEAR)
                    cv2.imwrite(str(frames_dir / f"{name}_{flow + 1:05d}.jpg"), image)
            lines.append(f"{video_id}.avi {index % 4}")
        (root / "videos" / f"{codec}.txt").write_text("\n".join(lines) + "\n")


class OpenCVClips(torch.utils.data.Dataset):
    """Baseline: the same clips as the loader, decoded with cv2.VideoCapture in DataLoader workers."""

    def __init__(self, root: Path, codec: str, frames: int):
        self.root, self.frames = root, frames
        self.items = [line.split() for line in (root / "videos" / f"{codec}.txt").read_text().splitlines()]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, position):
        relative, label = self.items[position]
        rng = np.random.default_rng(position)
        starts, mask = tsn_snippet_starts(self.frames, SEGMENTS, FLOW_LENGTH, True, rng)
        capture = cv2.VideoCapture(str(self.root / "videos" / relative))
        wanted, decoded, index = set(starts.tolist()), {}, 0
        while index <= starts.max():
            ok, frame = capture.read()
            if not ok:
                raise RuntimeError(f"{relative}: truncated at frame {index}")
            if index in wanted:
                decoded[index] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
        capture.release()
        height, width = decoded[starts[0]].shape[:2]
        crop = sample_train_crop(height, width, rng)
        roi = crop.roi(height, width)
        rgb = np.stack([crop_and_resize(decoded[i], roi, SIZE) for i in starts])
        frames_dir = self.root / "frames" / Path(relative).with_suffix("")
        stacks = flow_stack_indices(starts, FLOW_LENGTH, self.frames - 1)
        flow = np.stack([crop_and_resize(cv2.imread(str(frames_dir / f"{name}_{i + 1:05d}.jpg"),
                                                    cv2.IMREAD_GRAYSCALE), roi, SIZE)
                         for i in stacks.reshape(-1) for name in ("flow_x", "flow_y")])
        flow = flow.reshape(SEGMENTS, 2 * FLOW_LENGTH, SIZE, SIZE)
        return (torch.from_numpy(normalise_rgb(rgb, crop.flip)), torch.from_numpy(normalise_flow(flow, FLOW_LENGTH,
                crop.flip)), torch.from_numpy(mask), int(label))


def clips_per_second(iterable_factory, epochs: int) -> float:
    for _ in iterable_factory(0):  # warm-up epoch
        pass
    clips, start = 0, time.perf_counter()
    for epoch in range(1, epochs):
        for batch in iterable_factory(epoch):
            clips += batch[0].shape[0] if isinstance(batch, (list, tuple)) else len(batch)
    return clips / (time.perf_counter() - start)


def loader_factory(root: Path, codec: str, decoding: Decoding):
    loader = build_loader("videos", root / "videos", list_file=f"{codec}.txt", frames_root=root / "frames",
                          batch_size=BATCH, decoding=decoding,
                          sampling=ClipSampling(num_segments=SEGMENTS, flow_length=FLOW_LENGTH, size=SIZE))

    def epoch_iterable(epoch):
        loader.set_epoch(epoch)
        return loader
    return epoch_iterable


ONLINE_SHAPE = {"video_px": 96, "frames": 32, "crop_px": 64, "segments": 3, "flow_length": 5, "batch": 8}


def online_flow_rows(threads: int, epochs: int, classes: int, per_class: int) -> tuple[list[dict], int]:
    """Clips/s with flow read from rawframes and computed online by each algorithm (see the module doc), and the
    number of training clips per epoch."""
    from jna_fast.flow import extract_flow

    shape = ONLINE_SHAPE
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synthetic"
        make_synthetic(root, num_classes=classes, videos_per_class=per_class, frames=shape["frames"],
                       size=shape["video_px"])
        extract_flow(root / "UCF-101", root / "frames", algorithm="dis", workers=threads, progress=False)
        common = dict(split=1, subset="train", batch_size=shape["batch"],
                      sampling=ClipSampling(num_segments=shape["segments"], flow_length=shape["flow_length"],
                                            size=shape["crop_px"]),
                      decoding=Decoding(backend="pyav", num_threads=threads))

        clips_per_epoch = len(build_loader("ucf101", root, **common, frames_root=root / "frames").index.records)

        def factory(**options):
            loader = build_loader("ucf101", root, **common, **options)

            def epoch_iterable(epoch):
                loader.set_epoch(epoch)
                return loader
            return epoch_iterable

        rows = [{"flow": "rawframes (DIS JPEGs)", "algorithm": "dis",
                 "clips_per_s": clips_per_second(factory(frames_root=root / "frames"), epochs)}]
        for algorithm in ("dis", "farneback", "tvl1"):
            rows.append({"flow": "online", "algorithm": algorithm, "clips_per_s": clips_per_second(
                factory(flow=FlowSource.online(algorithm)), epochs)})
    return rows, clips_per_epoch


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def run_online(args) -> None:
    load_before = os.getloadavg()[0]
    rows, clips_per_epoch = online_flow_rows(args.threads, args.epochs, args.classes, args.per_class)
    result = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                          "torch": torch.__version__, "opencv": cv2.__version__,
                          "load_average_1min_before": round(load_before, 2)},
              "date": time.strftime("%Y-%m-%d"), "shape": ONLINE_SHAPE, "threads": args.threads,
              "train_clips_per_epoch": clips_per_epoch, "timed_epochs": args.epochs - 1, "rows": rows}
    print(f"online flow vs rawframes: {clips_per_epoch} training clips per epoch, {args.epochs - 1} timed epochs, "
          f"{ONLINE_SHAPE}, {args.threads} threads")
    print(f"{'flow':24s} {'algorithm':10s} {'clips/s':>9s}")
    for row in rows:
        print(f"{row['flow']:24s} {row['algorithm']:10s} {row['clips_per_s']:9.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--online", action="store_true", help="online flow vs rawframes (synthetic dataset)")
    parser.add_argument("--classes", type=int, default=8, help="--online: synthetic classes")
    parser.add_argument("--per-class", type=int, default=4, help="--online: videos per class")
    parser.add_argument("--json", default=None, help="--online: also write the figures to this JSON file")
    parser.add_argument("--videos", type=int, default=16, help="videos per codec")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=3, help="the first one is a warm-up")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.online:
        run_online(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_dataset(root, args.videos, args.frames, args.height, args.width)
        rows = []
        if dali_available():
            for codec, route in (("mjpeg", "DALI CPU decodes the video"), ("mpeg4", "PyAV decodes, feeds DALI CPU")):
                rows.append((f"dali cpu, {codec}", route, clips_per_second(
                    loader_factory(root, codec, Decoding(backend="dali", device="cpu", num_threads=args.threads)),
                    args.epochs)))
        else:
            rows.append(("dali cpu", "skipped: nvidia-dali is not installed", float("nan")))
        for codec in ("mjpeg", "mpeg4"):
            rows.append((f"pyav, {codec}", "PyAV + OpenCV, thread pool", clips_per_second(
                loader_factory(root, codec, Decoding(backend="pyav", num_threads=args.threads)), args.epochs)))
        for codec in ("mjpeg", "mpeg4"):
            dataset = OpenCVClips(root, codec, args.frames)
            rows.append((f"torch DataLoader + cv2, {codec}", f"{args.threads} worker processes", clips_per_second(
                lambda epoch: torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True,
                                                          num_workers=args.threads), args.epochs)))
        if dali_available() and torch.cuda.is_available():
            for codec in ("mjpeg", "mpeg4"):
                rows.append((f"dali gpu, {codec}", "NVDEC + nvJPEG", clips_per_second(
                    loader_factory(root, codec, Decoding(backend="dali", device="gpu", num_threads=args.threads)),
                    args.epochs)))
        else:
            rows.append(("dali gpu", "skipped: " + ("no CUDA device" if dali_available() else "no nvidia-dali"),
                         float("nan")))
    print(f"\n{args.videos} videos per codec, {args.frames} frames of {args.width}x{args.height}; T={SEGMENTS}, "
          f"L={FLOW_LENGTH}, {SIZE}x{SIZE}, batch {BATCH}, {args.threads} threads/workers, "
          f"{args.epochs - 1} timed epoch(s)")
    print(f"{'path':34s} {'how':34s} {'clips/s':>9s}")
    for name, how, rate in rows:
        print(f"{name:34s} {how:34s} {rate:9.1f}")


if __name__ == "__main__":
    main()
