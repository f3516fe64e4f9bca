"""Train JNA: ``python -m jna_fast.train`` (no arguments: a built-in synthetic dataset, generated on first use).

One process per GPU under ``torchrun --nproc-per-node N -m jna_fast.train ...`` (DDP; each rank reads its own
shard of the videos). Options come from the defaults, ``--config FILE`` (YAML) and the command line, in that order
of precedence (jna_fast/config/); the resolved configuration is saved as ``OUT/config.yaml``. Checkpoints are
written atomically to ``--out``: ``last.pt`` (to resume), ``best.pt`` (best validation top-1); per-epoch metrics go
to ``OUT/metrics.jsonl`` and, when tensorboard is installed, to ``OUT/tensorboard``. ``--resume auto`` (the
default) continues ``OUT/last.pt`` at the batch where it stopped, if its configuration matches. A step whose loss is
not finite stops the run (``--on-nan stop``, the default; the checkpoints keep the last good state) or is skipped
(``--on-nan skip``). Errors are one ``error:`` line, exit status 2 (jna_fast/cli.py).

Examples::

    python -m jna_fast.train                                   # synthetic data, ResNet-18; see benchmarks/results/
    python -m jna_fast.flow extract --videos UCF101/UCF-101 --out UCF101/frames --short-side 256
    python -m jna_fast.train --dataset ucf101 --root UCF101 --frames-root UCF101/frames --split 1 \\
        --backbone resnet50 --weights resnet50-0676ba61.pth --epochs 80 --batch-size 16
    python -m jna_fast.evaluate runs/jna/best.pt --out runs/jna/eval --crops 10 --visualize 8
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from .checkpoint import (BEST_NAME, LAST_NAME, CheckpointError, entry_in_use, load_checkpoint, load_model_state,
                         load_optimizer_state, save_checkpoint)
from .cli import check_output_folder, run_command
from .builders import (build_loader_for, build_model, data_settings, prepare_dataset_on_every_node,
                       resolve_loader_device, salient_windows)
from .config import (CONFIG_NAME, Config, config_from_dict, parse_command_line, resumable_paths,
                     save_config)
from .errors import JnaFastError
from .evaluation import STRIPS_DIR, EvaluationProtocol, collect, evaluate_model, summarize
from .models.registry import KINDS as MODEL_PART_KINDS
from .files import LOCK_NAME, append_line, exclusive_folder, refuse_links, remove_stale_temporaries
from .runtime import (Distributed, all_reduce_sum, autocast_context, from_main, restore_rng_state, rng_state,
                      seed_everything, setup_distributed, share_main_buffers)

logger = logging.getLogger("jna_fast.train")

FINAL_EVAL_STRIPS = 4
RESUME_KEYS = ("optimizer", "epoch", "batch", "step", "rng")
METRICS_NAME, TENSORBOARD_DIR, EVAL_DIR = "metrics.jsonl", "tensorboard", "eval"
# What a run writes into --out: the checkpoints and config.yaml are replaced whole (a link at their name replaced,
# never written through); metrics.jsonl is appended to and the folders are written into, so a link there (or among
# TensorBoard's event files, whose names it makes itself) is refused before the run starts.
RUN_OUTPUTS = (LAST_NAME, BEST_NAME, CONFIG_NAME, METRICS_NAME, TENSORBOARD_DIR, EVAL_DIR, LOCK_NAME)


class TrainingDiverged(JnaFastError, RuntimeError):
    """A training step's loss or gradient norm was not finite, under ``--on-nan stop``."""


# --- resume --------------------------------------------------------------------------------------------------
def resolve_resume(cfg: Config) -> Path | None:
    if cfg.run.resume == "never":
        return None
    if cfg.run.resume == "auto":
        candidate = Path(cfg.run.out) / LAST_NAME
        return candidate if candidate.exists() else None
    path = Path(cfg.run.resume)
    if not path.exists():
        raise FileNotFoundError(f"--resume {cfg.run.resume}: no such checkpoint")
    return path


