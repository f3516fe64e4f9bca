"""Train JNA: ``python -m jna_fast.train`` (no arguments: a built-in synthetic dataset, generated on first use).

One process per GPU under ``torchrun --nproc-per-node N -m jna_fast.train ...`` (DDP; each rank reads its own
shard of the videos). Options come from the defaults, ``--config FILE`` (YAML) and the command line, in that order
of precedence (jna_fast/config/); the resolved configuration is saved as ``OUT/config.yaml``. Checkpoints are
written atomically to ``--out``: ``last.pt`` (to resume), ``best.pt`` (best validation top-1); per-epoch metrics go
to ``OUT/metrics.jsonl`` and, when tensorboard is installed, to ``OUT/tensorboard``. ``--resume auto`` (the
default) continues ``OUT/last.pt`` at the batch where it stopped, if its configuration matches. A step whose loss is
not finite stops the run (``--on-nan stop``, the default; the checkpoints keep the last good state) or is skipped
(``--on-nan skip``). Errors are one ``error:`` line, exit status 2 (jna_fast/cli.py). This module is the command;
the trainer is jna_fast/training/ (docs/design.md §10).

Examples::

    python -m jna_fast.train                                   # synthetic data, ResNet-18 (docs/get-started.md)
    python -m jna_fast.flow extract --videos UCF101/UCF-101 --out UCF101/frames --short-side 256
    python -m jna_fast.train --dataset ucf101 --root UCF101 --frames-root UCF101/frames --split 1 \\
        --backbone resnet50 --weights resnet50-0676ba61.pth --epochs 80 --batch-size 16
    python -m jna_fast.evaluate runs/jna/best.pt --out runs/jna/eval --crops 10 --visualize 8
"""

from __future__ import annotations

import logging
import sys

from .cli import check_output_folder, run_command
from .config import parse_command_line
from .training import (EVAL_DIR, METRICS_NAME, RUN_OUTPUTS, TENSORBOARD_DIR, TrainingDiverged, make_optimizer,
                       parameter_groups, set_learning_rates, train)

__all__ = ["EVAL_DIR", "METRICS_NAME", "RUN_OUTPUTS", "TENSORBOARD_DIR", "TrainingDiverged", "main",
           "make_optimizer", "parameter_groups", "set_learning_rates", "train"]


def main(argv: list[str] | None = None) -> int:
    cfg, debug = parse_command_line(argv, description=__doc__)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    def run() -> None:
        check_output_folder(cfg.run.out)
        train(cfg)

    return run_command(run, debug)


if __name__ == "__main__":
    sys.exit(main())
