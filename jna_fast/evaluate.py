"""Evaluate a checkpoint by the TSN test protocol: ``python -m jna_fast.evaluate CHECKPOINT --out DIR``.

T evenly spaced snippets per video (``--segments``, default the configuration's ``eval_segments``: 25), 1, 3 or 10
crops (``--crops``; 10 = the 4 corners and the centre, and their mirror images with flow x negated, where the
dataset allows flips), the scores (logits) averaged over the views of a video. The dataset and split default to
those saved in the checkpoint.

Writes into DIR:

- ``report.json``: ``top1``, ``top5``, ``mean_class_accuracy`` of the fused scores, the same for each branch alone
  (``top1_rgb``, ``top1_flow``, ...), ``per_class`` accuracy, and, on data with known discriminative windows (the
  synthetic set), ``attention_on_salient``, ``uniform_on_salient`` and ``top_snippet_in_window`` (see
  jna_fast/metrics.py), all of them also per class family (``families``); for a model whose fusion is
  ``branch_selection``, ``selected_rgb`` and ``selected_flow`` (the share of clips for which the gate selected each
  branch), and for one whose spatial pooling is ``attention``, ``spatial_peak`` (the maps' mean peak weight) and
  ``spatial_peak_uniform`` (the uniform map's), these too per family; ``skipped``: the videos left out as bad
  data (``--on-error skip``, the default), each with its ``video`` and ``reason``, and ``skipped_list_lines``;
- ``predictions.jsonl``: per video its label, prediction, and the fused, RGB and flow scores (so that models and
  streams can be fused later) and its attention (and ``selected_rgb``, with the branch selection);
- ``confusion.png``: the confusion matrix;
- with ``--visualize N``: ``attention/<video>.png`` for N videos: the sampled RGB frames and the flow magnitude
  of each snippet with its attention weight, the true window marked where known, and the spatial attention maps
  drawn over the frames for a model that has them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .cli import add_debug_option, check_output_folder, number_in, run_command, torch_device
from .config import add_config_options, given_options
from .data.options import TEST_CROP_COUNTS
from .evaluation import evaluate_checkpoint
from .inference import TEST_CROPS, TEST_SEGMENTS

# The Config options evaluate takes, to evaluate on other data than the checkpoint's.
DATA_OPTIONS = ("dataset", "root", "frames_root", "split", "val_list", "data_backend", "flow")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jna_fast.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint written by python -m jna_fast.train (best.pt, last.pt)")
    parser.add_argument("--out", required=True, help="folder for report.json and the rest")
    parser.add_argument("--segments", type=number_in(int, minimum=1), default=TEST_SEGMENTS,
                        help=f"snippets per video ({TEST_SEGMENTS})")
    parser.add_argument("--crops", type=int, choices=TEST_CROP_COUNTS, default=TEST_CROPS,
                        help=f"views per video ({TEST_CROPS})")
    parser.add_argument("--visualize", type=number_in(int, minimum=0), default=0, metavar="N",
                        help="attention strips for N videos")
    parser.add_argument("--batch-size", type=number_in(int, minimum=1),
                        help="videos per batch (default: the training batch / crops)")
    add_config_options(parser, DATA_OPTIONS, "data (default: the checkpoint's)")
    # cuda:N is left out: under torchrun each process takes the GPU of its LOCAL_RANK.
    parser.add_argument("--device", type=torch_device, choices=("cpu", "cuda"), help="default: CUDA when available")
    parser.add_argument("--no-progress", action="store_true")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # The dataset options are Config options: the configuration checks their values (jna_fast/config/).
    try:
        overrides = given_options(args, DATA_OPTIONS, "command line")
    except ValueError as error:
        parser.error(str(error))

    def evaluate_and_print() -> None:
        check_output_folder(args.out)
        report = evaluate_checkpoint(args.checkpoint, args.out, segments=args.segments, crops=args.crops,
                                     visualize=args.visualize, batch_size=args.batch_size, device=args.device,
                                     overrides=overrides, progress=not args.no_progress)
        if report:
            shown = {key: value for key, value in report.items()
                     if isinstance(value, (int, float)) and value is not None}
            print(json.dumps(shown, indent=1))

    return run_command(evaluate_and_print, args.debug)


if __name__ == "__main__":
    sys.exit(main())