def check_resumable(cfg: Config, state: dict, path: Path) -> None:
    """Refuse to continue a checkpoint made with other (non-resumable) options, naming them, or one that holds no
    training state."""
    missing = [key for key in RESUME_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path}: holds no training state to resume (missing {missing}); resume from a "
                              f"{LAST_NAME}, or pass the file to --weights / python -m jna_fast.evaluate")
    saved = config_from_dict(state["config"], f"{path}: saved configuration")
    differences = saved.differences(cfg, ignored=frozenset(resumable_paths()))
    if differences:
        listed = "; ".join(f"--{name.replace('_', '-')}: {old!r} in the checkpoint, {new!r} now"
                           for name, (old, new) in differences.items())
        resumable = ", ".join(resumable_paths())
        raise CheckpointError(
            f"{path} was written by a run with other options ({listed}). Resume with the same options (they are "
            f"in {Path(cfg.run.out) / CONFIG_NAME}), or start afresh with --resume never (it overwrites "
            f"{cfg.run.out}'s checkpoints) or another --out. Options that may change on resume: {resumable}.")


# --- the loop ------------------------------------------------------------------------------------------------
def learning_rate(cfg: Config, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up, then cosine decay to 0 over the remaining steps."""
    total = cfg.optim.epochs * steps_per_epoch
    warmup = max(1, int(cfg.optim.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return cfg.optim.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return cfg.optim.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def parameter_groups(model, cfg: Config) -> list[dict]:
    """Weight decay on conv and linear weights only: decaying BN, biases and the cross-stitch alphas would pull
    them to 0 (alpha starts at [[s, 1-s], [1-s, s]] on purpose). The parameters a model part schedules on its own
    (``model.scheduled_parameters()``: the attention vectors, the cross-stitch weights) have groups of their own,
    named by the part, undecayed, at the part's factor of the rate (docs/design.md §2.5)."""
    scheduled = model.scheduled_parameters()
    own_group = {id(p) for group in scheduled for p in group.params}
    decay, no_decay = [], []
    for parameter in model.parameters():
        if id(parameter) in own_group or not parameter.requires_grad:
            continue
        (decay if parameter.dim() >= 2 else no_decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": cfg.optim.weight_decay, "lr_scale": 1.0, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0, "name": "no_decay"},
    ]
    groups += [{"params": list(group.params), "weight_decay": 0.0, "lr_scale": group.lr_scale, "name": group.name}
               for group in scheduled]
    return groups


def warmup_shares(model) -> dict[str, float]:
    """The share of all steps during which each scheduled group stays at its initial values, by group name."""
    return {group.name: group.warmup for group in model.scheduled_parameters()}


def finished_training(cfg: Config, step: int, steps_per_epoch: int) -> bool:
    """Whether the run has done all its steps (every epoch, or --max-steps)."""
    return step >= min(cfg.optim.epochs * steps_per_epoch, cfg.optim.max_steps or math.inf)


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


def make_optimizer(model, cfg: Config) -> torch.optim.Optimizer:
    groups = parameter_groups(model, cfg)
    if cfg.optim.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.optim.lr)
    return torch.optim.SGD(groups, lr=cfg.optim.lr, momentum=cfg.optim.momentum)


def set_learning_rates(optimizer, cfg: Config, step: int, steps_per_epoch: int,
                       warmups: dict[str, float] | None = None) -> None:
    """The rate of every group at ``step``: 0 during its warm-up share (``warmups``: :func:`warmup_shares`), else
    the schedule's times its factor."""
    rate = learning_rate(cfg, step, steps_per_epoch)
    warmups = warmups or {}
    for group in optimizer.param_groups:
        frozen = step < warmups.get(group["name"], 0.0) * cfg.optim.epochs * steps_per_epoch
        group["lr"] = 0.0 if frozen else rate * group["lr_scale"]


def validate(model, loader, cfg: Config, env: Distributed, class_names, windows) -> dict:
    predictions = collect(model, loader, env.device, cfg.run.precision)
    report = summarize(predictions, class_names, windows)
    keys = ("top1", "top5", "mean_class_accuracy", "top1_rgb", "top1_flow", "attention_on_salient",
            "uniform_on_salient", "top_snippet_in_window")
    metrics = {f"val_{key}": report[key] for key in keys if report.get(key) is not None}
    metrics["val_clips"] = report["clips"]
    return metrics


