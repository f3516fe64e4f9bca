"""Classify video files with a trained checkpoint: ``python -m jna_fast.predict CHECKPOINT VIDEO [VIDEO ...]``.

Each video is decoded at the scale of the training frames (its frames resized to their short side as they are
decoded, whatever the video's resolution) and its flow computed on the fly with the algorithm of the training
data; prints the top-k classes with their probabilities and the most attended snippet (``--json`` for
machine-readable output: one JSON object per video with the per-snippet attention).

Long videos: ``--window SECONDS [--stride SECONDS] [--out DIR]`` scores windows of ``--window`` seconds every
``--stride`` seconds (default: half the window), each sampled and scored as a short video is, decoding the video
once into a ring buffer of one window's frames; prints a table of the windows' top classes with their start and
end times and the video-level top-k (the mean of the window probabilities). ``--out DIR`` writes
``predictions.json``, ``timeline.png`` (the top classes over time, each window's snippet attention underneath;
needs matplotlib) and ``annotated.mp4`` (the video with the current window's label and score on every frame) into
DIR, or into DIR/<video name> for several videos.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from .cli import (ERROR_STATUS, REPORTED_ERRORS, add_debug_option, check_output_folder, number_in, report_error,
                  run_command, torch_device)
from .data.options import TEST_CROP_COUNTS
from .files import output_folder, refuse_links, remove_stale_temporaries
from .inference import TEST_CROPS, TEST_SEGMENTS, Predictor
from .visualize import write_annotated_video, write_predictions_json, write_timeline

# What --out receives (in a folder of each video's, for several): files replaced whole, a link at their name replaced,
# never written through; a video's folder that is a link is refused.
LONG_VIDEO_OUTPUTS = ("predictions.json", "timeline.png", "annotated.mp4")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jna_fast.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="best.pt or last.pt written by python -m jna_fast.train")
    parser.add_argument("videos", nargs="+", help="video files")
    parser.add_argument("--top-k", type=number_in(int, minimum=1), default=5, help="classes shown per video (5)")
    parser.add_argument("--segments", type=number_in(int, minimum=1), default=TEST_SEGMENTS,
                        help=f"snippets per video, or per window with --window ({TEST_SEGMENTS})")
    parser.add_argument("--crops", type=int, choices=TEST_CROP_COUNTS, default=TEST_CROPS)
    parser.add_argument("--device", type=torch_device, default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--json", action="store_true", help="one JSON object per video")
    parser.add_argument("--window", type=number_in(float, above=0), default=None, metavar="SECONDS",
                        help="long videos: score windows of this many seconds (a shorter video is one window)")
    parser.add_argument("--stride", type=number_in(float, above=0), default=None, metavar="SECONDS",
                        help="with --window: seconds between window starts (default: half the window)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="with --window: write predictions.json, timeline.png and annotated.mp4 here")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    if args.window is None:
        for option in ("stride", "out"):
            if getattr(args, option) is not None:
                parser.error(f"argument --{option}: applies to long videos, with --window SECONDS")
    elif args.out is not None and len(args.videos) > 1:
        stems = [Path(video).stem for video in args.videos]
        repeated = sorted({stem for stem in stems if stems.count(stem) > 1})
        if repeated:
            parser.error(f"argument --out: several videos are named {', '.join(repeated)}; their outputs would go "
                         f"to the same folder {args.out / repeated[0]} (run them one at a time)")
    return run_command(lambda: predict_videos(args), args.debug)


def predict_videos(args: argparse.Namespace) -> int:
    """Print each video's prediction; a video that fails is reported (one ``error:`` line) and the others still
    run, and the status is then ERROR_STATUS (2)."""
    if args.out is not None:
        check_output_folder(args.out)  # before the videos are scored, not after
    predictor = Predictor.from_checkpoint(args.checkpoint, device=args.device)
    status = 0
    for video in args.videos:
        try:
            if args.window is None:
                prediction = predictor.predict(video, top_k=args.top_k, segments=args.segments, crops=args.crops)
                text = json.dumps(dataclasses.asdict(prediction)) if args.json else str(prediction)
            else:
                prediction = predict_long(predictor, video, args)
                text = json.dumps(prediction.to_dict()) if args.json else str(prediction)
        except REPORTED_ERRORS as error:
            report_error(error, args.debug)
            status = ERROR_STATUS
            continue
        print(text, flush=True)
    return status


def predict_long(predictor: Predictor, video: str, args: argparse.Namespace):
    """The sliding-window prediction of one video, and its files when ``--out`` is given."""
    stride = args.stride if args.stride is not None else args.window / 2
    own_folder = args.out is not None and len(args.videos) > 1
    if own_folder:
        refuse_links([args.out / Path(video).stem])  # now, before the video is scored
    prediction = predictor.predict_long_video(video, window=args.window, stride=stride, top_k=args.top_k,
                                    segments=args.segments, crops=args.crops)
    if args.out is not None:
        out = output_folder(args.out, Path(video).stem) if own_folder else args.out
        remove_stale_temporaries(out, LONG_VIDEO_OUTPUTS)
        write_predictions_json(prediction, out / "predictions.json")
        write_timeline(prediction, out / "timeline.png")
        write_annotated_video(prediction, video, out / "annotated.mp4")
    return prediction


if __name__ == "__main__":
    sys.exit(main())
