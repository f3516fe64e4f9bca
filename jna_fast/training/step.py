"""One optimiser step: forward, loss, backward, gradient clipping, and the update, applied only when every value
is finite (``--on-nan stop`` raises :class:`TrainingDiverged`, ``--on-nan skip`` leaves the model as it was)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import torch

from ..errors import JnaFastError
from ..runtime import all_reduce_sum, autocast_context
from .optimizer import set_learning_rates
from .outputs import kept_checkpoint
from .session import Trainer

logger = logging.getLogger("jna_fast.train")


class TrainingDiverged(JnaFastError, RuntimeError):
    """A training step's loss or gradient norm was not finite, under ``--on-nan stop``."""


@dataclass
class EpochRun:
    """What one pass over the training loader did so far."""

    sums: torch.Tensor          # float64 [3] on the device: clips, loss * clips, correct (over the applied steps)
    batch: int                  # the batch number reached
    skipped_steps: int = 0      # steps not applied (--on-nan skip)
    reached_max_steps: bool = False
    loader_wait: float = 0.0    # seconds spent waiting for the loader's next batch
    began: float = field(default_factory=time.perf_counter)  # at the start


def non_finite_step(loss: torch.Tensor, grad_norm: torch.Tensor | None) -> str | None:
    """What was not finite in this step, on this rank or any other ("loss nan, gradient norm nan"), or None.
    One device sync per step, as AMP's GradScaler makes, and under torchrun an all-reduce, so that every rank takes
    the same decision."""
    values = torch.stack([loss.detach().float()] + ([grad_norm.detach().float()] if grad_norm is not None else []))
    if not int(all_reduce_sum((~torch.isfinite(values)).sum())):
        return None
    described = ", ".join(f"{name} {value:g}" for name, value in zip(("loss", "gradient norm"), values.tolist()))
    if bool(torch.isfinite(values).all()):  # finite here: it was another rank's step
        described += " here, not finite on another rank"
    return described


def train_step(trainer: Trainer, batch, run: EpochRun, epoch: int) -> None:
    """Train on one batch (on the device) at step ``trainer.progress.step``, which it counts, as it counts
    ``run.batch``; the applied step's clips, loss and correct predictions go into ``run.sums``."""
    cfg, model, optimizer = trainer.cfg, trainer.model, trainer.optimizer
    set_learning_rates(optimizer, cfg, trainer.progress.step, trainer.steps_per_epoch, trainer.warmups)
    # A skipped step must leave the model as it was, BatchNorm's running statistics (which the forward
    # pass updates) included.
    saved_buffers = [buffer.detach().clone() for buffer in model.buffers()] if cfg.optim.on_nan == "skip" else None
    with autocast_context(cfg.run.precision, trainer.env.device):
        output = trainer.net(batch.rgb, batch.flow, batch.mask)
    loss = model.loss(output, batch.label)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = (torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad) if cfg.optim.clip_grad > 0
                 else None)
    trainer.progress.step += 1
    run.batch += 1
    problem = non_finite_step(loss, grad_norm)
    if problem is None:
        optimizer.step()
        clips = len(batch.label)
        run.sums += torch.stack([torch.tensor(float(clips), device=trainer.env.device, dtype=torch.float64),
                                 loss.detach().double() * clips,
                                 (output.logits.argmax(1) == batch.label).sum().double()])
    elif cfg.optim.on_nan == "stop":
        raise TrainingDiverged(
            f"step {trainer.progress.step} (epoch {epoch + 1}, batch {run.batch}): not finite: {problem}; training "
            f"stopped before applying it, and {kept_checkpoint(trainer.out, trainer.env)}. Lower --lr, check the "
            f"data, or pass --on-nan skip to skip such steps")
    else:
        skip_step(trainer, saved_buffers, run, epoch, problem)


def skip_step(trainer: Trainer, saved_buffers: list[torch.Tensor], run: EpochRun, epoch: int, problem: str) -> None:
    """Leave the model as it was before the step (``--on-nan skip``): its buffers back, no update."""
    with torch.no_grad():
        for buffer, saved in zip(trainer.model.buffers(), saved_buffers):
            buffer.copy_(saved)
    run.skipped_steps += 1
    if trainer.env.is_main:
        logger.warning("step %d (epoch %d, batch %d): not finite: %s; its update is skipped "
                       "(--on-nan skip; %d skipped steps this epoch)", trainer.progress.step, epoch + 1, run.batch,
                       problem, run.skipped_steps)
