"""``python -m jna_fast.flow extract --videos DIR --out DIR ...``: see jna_fast/flow/extract.py."""

from __future__ import annotations

import argparse
import sys

from ..cli import add_debug_option, number_in, run_command, visible
from .algorithms import ALGORITHMS, DEFAULT_EXTRACTION_ALGORITHM
from .encoding import DEFAULT_BOUND
from .extract import DEFAULT_JPEG_QUALITY, SUMMARY_NAME, extract_flow


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jna_fast.flow",
                                     description="Optical-flow extraction into the rawframes layout.")
    commands = parser.add_subparsers(dest="command", required=True)
    extract = commands.add_parser(
        "extract", help="decode videos, write RGB JPEG frames and 8-bit flow JPEGs",
        description="For each video under --videos, writes <out>/<relative path without extension>/img_%05d.jpg "
                    "and flow_x_%05d.jpg / flow_y_%05d.jpg (N frames -> N-1 flow pairs). Complete folders are "
                    f"skipped; a summary goes to <out>/{SUMMARY_NAME}; exit code 1 if any video failed.")
    extract.add_argument("--videos", required=True, help="folder searched recursively for videos")
    extract.add_argument("--out", required=True, help="output folder of the rawframes")
    extract.add_argument("--algorithm", choices=ALGORITHMS, default=DEFAULT_EXTRACTION_ALGORITHM,
                         help="tvl1: OpenCV TV-L1 (TSN's flow, slow); dis / farneback: much faster OpenCV "
                              "methods; nvof: NVIDIA optical-flow hardware via DALI (GPU only). "
                              f"Default {DEFAULT_EXTRACTION_ALGORITHM}.")
    extract.add_argument("--short-side", type=number_in(int, minimum=1), default=None,
                         help="resize frames so the short side has this many pixels (TSN: 256); default: keep")
    extract.add_argument("--bound", type=float, default=DEFAULT_BOUND,
                         help=f"flow clipping bound in pixels for the 8-bit encoding (default {DEFAULT_BOUND:g})")
    extract.add_argument("--workers", type=number_in(int, minimum=1), default=None,
                         help="cores to use: one worker process per video while there are enough videos, the rest "
                              "as flow pairs computed in parallel within a video (default: all cores)")
    extract.add_argument("--list", dest="list_file", default=None,
                         help="only the videos named by the first field of each line, relative to --videos "
                              "(e.g. UCF101's trainlist01.txt)")
    extract.add_argument("--jpeg-quality", type=int, default=DEFAULT_JPEG_QUALITY,
                         help=f"JPEG quality of frames and flow images (default {DEFAULT_JPEG_QUALITY})")
    extract.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_debug_option(extract)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: run_extraction(args), args.debug)


def run_extraction(args: argparse.Namespace) -> int:
    summary = extract_flow(args.videos, args.out, algorithm=args.algorithm, short_side=args.short_side,
                           bound=args.bound, workers=args.workers, list_file=args.list_file,
                           jpeg_quality=args.jpeg_quality, progress=not args.no_progress)
    counts = summary["counts"]
    speed = (f"{summary['frames_done']} frames at {summary['frames_per_s']:.1f} frames/s "
             f"({args.algorithm}, {summary['workers']} workers)" if summary["frames_per_s"] else "no frames extracted")
    print(f"done {counts['done']}, skipped {counts['skipped']}, failed {counts['failed']} "
          f"in {summary['elapsed_s']:.1f} s; {speed}; summary: {args.out}/{SUMMARY_NAME}")
    for failure in summary["failed"]:
        print(f"failed: {visible(failure['path'])}: {failure['error']}", file=sys.stderr)
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
