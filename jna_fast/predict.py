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

from .cli import ERROR_STATUS, REPORTED_ERRORS, add_debug_option, number_in, report_error, run_command, torch_device


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jna_fast.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="best.pt or last.pt written by python -m jna_fast.train")
    parser.add_argument("videos", nargs="+", help="video files")
    parser.add_argument("--top-k", type=number_in(int, minimum=1), default=5, help="classes shown per video (5)")
    parser.add_argument("--segments", type=number_in(int, minimum=1), default=25, help="snippets per video (25)")
    parser.add_argument("--crops", type=int, choices=(1, 3, 10), default=1)
    parser.add_argument("--device", type=torch_device, default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--json", action="store_true", help="one JSON object per video")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    return run_command(lambda: predict_videos(args), args.debug)


def predict_videos(args: argparse.Namespace) -> int:
    """Print each video's prediction; a video that fails is reported (one ``error:`` line) and the others still
    run, and the status is then ERROR_STATUS (2)."""
    from .models import JNA

    model = JNA.from_checkpoint(args.checkpoint, device=args.device)
    status = 0
    for video in args.videos:
        try:
            prediction = model.predict(video, top_k=args.top_k, segments=args.segments, crops=args.crops)
        except REPORTED_ERRORS as error:
            report_error(error, args.debug)
            status = ERROR_STATUS
            continue
        print(json.dumps(dataclasses.asdict(prediction)) if args.json else prediction, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
