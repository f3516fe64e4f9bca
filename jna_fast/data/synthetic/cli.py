"""``python -m jna_fast.data.synthetic``: write the synthetic set under a folder (jna_fast/data/synthetic/write.py)."""

from __future__ import annotations

import argparse

from ...cli import add_debug_option, run_command
from .classes import (CLASS_CATALOGUE, DEFAULT_FAMILIES, DEFAULT_FRAME_SIZE, DEFAULT_NUM_CLASSES,
                      DEFAULT_VIDEOS_PER_CLASS, FAMILIES, WINDOW_FRACTION)
from .encode import CODECS
from .write import make_synthetic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jna_fast.data.synthetic",
                                     description="Write the synthetic UCF101-layout dataset (described in "
                                     "jna_fast/data/synthetic/__init__.py).")
    parser.add_argument("--root", default="synthetic_ucf101", help="output folder (default ./synthetic_ucf101)")
    parser.add_argument("--num-classes", type=int, default=DEFAULT_NUM_CLASSES,
                        help=f"2..{len(CLASS_CATALOGUE)} (default {DEFAULT_NUM_CLASSES}): the first of the catalogue "
                        "of the chosen families")
    parser.add_argument("--families", default=",".join(DEFAULT_FAMILIES),
                        help=f"comma-separated, of {', '.join(FAMILIES)} (default {','.join(DEFAULT_FAMILIES)})")
    parser.add_argument("--videos-per-class", type=int, default=DEFAULT_VIDEOS_PER_CLASS,
                        help=f"default {DEFAULT_VIDEOS_PER_CLASS}")
    parser.add_argument("--clips-per-group", type=int, default=2, help="default 2")
    parser.add_argument("--frames", type=int, default=32, help="frames per video (default 32)")
    parser.add_argument("--size", type=int, nargs="+", default=[DEFAULT_FRAME_SIZE], metavar="PIXELS",
                        help=f"frame size: one number for square frames or HEIGHT WIDTH (default "
                             f"{DEFAULT_FRAME_SIZE})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--codec", choices=sorted(CODECS), default="mpeg4",
                        help="mpeg4 (UCF101's codec; DALI GPU decoder) or mjpeg (DALI CPU decoder); default mpeg4")
    parser.add_argument("--window-fraction", type=float, nargs=2, default=list(WINDOW_FRACTION),
                        metavar=("LOW", "HIGH"), help="the window covers LOW..HIGH of the frames (default "
                        f"{WINDOW_FRACTION[0]} {WINDOW_FRACTION[1]}); shorter windows are harder")
    parser.add_argument("--decoys", type=int, default=0,
                        help="bursts of other classes outside the window, each at most half the shortest "
                        "window (default 0); decoys make the snippets outside the window misleading")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset under --root")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    if len(args.size) > 2:
        parser.error(f"--size takes one or two numbers, got {len(args.size)}")
    size = args.size[0] if len(args.size) == 1 else tuple(args.size)

    def generate() -> None:
        metadata = make_synthetic(args.root, num_classes=args.num_classes, videos_per_class=args.videos_per_class,
                                  frames=args.frames, size=size, seed=args.seed, clips_per_group=args.clips_per_group,
                                  codec=args.codec, window_fraction=tuple(args.window_fraction),
                                  decoys=args.decoys, families=tuple(filter(None, args.families.split(","))),
                                  overwrite=args.overwrite)
        print(f"{len(metadata['videos'])} videos of {len(metadata['classes'])} classes in {args.root}")

    return run_command(generate, args.debug)
