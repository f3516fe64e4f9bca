"""One epoch: the steps over the training loader (a resumed run's first epoch from the batch where it stopped),
with the progress bar, the running figures every ``log_every`` steps and last.pt every ``checkpoint_every``."""

from __future__ import annotations

import time

import torch
from tqdm import tqdm

from ..runtime import all_reduce_sum
from .session import Trainer
from .step import EpochRun, train_step


def train_epoch(trainer: Trainer, epoch: int, skip: int) -> EpochRun:
    """One epoch from batch ``skip`` on (a resumed run's first epoch skips the batches it already trained); counts
    ``trainer.progress.step``; writes last.pt every ``checkpoint_every`` steps."""
    cfg, env, progress = trainer.cfg, trainer.env, trainer.progress
    loader = trainer.data.train_loader
    # Running sums stay on the device; they are read (a sync) every log_every steps and at the epoch's end.
    run = EpochRun(torch.zeros(3, dtype=torch.float64, device=env.device), skip)
    bar = tqdm(total=len(loader), initial=skip, desc=f"epoch {epoch + 1}/{cfg.optim.epochs}", unit="batch",
               disable=not (env.is_main and cfg.run.progress), dynamic_ncols=True)
    for batch in timed_batches(loader.batches(start_batch=skip), run):
        train_step(trainer, batch.to(env.device, non_blocking=True), run, epoch)
        bar.update(1)
        if progress.step % cfg.run.log_every == 0:
            show_running_figures(trainer, run, bar)
        if cfg.run.checkpoint_every and progress.step % cfg.run.checkpoint_every == 0:
            trainer.save_last(epoch, run.batch)
        if cfg.optim.max_steps is not None and progress.step >= cfg.optim.max_steps:
            run.reached_max_steps = True
            break
    bar.close()
    return run


def timed_batches(batches, run: EpochRun):
    """``batches``, adding the time spent waiting for each to ``run.loader_wait`` (closed when the epoch stops
    early, so the loader's prefetching thread ends)."""
    try:
        while True:
            waited = time.perf_counter()
            batch = next(batches, None)
            run.loader_wait += time.perf_counter() - waited
            if batch is None:
                return
            yield batch
    finally:
        batches.close()


def show_running_figures(trainer: Trainer, run: EpochRun, bar) -> None:
    """The epoch's loss, accuracy and speed so far, on the progress bar and in TensorBoard."""
    seen, loss_sum, correct = run.sums.tolist()
    if seen:  # every step so far skipped: nothing to show
        elapsed = time.perf_counter() - run.began
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.2f}",
                        clips_s=f"{seen * trainer.env.world_size / elapsed:.1f}")
        trainer.log.scalars({"train/loss": loss_sum / seen, "train/top1": correct / seen}, trainer.progress.step)


def epoch_record(trainer: Trainer, epoch: int, run: EpochRun) -> dict:
    """The epoch's training figures over every process: loss and top-1 (None when every step of the epoch was
    skipped, --on-nan skip: there is no training loss to report), clips per second, skipped clips and steps, and
    the loader's share of the epoch: the time the steps waited for their batches over the epoch's time (the mean
    over the processes; the first epoch's includes filling the memory cache)."""
    env = trainer.env
    elapsed = max(time.perf_counter() - run.began, 1e-9)
    seen, loss_sum, correct = all_reduce_sum(run.sums).tolist()
    waited = float(all_reduce_sum(torch.tensor(run.loader_wait, dtype=torch.float64, device=env.device)))
    skipped = int(all_reduce_sum(torch.tensor(trainer.data.train_loader.skipped_clips, device=env.device)))
    return {"epoch": epoch + 1, "step": trainer.progress.step, "train_loss": loss_sum / seen if seen else None,
            "train_top1": correct / seen if seen else None,
            "train_clips_per_s": seen / elapsed, "skipped_clips": skipped, "skipped_steps": run.skipped_steps,
            "loader_wait_s": waited / env.world_size, "loader_wait_share": waited / env.world_size / elapsed}
