"""From a TrainConfig to its data and its model: shared by training, evaluation and prediction.

The synthetic dataset is generated and flow-extracted on first use, into a cache folder named after its parameters
(``$JNA_FAST_CACHE/synthetic/<parameters>``; ``JNA_FAST_CACHE`` defaults to ``~/.cache/jna_fast``), by the main
process of a run and then by the first process of each node that does not see that copy; what the dataset itself
knows (its folder name, its salient windows, its flip policy) is in jna_fast/data/synthetic.py.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from . import data, models
from .config import TrainConfig
from .data import ClipSampling, Decoding, FlowSource, RawframesNaming, Sharding, build_loader, synthetic
from .flow import DEFAULT_BOUND, DEFAULT_ONLINE_ALGORITHM, extract_flow, extraction_complete
from .io.errors import DataError
from .models import ModelConfig, Network, part
from .runtime import Distributed, agree

logger = logging.getLogger("jna_fast")

# The synthetic set's flow is extracted with the fast online algorithm: its videos are small and cleanly textured.
SYNTHETIC_FLOW_ALGORITHM = DEFAULT_ONLINE_ALGORITHM
# TSN's rawframes (340 x 256): the short side that 224 px test crops (0.875 of it) are cut from.
TSN_SHORT_SIDE = 256


def cache_root() -> Path:
    return Path(os.environ.get("JNA_FAST_CACHE", Path.home() / ".cache" / "jna_fast"))


def synthetic_parameters(cfg: TrainConfig) -> dict:
    """make_synthetic's arguments for the configured synthetic set."""
    return {"num_classes": cfg.synthetic_classes, "videos_per_class": cfg.synthetic_videos_per_class,
            "window_fraction": tuple(cfg.synthetic_window_fraction), "decoys": cfg.synthetic_decoys,
            "seed": cfg.synthetic_seed, "families": tuple(cfg.synthetic_families)}


def synthetic_root(cfg: TrainConfig) -> Path:
    if cfg.root:
        return Path(cfg.root)
    return cache_root() / "synthetic" / synthetic.cache_folder_name(**synthetic_parameters(cfg))


def dataset_roots(cfg: TrainConfig) -> tuple[Path, Path | None]:
    """(root, frames_root) of the configured dataset; for the synthetic set, where it is (or will be) made."""
    if cfg.dataset == "synthetic":
        root = synthetic_root(cfg)
        return root, Path(cfg.frames_root) if cfg.frames_root else root / "frames"
    return Path(cfg.root), Path(cfg.frames_root) if cfg.frames_root else None


def prepare_synthetic(cfg: TrainConfig, progress: bool = True) -> None:
    """Generate the synthetic dataset and extract its flow (unless --flow online), unless already there (both
    steps are resumable).

    A complete synthetic dataset already in an explicit ``--root`` (made by ``python -m jna_fast.data.synthetic``,
    say) is used as it is; the ``--synthetic-*`` options only shape a dataset generated here."""
    root, frames_root = dataset_roots(cfg)
    made_with = synthetic.complete_dataset_parameters(root) if cfg.root else None
    if made_with is not None:
        logger.info("synthetic dataset in %s: using it as it is (made with %s)", root, made_with)
    else:
        parameters = synthetic_parameters(cfg)
        logger.info("synthetic dataset in %s (%s)", root, parameters)
        synthetic.make_synthetic(root, **parameters)
    if cfg.flow == "online":
        return
    summary = extract_flow(root / synthetic.VIDEO_DIR, frames_root, algorithm=SYNTHETIC_FLOW_ALGORITHM,
                           progress=progress)
    if summary["failed"]:
        raise DataError(f"{frames_root}: flow extraction failed for {len(summary['failed'])} synthetic videos: "
                        f"{summary['failed'][:3]}")


def synthetic_ready(cfg: TrainConfig) -> bool:
    """Whether the configured synthetic dataset is complete where this process looks for it, its flow extracted
    (unless --flow online); reads only."""
    root, frames_root = dataset_roots(cfg)
    if synthetic.complete_dataset_parameters(root) is None:
        return False
    return cfg.flow == "online" or extraction_complete(root / synthetic.VIDEO_DIR, frames_root,
                                                       algorithm=SYNTHETIC_FLOW_ALGORITHM)


def prepare_synthetic_on_every_node(cfg: TrainConfig, env: Distributed) -> None:
    """:func:`prepare_synthetic` for a run whose processes may sit on nodes that share no files. The main process
    prepares the set first; then the first process of each node that does not find it complete (a node that does
    not see the main one's cache folder or ``--root``) makes its own copy, the same videos from the same seed, while
    nodes that see the main one's copy write nothing. Every rank waits for both steps, and a failure on any rank
    stops them all. (Nodes that share a folder with each other but not with the main node would write into it at
    once: give each its own, or share it with the main node.)"""
    def prepare() -> None:
        prepare_synthetic(cfg, progress=cfg.progress)

    def prepare_unless_seen() -> None:
        if not synthetic_ready(cfg):
            prepare()

    agree(prepare if env.is_main else None)
    agree(prepare_unless_seen if not env.is_main and env.local_rank == 0 else None)


