"""Setting up a run: its data, its model on the device (resumed where a checkpoint says), its optimiser, and the
:class:`Trainer` that holds them for the epochs."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from ..builders import (build_loader_for, build_model, data_settings, prepare_dataset_on_every_node,
                        resolve_loader_device, salient_windows)
from ..checkpoint import BEST_NAME, LAST_NAME, save_checkpoint
from ..config import CONFIG_NAME, Config, save_config
from ..data.loader_settings import memory_limit
from ..models.registry import KINDS as MODEL_PART_KINDS
from ..runtime import Distributed, precision_reason, rng_state
from .optimizer import make_optimizer, warmup_shares
from .outputs import MetricsLog, checkpoint_state
from .resume import Progress, resume_training

logger = logging.getLogger("jna_fast.train")


@dataclass
class RunData:
    """The loaders of a run and what its checkpoints record about the data."""

    train_loader: object
    val_loader: object
    class_names: list[str]
    windows: object             # the salient windows of the test split, where the dataset knows them
    settings: dict              # data_settings(): what prepares a video as the training data was prepared
    backend: str
    device: str


@dataclass
class Trainer:
    """What a run trains with, set up once by :func:`set_up`: the data, the model (``net``: the model as the steps
    call it, wrapped for DDP or compiled), the optimiser, where the run stands, and its metrics log."""

    cfg: Config
    env: Distributed
    out: Path
    data: RunData
    model: torch.nn.Module
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    progress: Progress
    log: MetricsLog

    @functools.cached_property
    def warmups(self) -> dict[str, float]:
        """Each scheduled parameter group's warm-up share (the parts' own, fixed for the run)."""
        return warmup_shares(self.model)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.data.train_loader)

    def save_last(self, epoch: int, batch: int) -> None:
        """last.pt (main process): the model and everything a resumed run continues from at ``epoch``, ``batch``."""
        if self.env.is_main:
            save_checkpoint(self.out / LAST_NAME, checkpoint_state(
                self.model, self.cfg, self.data.class_names, self.data.settings,
                optimizer=self.optimizer.state_dict(), epoch=epoch, batch=batch, step=self.progress.step,
                rng=rng_state(), best_top1=self.progress.best_top1))

    def save_best(self, epoch: int, metrics: dict) -> None:
        """best.pt (main process): the model after ``epoch`` epochs, and that epoch's metrics."""
        if self.env.is_main:
            save_checkpoint(self.out / BEST_NAME, checkpoint_state(
                self.model, self.cfg, self.data.class_names, self.data.settings, epoch=epoch,
                step=self.progress.step, metrics=metrics))


def set_up(cfg: Config, env: Distributed, out: Path, resumed: dict | None) -> Trainer:
    """The run's data, model, optimiser and progress (``resumed``: the checkpoint to resume, its path and state
    as the main process read it, or None); the main process saves config.yaml."""
    data = load_data(cfg, env)
    model = model_on_device(cfg, env, data.train_loader.num_classes)
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
    if env.is_main:
        save_config(cfg, out / CONFIG_NAME)
        parts = ", ".join(f"{kind} {getattr(cfg.model, kind).name}" for kind in MODEL_PART_KINDS)
        logger.info("training %s streams (%s) on %s: %d classes, %d steps/epoch, %d epochs, device %s x %d, data %s "
                    "on %s", cfg.model.streams, parts, cfg.data.dataset, data.train_loader.num_classes,
                    len(data.train_loader), cfg.optim.epochs, env.device, env.world_size, data.backend, data.device)
        logger.info("precision %s", precision_reason(cfg.run.precision, env.device))
    return Trainer(cfg, env, out, data, model, net, optimizer, progress, MetricsLog(cfg, out, env.is_main))


def load_data(cfg: Config, env: Distributed) -> RunData:
    """The training and validation loaders (this process's shards), the class names, the salient windows and the
    data settings."""
    prepare_dataset_on_every_node(cfg, env)  # a kind made on first use (the synthetic set)
    backend, loader_device = resolve_loader_device(cfg, env.device)
    # The memory cache's limit holds for both splits: the validation split gets what the training one leaves.
    limit = memory_limit(cfg.data.memory_cache_mib)
    train_loader = build_loader_for(cfg, "train", num_segments=cfg.data.num_segments, device=loader_device,
                                    backend=backend, num_classes=cfg.data.num_classes, memory_limit=limit)
    val_loader = build_loader_for(cfg, "test", num_segments=cfg.eval.val_segments, device=loader_device,
                                  backend=backend, num_classes=train_loader.num_classes,
                                  memory_limit=max(limit - train_loader.memory_bytes, 0))
    data = RunData(train_loader, val_loader, train_loader.class_names, salient_windows(cfg),
                   data_settings(cfg, train_loader.frame_short_side()), backend, loader_device)
    if len(train_loader) == 0:
        raise ValueError(f"the training split has fewer clips per process than --batch-size {cfg.optim.batch_size}")
    return data


def model_on_device(cfg: Config, env: Distributed, num_classes: int) -> torch.nn.Module:
    """The model of ``cfg`` (its backbone's pretrained weights loaded, where given) on the run's device."""
    model = build_model(cfg, num_classes)
    if cfg.model.backbone.weights:
        model.load_backbone_weights(cfg.model.backbone.weights)
    memory_format = torch.preserve_format if cfg.run.channels_last is False else torch.channels_last
    return model.to(env.device, memory_format=memory_format)
