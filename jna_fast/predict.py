"""Classify video files with a trained checkpoint: ``python -m jna_fast.predict CHECKPOINT VIDEO [VIDEO ...]``.

Each video is decoded and its flow computed on the fly with the algorithm of the training data; prints the top-k
classes with their probabilities and the most attended snippet (``--json`` for machine-readable output: one JSON
object per video with the per-snippet attention).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from .checkpoint import CheckpointError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jna_fast.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="best.pt or last.pt written by python -m jna_fast.train")
    parser.add_argument("videos", nargs="+", help="video files")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--segments", type=int, default=25, help="snippets per video (25)")
    parser.add_argument("--crops", type=int, choices=(1, 3, 10), default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--json", action="store_true", help="one JSON object per video")
    args = parser.parse_args(argv)
    from .models import JNA

    try:
        model = JNA.from_checkpoint(args.checkpoint, device=args.device)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    status = 0
    for video in args.videos:
        try:
            prediction = model.predict(video, top_k=args.top_k, segments=args.segments, crops=args.crops)
        except (OSError, ValueError) as error:
            print(f"error: {video}: {error}", file=sys.stderr)
            status = 1
            continue
        print(json.dumps(dataclasses.asdict(prediction)) if args.json else prediction, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
