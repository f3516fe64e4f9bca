"""From a Config to its data and its model: shared by training, evaluation and prediction.

What a dataset kind knows (where it is or is made, its index, its flip policy, its salient windows, how it is made,
the short side of its frames) is in its spec (jna_fast/data/datasets/); the functions here ask the configured
kind's. A kind made on first use (the synthetic set) is made by the main process of a run and then by the first
process of each node that does not see that copy. Light at import: the loading stack (PyAV, OpenCV) loads when a
loader is built.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from . import data, models
from .config import Config
from .data.datasets import TSN_SHORT_SIDE, cache_root, dataset_spec
from .data.loader_settings import ClipSampling, Decoding, FlowSource, Sharding
from .flow.encoding import DEFAULT_BOUND
from .models import Network
from .runtime import Distributed, agree

logger = logging.getLogger("jna_fast")

__all__ = ["TSN_SHORT_SIDE", "build_loader_for", "build_model", "cache_root", "data_settings", "dataset_roots",
           "dataset_ready", "decode_short_side", "default_short_side", "flip_allowed", "prepare_dataset",
           "prepare_dataset_on_every_node", "resolve_loader_device", "salient_windows"]


def dataset_roots(cfg: Config) -> tuple[Path, Path | None]:
    """(root, frames_root) of the configured dataset: where it is, or is made (its spec's)."""
    return dataset_spec(cfg.data.dataset).roots(cfg.data)


def prepare_dataset(cfg: Config, progress: bool = True) -> None:
    """Make the configured dataset unless already there, for a kind made on first use (the synthetic set: generated
    and its flow extracted); nothing for the others."""
    dataset_spec(cfg.data.dataset).prepare(cfg.data, progress)


def dataset_ready(cfg: Config) -> bool:
    """Whether the configured dataset is complete where this process looks for it; reads only."""
    return dataset_spec(cfg.data.dataset).ready(cfg.data)


def prepare_dataset_on_every_node(cfg: Config, env: Distributed) -> None:
    """:func:`prepare_dataset` for a run whose processes may sit on nodes that share no files (nothing, and no
    collective, for a kind that is not made on first use). The main process prepares the set first; then the first
    process of each node that does not find it complete (a node that does not see the main one's cache folder or
    ``--root``) makes its own copy, the same videos from the same seed, while nodes that see the main one's copy
    write nothing. Every rank waits for both steps, and a failure on any rank stops them all. (Nodes that share a
    folder with each other but not with the main node would write into it at once: give each its own, or share it
    with the main node.)"""
    if not dataset_spec(cfg.data.dataset).made_on_first_use:
        return

    def prepare() -> None:
        prepare_dataset(cfg, progress=cfg.run.progress)

    def prepare_unless_seen() -> None:
        if not dataset_ready(cfg):
            prepare()

    agree(prepare if env.is_main else None)
    agree(prepare_unless_seen if not env.is_main and env.local_rank == 0 else None)


def flip_allowed(cfg: Config) -> bool:
    """The flip policy: --flip/--no-flip if given, else the dataset kind's own."""
    if cfg.data.flip is not None:
        return cfg.data.flip
    return dataset_spec(cfg.data.dataset).flips_preserve_labels(dataset_roots(cfg)[0])


def salient_windows(cfg: Config):
    """The known discriminative windows of the configured dataset (the synthetic set's), or None."""
    return dataset_spec(cfg.data.dataset).salient_windows(dataset_roots(cfg)[0])


def build_loader_for(cfg: Config, subset: str, *, num_segments: int, device: str, backend: str,
                     num_classes: int | None = None, num_crops: int = 1, batch_size: int | None = None,
                     memory_limit: int | None = None):
    """The loader of ``subset`` ("train" or "test") as the configuration says (``batch_size``: cfg's when None;
    ``memory_limit``: the bytes its memory cache may take, None: no memory cache)."""
    root, frames_root = dataset_roots(cfg)
    train = subset == "train"
    return data.build_loader(
        cfg.data.dataset, root, subset=subset, split=cfg.data.split, frames_root=frames_root,
        list_file=cfg.data.train_list if train else cfg.data.val_list, num_classes=num_classes,
        naming=data.RawframesNaming(cfg.data.rgb_template, cfg.data.flow_template, cfg.data.start_index),
        batch_size=batch_size or cfg.optim.batch_size,
        sampling=ClipSampling(num_segments=num_segments, flow_length=cfg.model.flow_length, size=cfg.data.size,
                              flip=flip_allowed(cfg), num_crops=num_crops),
        sharding=Sharding(seed=cfg.run.seed, drop_last=train),
        decoding=Decoding(backend=backend, device=device, on_error=cfg.data.on_error,
                          memory_cache="off" if memory_limit is None else cfg.data.memory_cache,
                          memory_limit=memory_limit),
        flow=FlowSource(cfg.data.flow, cfg.data.flow_algorithm))


def data_settings(cfg: Config, short_side: int | None = None) -> dict:
    """What prediction needs, saved in checkpoints, to prepare a video as the training data was prepared.
    ``short_side``: the short side of the training frames (``ClipLoader.frame_short_side``), which prediction
    resizes every video to on decode, so that its crops and its flow (in pixels) have the training data's scale;
    None: the dataset kind's (:func:`default_short_side`)."""
    return {"size": cfg.data.size, "flip": flip_allowed(cfg), "flow_algorithm": cfg.data.flow_algorithm,
            "flow_bound": DEFAULT_BOUND, "precision": cfg.run.precision,
            "short_side": short_side or default_short_side(cfg)}


def decode_short_side(settings: dict, cfg: Config) -> int:
    """The short side prediction resizes videos to: ``settings["short_side"]`` (a checkpoint's data settings,
    checked when the checkpoint is read), or for a checkpoint saved without it, the dataset kind's."""
    value = settings.get("short_side")
    return default_short_side(cfg) if value is None else value


def default_short_side(cfg: Config) -> int:
    """The short side of a dataset kind's frames, for checkpoints that do not record their training frames': its
    spec's (the synthetic set's frame size; TSN's rawframes', 256, for the others)."""
    return dataset_spec(cfg.data.dataset).frame_short_side


def build_model(cfg: Config, num_classes: int) -> Network:
    """The model the configuration's model section describes (the backbone's weight file is loaded by training,
    not here: a model rebuilt from a checkpoint reads no file)."""
    return models.build_model(cfg.model, num_classes)


def resolve_loader_device(cfg: Config, model_device: torch.device) -> tuple[str, str]:
    """(data backend, loader device) for a model on ``model_device``: DALI's GPU pipeline feeds a CUDA model when
    DALI is installed; otherwise the CPU loader does (pinned memory, asynchronous copies)."""
    return data.loader_device(model_device, cfg.data.backend, cfg.data.flow)
