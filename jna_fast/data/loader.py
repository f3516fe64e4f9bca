"""The clip loader: dataset index -> sharded, shuffled, TSN-sampled, augmented batches (see build_loader). Its
settings are in loader_settings.py, its engine (:class:`ClipLoader`) in clip_loader.py; here, the choice of backend
and device and the assembly."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import torch

from ..io.errors import DataError, IssueLog
from .clip_loader import ClipLoader
from .dali_pipeline import dali_available
from .datasets import dataset_spec, load_index
from .loader_settings import (DEFAULT_TRAIN_SEGMENTS, ClipSampling, Decoding, FlowSource, Sharding,
                              distributed_shard, shard_bounds)
from .options import BACKENDS, FLOW_SOURCES
from .rawframes import DEFAULT_NAMING, RawframesNaming

__all__ = ["DEFAULT_TRAIN_SEGMENTS", "ClipLoader", "ClipSampling", "Decoding", "FlowSource", "Sharding",
           "build_loader", "distributed_shard", "loader_device", "shard_bounds"]


def _resolve_backend(backend: str, flow_source: str = "rawframes", to_gpu: bool = False) -> str:
    """The backend ("dali" | "pyav") that ``backend`` ("auto" included) means for flow from ``flow_source``, the
    clips going to a GPU (``to_gpu``) or staying on the CPU. "auto" takes DALI only for a GPU: on the CPU the PyAV
    backend decodes faster than DALI's CPU operators and its memory cache serves every epoch after the first
    (docs/design.md §6.9)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if flow_source not in FLOW_SOURCES:
        raise ValueError(f"flow_source must be one of {FLOW_SOURCES}, got {flow_source!r}")
    if flow_source == "online":
        # Online flow is computed on the decoded frames in the PyAV backend's threads (nvof: DALI on the GPU).
        if backend == "dali":
            raise ValueError("flow_source='online' runs on backend='pyav' (or 'auto'); backend='dali' decodes flow "
                             "JPEGs from rawframes")
        return "pyav"
    if backend == "auto":
        return "dali" if to_gpu and dali_available() else "pyav"
    if backend == "dali" and not dali_available():
        raise ValueError("backend='dali' needs nvidia-dali: pip install 'jna_fast[dali]'; or use backend='pyav'")
    return backend


def loader_device(model_device: torch.device | str, backend: str = "auto",
                  flow_source: str = "rawframes") -> tuple[str, str]:
    """The backend and loader device to ask build_loader for, to feed a model on ``model_device``.

    "gpu" (DALI's GPU decoders, batches already on the model's GPU) only when the backend resolves to DALI and the
    model is on CUDA; otherwise "cpu", whose batches are in pinned memory when CUDA is available (build_loader's
    default), so ``batch.to(model_device, non_blocking=True)`` copies asynchronously. Online flow is computed in
    the PyAV backend: ("pyav", "cpu") whatever the model's device ("auto" resolves to it; "dali" is refused).

    Args:
        model_device: where the model runs.
        backend: "auto", "dali" or "pyav".
        flow_source: "rawframes" or "online".

    Returns:
        ``(backend, device)``: the resolved backend ("dali" | "pyav") and the loader device ("gpu" | "cpu").

    Raises:
        ValueError: an unknown backend or flow source, "dali" with online flow, or "dali" without nvidia-dali.
    """
    on_cuda = torch.device(model_device).type == "cuda" and torch.cuda.is_available()
    resolved = _resolve_backend(backend, flow_source, on_cuda)
    return resolved, "gpu" if resolved == "dali" and on_cuda else "cpu"


def _rgb_source(kind: str, frames_root, rgb_source: str | None, flow_source: str) -> str:
    """Where the RGB of kind ``kind`` comes from ("video" or "frames"; ``rgb_source`` None: its default), checked
    against where its flow comes from."""
    videos = dataset_spec(kind).stores_videos
    if not videos and flow_source == "online":
        raise ValueError(f"flow_source='online' computes flow from videos: use a video kind, not kind={kind!r}")
    if videos and frames_root is None and flow_source == "rawframes":
        raise ValueError(f"kind={kind!r} needs frames_root= (the rawframes folder holding the flow, written by "
                         f"`python -m jna_fast.flow extract`), or flow_source='online'")
    if frames_root is not None and not Path(frames_root).is_dir():
        raise DataError(f"{frames_root}: frames_root not found")
    rgb_source = rgb_source or ("video" if videos else "frames")
    if rgb_source not in ("video", "frames") or (not videos and rgb_source == "video"):
        raise ValueError(f"rgb_source must be 'video' or 'frames' ('frames' for kind={kind!r}), got {rgb_source!r}")
    if flow_source == "online" and rgb_source != "video":
        raise ValueError("flow_source='online' decodes the RGB from the videos too: rgb_source must be 'video'")
    return rgb_source


