"""The long-video timeline of docs/guides/predict.md: synthetic test videos of alternating classes joined into one
video, scored by
``python -m jna_fast.predict CHECKPOINT joined.mp4 --window W --stride S --out OUT`` (default: windows of one
synthetic clip's length, 32 frames at 25 fps, every quarter of it).

    python benchmarks/long_video_timeline.py CHECKPOINT SYNTHETIC_UCF101_FOLDER OUT [--per-class 3]
        [--window 1.28] [--stride 0.32]

Takes the group-1 (split 1 test) videos ``v_<class>_g01_c*.avi`` of each class of the checkpoint, alternating the
classes, and writes them one after the other into ``OUT/joined.mp4`` (frame by frame), then runs the command.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import av
import torch

from jna_fast.io.video import VideoStream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("videos", type=Path, help="the synthetic set's UCF-101 folder (one folder per class)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-class", type=int, default=3)
    parser.add_argument("--window", default="1.28")
    parser.add_argument("--stride", default="0.32")
    args = parser.parse_args()
    names = torch.load(args.checkpoint, map_location="cpu", weights_only=True)["class_names"]
    clips = {name: sorted((args.videos / name).glob(f"v_{name}_g01_c*.avi"))[: args.per_class] for name in names}
    order = [clips[name][i] for i in range(args.per_class) for name in names if i < len(clips[name])]
    args.out.mkdir(parents=True, exist_ok=True)
    joined = args.out / "joined.mp4"
    with av.open(str(joined), "w") as container:
        stream = None
        for clip in order:
            print(clip.name, flush=True)
            with VideoStream(clip) as video:
                if stream is None:
                    stream = container.add_stream("mpeg4", rate=video.rate)
                    stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
                    stream.bit_rate = 2_000_000
                for rgb in video:
                    for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                        container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    subprocess.run([sys.executable, "-m", "jna_fast.predict", str(args.checkpoint), str(joined), "--window", args.window,
                    "--stride", args.stride, "--out", str(args.out)], check=True)


if __name__ == "__main__":
    main()
