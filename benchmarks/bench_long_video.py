"""Peak memory and speed of long-video prediction (``predict_long_video``) on a short and a long generated video.

    python benchmarks/bench_long_video.py [--checkpoint PATH] [--minutes 10] [--folder DIR]

Generates two videos (128x96, 25 fps, squares moving and changing colour; 10 seconds and ``--minutes`` minutes),
then scores each in a fresh subprocess (``--window 2 --stride 1``, 25 snippets per window, 1 crop) and reports the
subprocess's peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), the windows, the seconds spent
scoring and the windows per second. Without ``--checkpoint`` a two-stream ResNet-18 checkpoint with untrained
weights and 32 px crops is made (memory and speed do not depend on what the weights learnt; the flow is computed
all the same). Streaming decoding should keep the long video's peak within a few percent of the short one's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FPS, WIDTH, HEIGHT = 25, 128, 96


def make_video(path: Path, seconds: float) -> None:
    """A ``seconds`` long MPEG-4 video of two squares sliding and bouncing, encoded frame by frame."""
    import av

    frames = round(seconds * FPS)
    temporary = path.with_name(path.name + ".partial.mp4")
    with av.open(str(temporary), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(frames):
            image = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
            x = abs((index * 3) % (2 * (WIDTH - 20)) - (WIDTH - 20))
            y = abs((index * 2) % (2 * (HEIGHT - 16)) - (HEIGHT - 16))
            image[30:50, x:x + 20] = (220, 60 + index % 150, 40)
            image[y:y + 16, 50:66] = (40, 200, 60 + (index // 25) % 180)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    temporary.replace(path)


def make_checkpoint(path: Path) -> None:
    """An untrained two-stream JNA (ResNet-18 branches, cross-stitch after stages 3 and 4, 32 px, L = 5)."""
    from jna_fast.checkpoint import save_checkpoint
    from jna_fast.config import parse_args
    from jna_fast.builders import build_model, data_settings

    cfg = parse_args(["--root", str(path.parent / "no-data"), "--size", "32", "--out", str(path.parent / "run")])
    save_checkpoint(path, {"model": build_model(cfg, 8).state_dict(), "config": cfg.to_dict(),
                           "class_names": [f"class{i}" for i in range(8)], "data": data_settings(cfg)})


def child(checkpoint: str, video: str) -> None:
    """Runs in the measured subprocess: one prediction, then its figures as one JSON line."""
    import torch

    from jna_fast.inference import Predictor

    torch.set_num_threads(2)
    predictor = Predictor.from_checkpoint(checkpoint)
    started = time.perf_counter()
    prediction = predictor.predict_long_video(video, window=2.0, stride=1.0, segments=25)
    seconds = time.perf_counter() - started
    print(json.dumps({"video": video, "frames": prediction.num_frames, "duration_s": prediction.duration,
                      "windows": len(prediction.windows), "seconds": round(seconds, 2),
                      "windows_per_s": round(len(prediction.windows) / seconds, 2),
                      "max_buffered_frames": prediction.max_buffered_frames,
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/jna_fast_bench_long_video"))
    parser.add_argument("--child", nargs=2, metavar=("CHECKPOINT", "VIDEO"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    args.folder.mkdir(parents=True, exist_ok=True)
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = args.folder / "two_stream_32px.pt"
        if not checkpoint.exists():
            make_checkpoint(checkpoint)
    results = []
    for seconds in (10.0, args.minutes * 60):
        video = args.folder / f"moving_{seconds:g}s.mp4"
        if not video.exists():
            make_video(video, seconds)
        # A fresh interpreter per video: ru_maxrss is the peak of the whole process, so each run needs its own.
        output = subprocess.run([sys.executable, __file__, "--child", str(checkpoint), str(video)], check=True,
                                capture_output=True, text=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    short, long = results
    print(f"peak RSS: {long['peak_rss_mib']} MiB for {long['duration_s']:.0f} s against {short['peak_rss_mib']} MiB "
          f"for {short['duration_s']:.0f} s: ratio {long['peak_rss_mib'] / short['peak_rss_mib']:.3f}; "
          f"{long['windows_per_s']} windows/s on the long video")


if __name__ == "__main__":
    main()
