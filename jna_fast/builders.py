"""From a Config to its data and its model: shared by training, evaluation and prediction.

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
from .config import Config
from .data import ClipSampling, Decoding, FlowSource, RawframesNaming, Sharding, build_loader, synthetic
from .flow import DEFAULT_BOUND, DEFAULT_ONLINE_ALGORITHM, extract_flow, extraction_complete
from .io.errors import DataError
from .models import Network
from .runtime import Distributed, agree

logger = logging.getLogger("jna_fast")

# The synthetic set's flow is extracted with the fast online algorithm: its videos are small and cleanly textured.
SYNTHETIC_FLOW_ALGORITHM = DEFAULT_ONLINE_ALGORITHM
# TSN's rawframes (340 x 256): the short side that 224 px test crops (0.875 of it) are cut from.
TSN_SHORT_SIDE = 256


def cache_root() -> Path:
    return Path(os.environ.get("JNA_FAST_CACHE", Path.home() / ".cache" / "jna_fast"))


def synthetic_parameters(cfg: Config) -> dict:
    """make_synthetic's arguments for the configured synthetic set."""
    return {"num_classes": cfg.data.synthetic.classes, "videos_per_class": cfg.data.synthetic.videos_per_class,
            "window_fraction": tuple(cfg.data.synthetic.window_fraction), "decoys": cfg.data.synthetic.decoys,
            "seed": cfg.data.synthetic.seed, "families": tuple(cfg.data.synthetic.families)}


def synthetic_root(cfg: Config) -> Path:
    if cfg.data.root:
        return Path(cfg.data.root)
    return cache_root() / "synthetic" / synthetic.cache_folder_name(**synthetic_parameters(cfg))


def dataset_roots(cfg: Config) -> tuple[Path, Path | None]:
    """(root, frames_root) of the configured dataset; for the synthetic set, where it is (or will be) made."""
    if cfg.data.dataset == "synthetic":
        root = synthetic_root(cfg)
        return root, Path(cfg.data.frames_root) if cfg.data.frames_root else root / "frames"
    return Path(cfg.data.root), Path(cfg.data.frames_root) if cfg.data.frames_root else None


def prepare_synthetic(cfg: Config, progress: bool = True) -> None:
    """Generate the synthetic dataset and extract its flow (unless --flow online), unless already there (both
    steps are resumable).

    A complete synthetic dataset already in an explicit ``--root`` (made by ``python -m jna_fast.data.synthetic``,
    say) is used as it is; the ``--synthetic-*`` options only shape a dataset generated here."""
    root, frames_root = dataset_roots(cfg)
    made_with = synthetic.complete_dataset_parameters(root) if cfg.data.root else None
    if made_with is not None:
        logger.info("synthetic dataset in %s: using it as it is (made with %s)", root, made_with)
    else:
        parameters = synthetic_parameters(cfg)
        logger.info("synthetic dataset in %s (%s)", root, parameters)
        synthetic.make_synthetic(root, **parameters)
    if cfg.data.flow == "online":
        return
    summary = extract_flow(root / synthetic.VIDEO_DIR, frames_root, algorithm=SYNTHETIC_FLOW_ALGORITHM,
                           progress=progress)
    if summary["failed"]:
        raise DataError(f"{frames_root}: flow extraction failed for {len(summary['failed'])} synthetic videos: "
                        f"{summary['failed'][:3]}")


def synthetic_ready(cfg: Config) -> bool:
    """Whether the configured synthetic dataset is complete where this process looks for it, its flow extracted
    (unless --flow online); reads only."""
    root, frames_root = dataset_roots(cfg)
    if synthetic.complete_dataset_parameters(root) is None:
        return False
    return cfg.data.flow == "online" or extraction_complete(root / synthetic.VIDEO_DIR, frames_root,
                                                       algorithm=SYNTHETIC_FLOW_ALGORITHM)


def prepare_synthetic_on_every_node(cfg: Config, env: Distributed) -> None:
    """:func:`prepare_synthetic` for a run whose processes may sit on nodes that share no files. The main process
    prepares the set first; then the first process of each node that does not find it complete (a node that does
    not see the main one's cache folder or ``--root``) makes its own copy, the same videos from the same seed, while
    nodes that see the main one's copy write nothing. Every rank waits for both steps, and a failure on any rank
    stops them all. (Nodes that share a folder with each other but not with the main node would write into it at
    once: give each its own, or share it with the main node.)"""
    def prepare() -> None:
        prepare_synthetic(cfg, progress=cfg.run.progress)

    def prepare_unless_seen() -> None:
        if not synthetic_ready(cfg):
            prepare()

    agree(prepare if env.is_main else None)
    agree(prepare_unless_seen if not env.is_main and env.local_rank == 0 else None)


def flip_allowed(cfg: Config) -> bool:
    """The flip policy: --flip/--no-flip if given, else the dataset's own (data.synthetic.flips_preserve_labels)."""
    if cfg.data.flip is not None:
        return cfg.data.flip
    return synthetic.flips_preserve_labels(dataset_roots(cfg)[0])


def salient_windows(cfg: Config) -> synthetic.SalientWindows | None:
    """The known discriminative windows of the configured dataset (the synthetic set's), or None."""
    return synthetic.SalientWindows.read(dataset_roots(cfg)[0])


def build_loader_for(cfg: Config, subset: str, *, num_segments: int, device: str, backend: str,
                     num_classes: int | None = None, num_crops: int = 1, batch_size: int | None = None):
    """The loader of ``subset`` ("train" or "test") as the configuration says (``batch_size``: cfg's when None)."""
    kind = "ucf101" if cfg.data.dataset == "synthetic" else cfg.data.dataset
    root, frames_root = dataset_roots(cfg)
    train = subset == "train"
    return build_loader(
        kind, root, subset=subset, split=cfg.data.split, frames_root=frames_root,
        list_file=cfg.data.train_list if train else cfg.data.val_list, num_classes=num_classes,
        naming=RawframesNaming(cfg.data.rgb_template, cfg.data.flow_template, cfg.data.start_index),
        batch_size=batch_size or cfg.optim.batch_size,
        sampling=ClipSampling(num_segments=num_segments, flow_length=cfg.model.flow_length, size=cfg.data.size,
                              flip=flip_allowed(cfg), num_crops=num_crops),
        sharding=Sharding(seed=cfg.run.seed, drop_last=train),
        decoding=Decoding(backend=backend, device=device, on_error=cfg.data.on_error),
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
    """The short side of a dataset kind's frames, for checkpoints that do not record their training frames':
    the synthetic set's frame size, else TSN's rawframes' (the recipe extracts at ``--short-side 256``)."""
    return synthetic.DEFAULT_FRAME_SIZE if cfg.data.dataset == "synthetic" else TSN_SHORT_SIDE


def build_model(cfg: Config, num_classes: int) -> Network:
    """The model the configuration's model section describes (the backbone's weight file is loaded by training,
    not here: a model rebuilt from a checkpoint reads no file)."""
    return models.build_model(cfg.model, num_classes)


def resolve_loader_device(cfg: Config, model_device: torch.device) -> tuple[str, str]:
    """(data backend, loader device) for a model on ``model_device``: DALI's GPU pipeline feeds a CUDA model when
    DALI is installed; otherwise the CPU loader does (pinned memory, asynchronous copies)."""
    return data.loader_device(model_device, cfg.data.backend, cfg.data.flow)
