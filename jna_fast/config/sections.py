"""The sections of the configuration that belong to no single component: optimisation, the run, evaluation
(docs/design.md §9). The data and model sections' own options are declared by their packages
(jna_fast/data/options.py, jna_fast/models/options.py), the parts' and dataset kinds' by themselves."""

from __future__ import annotations

from dataclasses import dataclass

from ..data.options import DEFAULT_TEST_SEGMENTS, TEST_CROP_COUNTS
from ..options import option
from ..runtime import PRECISIONS


@dataclass(frozen=True)
class OptimOptions:
    epochs: int = option(80, "epochs to train", resumable=True, minimum=1)
    batch_size: int = option(8, "clips per GPU/process", minimum=1)
    optimizer: str = option("sgd", "sgd (TSN) or adamw", choices=("sgd", "adamw"))
    lr: float = option(0.01, "peak learning rate", above=0)
    momentum: float = option(0.9, "SGD momentum", minimum=0, below=1)
    weight_decay: float = option(5e-4, "on conv and linear weights only", minimum=0)
    warmup_epochs: float = option(1.0, "linear learning-rate warm-up", minimum=0)
    clip_grad: float = option(20.0, "gradient norm clip (0: off)", minimum=0)
    max_steps: int | None = option(None, "stop after this many optimiser steps in total", resumable=True, minimum=1)
    on_nan: str = option("stop", "a step whose loss (or gradient norm) is not finite: stop the run with an error (the "
                         "checkpoints keep the last good state), or skip the step (its update is not applied; "
                         "skipped steps are logged and counted in metrics.jsonl)", choices=("stop", "skip"),
                         resumable=True)


@dataclass(frozen=True)
class RunOptions:
    out: str = option("runs/jna", "checkpoints, metrics.jsonl, config.yaml", resumable=True)
    resume: str = option("auto", "'auto' (resume from OUT/last.pt if present), 'never', or a checkpoint path",
                         resumable=True)
    checkpoint_every: int = option(200, "steps between mid-epoch checkpoints (0: only at each epoch's end)",
                                   resumable=True, minimum=0)
    log_every: int = option(20, "steps between reads of the running loss/accuracy (each read syncs the GPU)",
                            resumable=True, minimum=1)
    # NumPy seeds must be below 2**32, and each rank adds its rank to the seed.
    seed: int = option(0, "seed of the data order, augmentation and initialisation", minimum=0, maximum=2**31 - 1)
    progress: bool = option(True, "progress bar", resumable=True)
    final_eval: bool = option(True, "evaluate the final model by the TSN test protocol (--eval.segments, "
                              "--eval.crops) into OUT/eval when training ends", resumable=True)
    tensorboard: bool | None = option(None, "write TensorBoard events to OUT/tensorboard (default: when tensorboard "
                                      "is installed)", resumable=True)
    precision: str = option("auto", "auto: bf16 autocast where the device computes bf16 natively (CUDA GPUs "
                            "that support it, CPUs with AMX or AVX512-BF16), fp32 elsewhere", choices=PRECISIONS,
                            resumable=True)
    channels_last: bool | None = option(None, "channels_last memory format (default: on; faster on CUDA and on the "
                                        "CPU)", resumable=True)
    compile: bool = option(False, "torch.compile the model", resumable=True)


@dataclass(frozen=True)
class EvalOptions:
    segments: int = option(DEFAULT_TEST_SEGMENTS, "T evenly spaced snippets per video in the test protocol (the final "
                           "evaluation, evaluate, predict, the demo)", minimum=1, resumable=True)
    crops: int = option(1, "views per video in the test protocol: 1 (the centre), 3 (along the long side) or 10 (4 "
                        "corners and the centre, and their mirror images)", choices=TEST_CROP_COUNTS, resumable=True,
                        minimum=1)
    val_segments: int = option(5, "T for the per-epoch validation", minimum=1)