class MetricsLog:
    """metrics.jsonl, and TensorBoard when it is installed (or asked for)."""

    def __init__(self, cfg: Config, out: Path, enabled: bool):
        self.path = out / METRICS_NAME
        self.writer = None
        if not enabled or cfg.run.tensorboard is False:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            if cfg.run.tensorboard:
                raise ImportError(f"--tensorboard needs tensorboard: pip install 'jna_fast[tensorboard]' "
                                  f"({error})") from error
            return
        self.writer = SummaryWriter(str(out / TENSORBOARD_DIR))

    def scalars(self, values: dict, step: int) -> None:
        if self.writer is not None:
            for name, value in values.items():
                if isinstance(value, (int, float)) and value is not None:
                    self.writer.add_scalar(name, value, step)

    def record(self, values: dict) -> None:
        append_line(self.path, json.dumps(values))
        self.scalars({k: v for k, v in values.items() if k not in ("epoch", "step")}, values["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class Progress:
    """Where a run stands: the epoch and the batch within it to continue at, the optimiser steps taken so far, and
    the best validation top-1 (best.pt's)."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    best_top1: float = -1.0


def resume_training(model, optimizer, resumed: dict, path: Path) -> Progress:
    """Load the model, the optimiser and the RNG state of a last.pt (checked by :func:`check_resumable`); returns
    where its run stood."""
    load_model_state(model, resumed["model"], path)
    load_optimizer_state(optimizer, resumed["optimizer"], path)
    with entry_in_use(path, "rng"):
        restore_rng_state(resumed["rng"])
    return Progress(resumed["epoch"], resumed["batch"], resumed["step"], resumed.get("best_top1", -1.0))


def checkpoint_state(model, cfg: Config, class_names: list[str], data: dict, **extra) -> dict:
    """What every checkpoint holds (the model, the configuration, the class names, the data settings), and
    ``extra``: the training state for last.pt, the epoch and its metrics for best.pt."""
    return {"model": model.state_dict(), "config": cfg.to_dict(), "class_names": class_names, "data": data,
            **extra}


def kept_checkpoint(out: Path, env: Distributed) -> str:
    """What a stopped run keeps: only the main process writes the checkpoints, and only it may see them."""
    if not env.is_main:
        return "the main process's --out keeps the last checkpoint it wrote"
    if (out / LAST_NAME).exists():
        return f"{out / LAST_NAME} keeps the last checkpoint written"
    return "no checkpoint was written yet"


@dataclass
class EpochRun:
    """What one pass over the training loader did."""

    sums: torch.Tensor          # float64 [3] on the device: clips, loss * clips, correct (over the applied steps)
    batch: int                  # the batch number reached
    skipped_steps: int          # steps not applied (--on-nan skip)
    reached_max_steps: bool
    began: float                # time.perf_counter() at the start


def train_epoch(net, model, optimizer, loader, cfg: Config, env: Distributed, progress: Progress, epoch: int,
                skip: int, log: "MetricsLog", save_last) -> EpochRun:
    """One epoch from batch ``skip`` on (a resumed run's first epoch skips the batches it already trained); counts
    ``progress.step``; ``save_last(epoch, batch)`` writes last.pt every ``checkpoint_every`` steps."""
    steps_per_epoch = len(loader)
    out = Path(cfg.run.out)
    # Running sums stay on the device; they are read (a sync) every log_every steps and at the epoch's end.
    run = EpochRun(torch.zeros(3, dtype=torch.float64, device=env.device), skip, 0, False, time.perf_counter())
    bar = tqdm(total=steps_per_epoch, initial=skip, desc=f"epoch {epoch + 1}/{cfg.optim.epochs}", unit="batch",
               disable=not (env.is_main and cfg.run.progress), dynamic_ncols=True)
    for batch in loader.batches(start_batch=skip):
        batch = batch.to(env.device, non_blocking=True)
        set_learning_rates(optimizer, cfg, progress.step, steps_per_epoch, warmup_shares(model))
        # A skipped step must leave the model as it was, BatchNorm's running statistics (which the forward
        # pass updates) included.
        saved_buffers = [buffer.detach().clone() for buffer in model.buffers()] if cfg.optim.on_nan == "skip" else None
        with autocast_context(cfg.run.precision, env.device):
            output = net(batch.rgb, batch.flow, batch.mask)
        loss = model.loss(output, batch.label)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = (torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad) if cfg.optim.clip_grad > 0
                     else None)
        progress.step += 1
        run.batch += 1
        bar.update(1)
        problem = non_finite_step(loss, grad_norm)
        if problem is None:
            optimizer.step()
            clips = len(batch.label)
            run.sums += torch.stack([torch.tensor(float(clips), device=env.device, dtype=torch.float64),
                                     loss.detach().double() * clips,
                                     (output.logits.argmax(1) == batch.label).sum().double()])
        elif cfg.optim.on_nan == "stop":
            raise TrainingDiverged(
                f"step {progress.step} (epoch {epoch + 1}, batch {run.batch}): not finite: {problem}; training "
                f"stopped before applying it, and {kept_checkpoint(out, env)}. Lower --lr, check the data, or pass "
                f"--on-nan skip to skip such steps")
        else:
            with torch.no_grad():
                for buffer, saved in zip(model.buffers(), saved_buffers):
                    buffer.copy_(saved)
            run.skipped_steps += 1
            if env.is_main:
                logger.warning("step %d (epoch %d, batch %d): not finite: %s; its update is skipped "
                               "(--on-nan skip; %d skipped steps this epoch)", progress.step, epoch + 1, run.batch,
                               problem, run.skipped_steps)
        if progress.step % cfg.run.log_every == 0:
            seen, loss_sum, correct = run.sums.tolist()
            if seen:  # every step so far skipped: nothing to show
                elapsed = time.perf_counter() - run.began
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.2f}",
                                clips_s=f"{seen * env.world_size / elapsed:.1f}")
                log.scalars({"train/loss": loss_sum / seen, "train/top1": correct / seen}, progress.step)
        if cfg.run.checkpoint_every and progress.step % cfg.run.checkpoint_every == 0:
            save_last(epoch, run.batch)
        if cfg.optim.max_steps is not None and progress.step >= cfg.optim.max_steps:
            run.reached_max_steps = True
            break
    bar.close()
    return run


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
        return _train(cfg, env, out, resumed)


def open_run_folder(cfg: Config, out: Path, held: contextlib.ExitStack) -> dict | None:
    """On the main process: make ``out`` and hold it (until ``held`` closes), remove the temporary files of a
    killed run, and read and check the checkpoint to resume; returns ``{"path", "state"}`` of that checkpoint, or
    None when the run starts afresh."""
    out.mkdir(parents=True, exist_ok=True)
    held.enter_context(exclusive_folder(out, "a training run"))
    for leftover in remove_stale_temporaries(out, (LAST_NAME, BEST_NAME, CONFIG_NAME)):
        logger.info("removed %s, left by a process that no longer runs", leftover)
    refuse_planted_links(out)
    resume_from = resolve_resume(cfg)
    if resume_from is None:
        return None
    state = load_checkpoint(resume_from)
    check_resumable(cfg, state, resume_from)
    return {"path": str(resume_from), "state": state}


def refuse_planted_links(out: Path) -> None:
    """Stop at once, not hours later, when what the run appends to or writes into is a link (RUN_OUTPUTS)."""
    events = out / TENSORBOARD_DIR
    planted = [out / METRICS_NAME, events, out / EVAL_DIR, out / EVAL_DIR / STRIPS_DIR]
    if events.is_dir() and not events.is_symlink():
        planted += events.iterdir()
    refuse_links(planted)


def _train(cfg: Config, env: Distributed, out: Path, resumed: dict | None) -> dict:
    """:func:`train` once ``out`` is held by the main process; ``resumed``: the checkpoint to resume (its path
    and state, as the main process read it), or None."""
    prepare_dataset_on_every_node(cfg, env)  # a kind made on first use (the synthetic set)
    backend, loader_device = resolve_loader_device(cfg, env.device)
    train_loader = build_loader_for(cfg, "train", num_segments=cfg.data.num_segments, device=loader_device,
                                    backend=backend, num_classes=cfg.data.num_classes)
    val_loader = build_loader_for(cfg, "test", num_segments=cfg.eval.val_segments, device=loader_device,
                                  backend=backend, num_classes=train_loader.num_classes)
    class_names = train_loader.class_names
    windows = salient_windows(cfg)
    data = data_settings(cfg, train_loader.frame_short_side())
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ValueError(f"the training split has fewer clips per process than --batch-size {cfg.optim.batch_size}")

    model = build_model(cfg, train_loader.num_classes)
    if cfg.model.backbone.weights:
        model.load_backbone_weights(cfg.model.backbone.weights)
    memory_format = torch.preserve_format if cfg.run.channels_last is False else torch.channels_last
    model = model.to(env.device, memory_format=memory_format)
    optimizer = make_optimizer(model, cfg)

    progress = Progress()
    if resumed is not None:
        resume_from = Path(resumed["path"])
        # popped: the weights and optimizer state now live in the model and optimizer
        progress = resume_training(model, optimizer, resumed.pop("state"), resume_from)
        if env.is_main:
            logger.info("resumed from %s at epoch %d, batch %d (step %d)", resume_from, progress.epoch,
                        progress.batch, progress.step)

    net = model
    if env.world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    if cfg.run.compile:
        net = torch.compile(net)

    def save_last(epoch: int, batch: int) -> None:
        if env.is_main:
            save_checkpoint(out / LAST_NAME, checkpoint_state(
                model, cfg, class_names, data, optimizer=optimizer.state_dict(), epoch=epoch, batch=batch,
                step=progress.step, rng=rng_state(), best_top1=progress.best_top1))

    if env.is_main:
        save_config(cfg, out / CONFIG_NAME)
        parts = ", ".join(f"{kind} {getattr(cfg.model, kind).name}" for kind in MODEL_PART_KINDS)
        logger.info("training %s streams (%s) on %s: %d classes, %d steps/epoch, %d epochs, device %s x %d, data %s "
                    "on %s", cfg.model.streams, parts, cfg.data.dataset, train_loader.num_classes, steps_per_epoch,
                    cfg.optim.epochs,
                    env.device, env.world_size, backend, loader_device)
    log = MetricsLog(cfg, out, env.is_main)
    record: dict = {}
    finished = cfg.optim.max_steps is not None and progress.step >= cfg.optim.max_steps  # a resumed run may have no step left
    start_epoch, start_batch = progress.epoch, progress.batch
    for epoch in range(start_epoch, cfg.optim.epochs):
        if finished:
            break
        net.train()
        train_loader.set_epoch(epoch)
        run = train_epoch(net, model, optimizer, train_loader, cfg, env, progress, epoch,
                          start_batch if epoch == start_epoch else 0, log, save_last)
        finished = run.reached_max_steps
        if finished and run.batch < steps_per_epoch:
            save_last(epoch, run.batch)
            break
        seen, loss_sum, correct = all_reduce_sum(run.sums).tolist()
        skipped = int(all_reduce_sum(torch.tensor(train_loader.skipped_clips, device=env.device)))
        # None when every step of the epoch was skipped (--on-nan skip): there is no training loss to report.
        record = {"epoch": epoch + 1, "step": progress.step, "train_loss": loss_sum / seen if seen else None,
                  "train_top1": correct / seen if seen else None,
                  "train_clips_per_s": seen / max(time.perf_counter() - run.began, 1e-9), "skipped_clips": skipped,
                  "skipped_steps": run.skipped_steps}
        # The unwrapped model: a DDP forward may broadcast buffers, and ranks' test shards can differ in length.
        # Every rank validates the model that the main process's checkpoints hold, its BatchNorm statistics too.
        share_main_buffers(model)
        record.update(validate(model, val_loader, cfg, env, class_names, windows))
        if record["val_top1"] > progress.best_top1:
            progress.best_top1 = record["val_top1"]
            if env.is_main:
                save_checkpoint(out / BEST_NAME, checkpoint_state(model, cfg, class_names, data, epoch=epoch + 1,
                                                                  step=progress.step, metrics=record))
        save_last(epoch + 1, 0)
        if env.is_main:
            logger.info("epoch %d: %s", epoch + 1, ", ".join(
                f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))
            log.record(record)
        if finished:
            break
    log.close()
    # The final model, not best.pt: the validation split is the test split, so picking the best epoch on it
    # would flatter the reported figures. The model as the ranks hold it (last.pt's, which the other ranks may
    # not see), with the main process's BatchNorm statistics as last.pt has them.
    if cfg.run.final_eval and finished_training(cfg, progress.step, steps_per_epoch):
        share_main_buffers(model)
        protocol = EvaluationProtocol(cfg.eval.segments, cfg.eval.crops, FINAL_EVAL_STRIPS, cfg.optim.batch_size,
                                      cfg.run.progress)
        report = evaluate_model(model, cfg, class_names, out / EVAL_DIR, protocol, env, str(out / LAST_NAME))
        if env.is_main:
            logger.info("final evaluation of %s (TSN protocol, %d snippets, %d crops) in %s: %s", out / LAST_NAME,
                        report.get("segments", 0), report.get("crops", 0), out / EVAL_DIR, json.dumps(
                            {k: round(v, 4) for k, v in report.items()
                             if isinstance(v, float) and not k.startswith("uniform")}))
    if dist.is_initialized():
        dist.destroy_process_group()
    return record


def main(argv: list[str] | None = None) -> int:
    cfg, debug = parse_command_line(argv, description=__doc__)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    def run() -> None:
        check_output_folder(cfg.run.out)
        train(cfg)

    return run_command(run, debug)


if __name__ == "__main__":
    sys.exit(main())
