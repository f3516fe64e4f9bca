"""From a TrainConfig to its data and its model: shared by training, evaluation and prediction.

The synthetic dataset is generated and flow-extracted on first use, into a cache folder named after its parameters
(``$JNA_FAST_CACHE/synthetic/<parameters>``; ``JNA_FAST_CACHE`` defaults to ``~/.cache/jna_fast``), so runs with the
same parameters share it and runs with other parameters never see a stale one.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import TrainConfig
from .io.errors import DataError
from .data.synthetic import GENERATOR_VERSION

logger = logging.getLogger("jna_fast")

SYNTHETIC_FLOW_ALGORITHM = "dis"


def cache_root() -> Path:
    return Path(os.environ.get("JNA_FAST_CACHE", Path.home() / ".cache" / "jna_fast"))


def synthetic_parameters(cfg: TrainConfig) -> dict:
    return {"num_classes": cfg.synthetic_classes, "videos_per_class": cfg.synthetic_videos_per_class,
            "window_fraction": tuple(cfg.synthetic_window_fraction), "decoys": cfg.synthetic_decoys,
            "seed": cfg.synthetic_seed, "families": tuple(cfg.synthetic_families)}


def synthetic_root(cfg: TrainConfig) -> Path:
    if cfg.root:
        return Path(cfg.root)
    p = synthetic_parameters(cfg)
    low, high = p["window_fraction"]
    # The generator's version is in the name: a cache written by an older generator is never reused.
    name = (f"g{GENERATOR_VERSION}-c{p['num_classes']}-v{p['videos_per_class']}-w{low:g}-{high:g}-d{p['decoys']}"
            f"-s{p['seed']}-{'+'.join(p['families'])}")
    return cache_root() / "synthetic" / name


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
    from .data import make_synthetic
    from .data.synthetic import INCOMPLETE_MARKER, META_NAME
    from .flow import extract_flow

    root, frames_root = dataset_roots(cfg)
    existing = root / META_NAME
    if cfg.root and existing.exists() and not (root / INCOMPLETE_MARKER).exists():
        made_with = json.loads(existing.read_text(encoding="utf-8"))["parameters"]
        logger.info("synthetic dataset in %s: using it as it is (made with %s)", root, made_with)
    else:
        parameters = synthetic_parameters(cfg)
        logger.info("synthetic dataset in %s (%s)", root, parameters)
        make_synthetic(root, **parameters)
    if cfg.flow == "online":
        return
    summary = extract_flow(root / "UCF-101", frames_root, algorithm=SYNTHETIC_FLOW_ALGORITHM, progress=progress)
    if summary["failed"]:
        raise DataError(f"{frames_root}: flow extraction failed for {len(summary['failed'])} synthetic videos: "
                        f"{summary['failed'][:3]}")


def flip_allowed(cfg: TrainConfig) -> bool:
    """The flip policy: --flip/--no-flip if given, else the dataset's own (a synthetic_meta.json may declare that
    flips change labels; UCF101, HMDB51 and plain lists are flipped, as in TSN)."""
    if cfg.flip is not None:
        return cfg.flip
    meta = salient_metadata(cfg)
    return True if meta is None else bool(meta.get("horizontal_flip_preserves_label", True))


def salient_metadata(cfg: TrainConfig) -> dict | None:
    root, _ = dataset_roots(cfg)
    path = root / "synthetic_meta.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


@dataclass(frozen=True)
class SalientWindows:
    """Known discriminative windows: video_id -> [start, end) frames, and video_id -> class family."""

    windows: dict[str, tuple[int, int]]
    families: dict[str, str]

    @classmethod
    def of(cls, cfg: TrainConfig) -> "SalientWindows | None":
        meta = salient_metadata(cfg)
        if meta is None:
            return None
        windows, families = {}, {}
        for video in meta["videos"]:
            video_id = os.path.splitext(video["video"])[0]
            windows[video_id] = tuple(video["discriminative_frames"])
            families[video_id] = video["family"]
        return cls(windows, families)


def build_loader_for(cfg: TrainConfig, subset: str, *, num_segments: int, device: str, backend: str,
                     num_classes: int | None = None, num_crops: int = 1, batch_size: int | None = None):
    """The loader of ``subset`` ("train" or "test") as the configuration says (``batch_size``: cfg's when None)."""
    from .data import ClipSampling, Decoding, FlowSource, RawframesNaming, Sharding, build_loader

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


def data_settings(cfg: TrainConfig) -> dict:
    """What prediction needs, saved in checkpoints, to prepare a video as the training data was prepared."""
    from .flow import DEFAULT_BOUND

    return {"size": cfg.size, "flip": flip_allowed(cfg), "flow_algorithm": cfg.flow_algorithm,
            "flow_bound": DEFAULT_BOUND, "precision": cfg.precision}


def build_model(cfg: TrainConfig, num_classes: int):
    from .models import JNA

    return JNA(num_classes, backbone=cfg.backbone, num_segments=cfg.num_segments, flow_length=cfg.flow_length,
               share_after=cfg.share_after, dropout=cfg.dropout, streams=cfg.streams,
               stitch_self_weight=cfg.stitch_self_weight, stitch_normalise=cfg.stitch_normalise,
               consensus=cfg.consensus, attention_supervision=cfg.attention_supervision,
               backend=cfg.op_backend)


def resolve_loader_device(cfg: TrainConfig, model_device: torch.device) -> tuple[str, str]:
    """(data backend, loader device) for a model on ``model_device``: DALI's GPU pipeline feeds a CUDA model when
    DALI is installed; otherwise the CPU loader does (pinned memory, asynchronous copies)."""
    from .data import loader_device

    return loader_device(model_device, cfg.data_backend, cfg.flow)


def autocast_context(precision: str, device: torch.device):
    import contextlib

    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
