"""A run from start to end: hold ``--out`` (:func:`train`), set up (jna_fast/training/session.py), fit the epochs,
each validated and checkpointed, then evaluate the final model by the TSN test protocol."""

from __future__ import annotations

import contextlib
import json
import logging
import math
from pathlib import Path

import torch
import torch.distributed as dist

from ..checkpoint import LAST_NAME
from ..config import Config
from ..evaluation import EvaluationProtocol, collect, evaluate_model, summarize
from ..runtime import Distributed, from_main, seed_everything, setup_distributed, share_main_buffers
from .epoch import epoch_record, train_epoch
from .outputs import EVAL_DIR, open_run_folder
from .session import Trainer, set_up

logger = logging.getLogger("jna_fast.train")

FINAL_EVAL_STRIPS = 4
VALIDATION_METRICS = ("top1", "top5", "mean_class_accuracy", "top1_rgb", "top1_flow", "attention_on_salient",
                      "uniform_on_salient", "top_snippet_in_window")


def train(cfg: Config) -> dict:
    """Run the training that ``cfg`` describes; returns the last epoch's metrics (rank 0)."""
    env = setup_distributed()
    seed_everything(cfg.run.seed, env.rank)
    if env.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    # The output folder and the checkpoint to resume are checked first, before minutes go into the data. Only the
    # main process writes into --out (the other ranks, maybe on nodes that do not see it, write nothing there): it
    # holds the folder while it trains (a second trainer on it would interleave their checkpoints), and it reads
    # the checkpoint to resume and sends it to the other ranks.
    out = Path(cfg.run.out)
    with contextlib.ExitStack() as held:
        resumed = from_main(env, lambda: open_run_folder(cfg, out, held))
        return run_training(cfg, env, out, resumed)


def run_training(cfg: Config, env: Distributed, out: Path, resumed: dict | None) -> dict:
    """:func:`train` once ``out`` is held by the main process; ``resumed``: the checkpoint to resume (its path
    and state, as the main process read it), or None."""
    trainer = set_up(cfg, env, out, resumed)
    record = fit(trainer)
    trainer.log.close()
    if cfg.run.final_eval and finished_training(cfg, trainer.progress.step, trainer.steps_per_epoch):
        final_evaluation(trainer)
    if dist.is_initialized():
        dist.destroy_process_group()
    return record


def finished_training(cfg: Config, step: int, steps_per_epoch: int) -> bool:
    """Whether the run has done all its steps (every epoch, or --max-steps)."""
    return step >= min(cfg.optim.epochs * steps_per_epoch, cfg.optim.max_steps or math.inf)


def fit(trainer: Trainer) -> dict:
    """The epochs from where the run stands to the last (or to --max-steps); returns the last epoch's metrics."""
    cfg, progress = trainer.cfg, trainer.progress
    record: dict = {}
    # A resumed run may have no step left.
    finished = cfg.optim.max_steps is not None and progress.step >= cfg.optim.max_steps
    start_epoch, start_batch = progress.epoch, progress.batch
    for epoch in range(start_epoch, cfg.optim.epochs):
        if finished:
            break
        trainer.net.train()
        trainer.data.train_loader.set_epoch(epoch)
        run = train_epoch(trainer, epoch, start_batch if epoch == start_epoch else 0)
        finished = run.reached_max_steps
        if finished and run.batch < trainer.steps_per_epoch:
            trainer.save_last(epoch, run.batch)
            break
        record = epoch_record(trainer, epoch, run)
        end_epoch(trainer, epoch, record)
    return record


def end_epoch(trainer: Trainer, epoch: int, record: dict) -> None:
    """Validate the model after ``epoch`` (into ``record``), keep it as best.pt when its top-1 is the best yet,
    write last.pt and log the epoch."""
    # The unwrapped model: a DDP forward may broadcast buffers, and ranks' test shards can differ in length.
    # Every rank validates the model that the main process's checkpoints hold, its BatchNorm statistics too.
    share_main_buffers(trainer.model)
    record.update(validate(trainer))
    if record["val_top1"] > trainer.progress.best_top1:
        trainer.progress.best_top1 = record["val_top1"]
        trainer.save_best(epoch + 1, record)
    trainer.save_last(epoch + 1, 0)
    if trainer.env.is_main:
        logger.info("epoch %d: %s", epoch + 1, ", ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))
        trainer.log.record(record)


def validate(trainer: Trainer) -> dict:
    """The validation figures (``val_top1``, ...) of the model on the test split."""
    predictions = collect(trainer.model, trainer.data.val_loader, trainer.env.device, trainer.cfg.run.precision)
    report = summarize(predictions, trainer.data.class_names, trainer.data.windows)
    metrics = {f"val_{key}": report[key] for key in VALIDATION_METRICS if report.get(key) is not None}
    metrics["val_clips"] = report["clips"]
    return metrics


def final_evaluation(trainer: Trainer) -> None:
    """Evaluate the final model by the TSN test protocol into ``OUT/eval``."""
    # The final model, not best.pt: the validation split is the test split, so picking the best epoch on it
    # would flatter the reported figures. The model as the ranks hold it (last.pt's, which the other ranks may
    # not see), with the main process's BatchNorm statistics as last.pt has them.
    cfg, out = trainer.cfg, trainer.out
    share_main_buffers(trainer.model)
    protocol = EvaluationProtocol(cfg.eval.segments, cfg.eval.crops, FINAL_EVAL_STRIPS, cfg.optim.batch_size,
                                  cfg.run.progress)
    report = evaluate_model(trainer.model, cfg, trainer.data.class_names, out / EVAL_DIR, protocol, trainer.env,
                            str(out / LAST_NAME))
    if trainer.env.is_main:
        logger.info("final evaluation of %s (TSN protocol, %d snippets, %d crops) in %s: %s", out / LAST_NAME,
                    report.get("segments", 0), report.get("crops", 0), out / EVAL_DIR, json.dumps(
                        {k: round(v, 4) for k, v in report.items()
                         if isinstance(v, float) and not k.startswith("uniform")}))