def build_loader(kind: str, root: str | os.PathLike, *, split: int = 1, subset: str = "train",
                 frames_root: str | os.PathLike | None = None, list_file: str | os.PathLike | None = None,
                 num_classes: int | None = None, naming: RawframesNaming = DEFAULT_NAMING, batch_size: int = 8,
                 sampling: ClipSampling = ClipSampling(), sharding: Sharding = Sharding(),
                 decoding: Decoding = Decoding(), flow: FlowSource = FlowSource()) -> ClipLoader:
    """A loader of two-stream clips (jna_fast.data's module doc); settings left None are decided here.

    Args:
        kind: the dataset kind (``KINDS``; "video": ``root`` is one video file, its clips labelled -1).
        root: the dataset's root folder (layouts: jna_fast/data/lists.py).
        split: the official split, for kinds that have them.
        subset: "train" or "test".
        frames_root: the rawframes folder of a video dataset (``python -m jna_fast.flow extract``, or TSN's
            dense_flow, denseflow or mmaction2's build_rawframes).
        list_file: a list file, replacing split/subset.
        num_classes: bounds the lists' labels.
        naming: the rawframes' file names (mmaction2's ``filename_tmpl`` and ``start_index``; rawframes.py).
        batch_size: clips per batch (B).
        sampling: the snippets and views of a clip.
        sharding: which clips this process reads, in which order.
        decoding: backend, device, RGB source, on_error and threads.
        flow: rawframes or online.

    Returns:
        The loader: an iterable of ClipBatch, ``len()`` batches per epoch.

    Raises:
        ValueError: settings that do not fit each other or the kind (backend, device, RGB or flow source,
            short_side, pin_memory, shard, a size or count < 1, test crops in training, unknown kind or subset).
        DataError: a missing root, frames_root, list or video, or a bad list line.
    """
    if decoding.short_side is not None and (flow.source != "online" or int(decoding.short_side) < 1):
        raise ValueError(f"short_side={decoding.short_side!r}: must be a number of pixels >= 1, with online flow "
                         f"(rawframes keep the size they were extracted at)")
    cuda = torch.cuda.is_available()
    device = decoding.device
    backend = _resolve_backend(decoding.backend, flow.source, device == "gpu" or (device is None and cuda))
    online_flow = flow.online_flow()
    issues = IssueLog(decoding.on_error)
    index = load_index(kind, root, split=split, subset=subset, list_file=list_file, frames_root=frames_root,
                       num_classes=num_classes, issues=issues)
    rgb_source = _rgb_source(kind, frames_root, decoding.rgb_source, flow.source)
    if device is None:
        device = loader_device("cuda" if cuda else "cpu", backend, flow.source)[1]
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
    if device == "gpu" and (backend != "dali" or not cuda):
        raise ValueError("device='gpu' needs backend='dali' and a CUDA device; loader_device(model_device, "
                         "backend) gives the loader device that fits (the CPU loader feeds a GPU without DALI)")
    if decoding.pin_memory and not cuda:
        raise ValueError("pin_memory=True needs CUDA (page-locked memory only speeds up copies to a GPU)")
    sampling = sampling.for_subset(subset)
    decoding = replace(decoding, backend=backend, device=device, rgb_source=rgb_source,
                       num_threads=decoding.num_threads or min(4, os.cpu_count() or 1),
                       pin_memory=cuda and device == "cpu" if decoding.pin_memory is None else decoding.pin_memory)
    return ClipLoader(index, batch_size=batch_size, sampling=sampling, sharding=sharding.resolved(sampling.train),
                      decoding=decoding, issues=issues, naming=naming, online_flow=online_flow)