def flip_allowed(cfg: TrainConfig) -> bool:
    """The flip policy: --flip/--no-flip if given, else the dataset's own (data.synthetic.flips_preserve_labels)."""
    if cfg.flip is not None:
        return cfg.flip
    return synthetic.flips_preserve_labels(dataset_roots(cfg)[0])


def salient_windows(cfg: TrainConfig) -> synthetic.SalientWindows | None:
    """The known discriminative windows of the configured dataset (the synthetic set's), or None."""
    return synthetic.SalientWindows.read(dataset_roots(cfg)[0])


def build_loader_for(cfg: TrainConfig, subset: str, *, num_segments: int, device: str, backend: str,
                     num_classes: int | None = None, num_crops: int = 1, batch_size: int | None = None):
    """The loader of ``subset`` ("train" or "test") as the configuration says (``batch_size``: cfg's when None)."""
    kind = "ucf101" if cfg.dataset == "synthetic" else cfg.dataset
    root, frames_root = dataset_roots(cfg)
    train = subset == "train"
    return build_loader(
        kind, root, subset=subset, split=cfg.split, frames_root=frames_root,
        list_file=cfg.train_list if train else cfg.val_list, num_classes=num_classes,
        naming=RawframesNaming(cfg.rgb_template, cfg.flow_template, cfg.start_index),
        batch_size=batch_size or cfg.batch_size,
        sampling=ClipSampling(num_segments=num_segments, flow_length=cfg.flow_length, size=cfg.size,
                              flip=flip_allowed(cfg), num_crops=num_crops),
        sharding=Sharding(seed=cfg.seed, drop_last=train),
        decoding=Decoding(backend=backend, device=device, on_error=cfg.on_error),
        flow=FlowSource(cfg.flow, cfg.flow_algorithm))


def data_settings(cfg: TrainConfig, short_side: int | None = None) -> dict:
    """What prediction needs, saved in checkpoints, to prepare a video as the training data was prepared.
    ``short_side``: the short side of the training frames (``ClipLoader.frame_short_side``), which prediction
    resizes every video to on decode, so that its crops and its flow (in pixels) have the training data's scale;
    None: the dataset kind's (:func:`default_short_side`)."""
    return {"size": cfg.size, "flip": flip_allowed(cfg), "flow_algorithm": cfg.flow_algorithm,
            "flow_bound": DEFAULT_BOUND, "precision": cfg.precision,
            "short_side": short_side or default_short_side(cfg)}


def decode_short_side(settings: dict, cfg: TrainConfig) -> int:
    """The short side prediction resizes videos to: ``settings["short_side"]`` (a checkpoint's data settings,
    checked when the checkpoint is read), or for a checkpoint saved without it, the dataset kind's."""
    value = settings.get("short_side")
    return default_short_side(cfg) if value is None else value


def default_short_side(cfg: TrainConfig) -> int:
    """The short side of a dataset kind's frames, for checkpoints that do not record their training frames':
    the synthetic set's frame size, else TSN's rawframes' (the recipe extracts at ``--short-side 256``)."""
    return synthetic.DEFAULT_FRAME_SIZE if cfg.dataset == "synthetic" else TSN_SHORT_SIDE


def build_model(cfg: TrainConfig, num_classes: int) -> Network:
    """The model the configuration describes, its parts' options from the flat options (the learning-rate factors
    and warm-ups of the attention and the stitches included)."""
    sharing = (part("sharing", "cross_stitch", after=tuple(cfg.share_after), self_weight=cfg.stitch_self_weight,
                    normalise=cfg.stitch_normalise, shared_fraction=cfg.stitch_shared_fraction,
                    lr_scale=cfg.stitch_lr_scale, warmup=cfg.stitch_warmup)
               if cfg.share_after else part("sharing", "none"))
    temporal = (part("temporal_pooling", "joint_attention", lr_scale=cfg.attention_lr_scale,
                     warmup=cfg.attention_warmup, supervision=cfg.attention_supervision)
                if cfg.consensus == "attention" else part("temporal_pooling", "average"))
    config = ModelConfig(backbone=part("backbone", cfg.backbone), sharing=sharing,
                         spatial_pooling=part("spatial_pooling", "average"), temporal_pooling=temporal,
                         fusion=part("fusion", "late_scores"), streams=cfg.streams, flow_length=cfg.flow_length,
                         dropout=cfg.dropout, op_backend=cfg.op_backend)
    return models.build_model(config, num_classes)


def resolve_loader_device(cfg: TrainConfig, model_device: torch.device) -> tuple[str, str]:
    """(data backend, loader device) for a model on ``model_device``: DALI's GPU pipeline feeds a CUDA model when
    DALI is installed; otherwise the CPU loader does (pinned memory, asynchronous copies)."""
    return data.loader_device(model_device, cfg.data_backend, cfg.flow)
