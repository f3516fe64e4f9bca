"""The clip loader's settings (see build_loader in jna_fast/data/loader.py), four small frozen objects with defaults:
:class:`ClipSampling` (snippets, crops, views; it draws a clip's snippets and crops: the one sampling path of
training, evaluation, prediction and long-video windows), :class:`Sharding` (shard, order), :class:`Decoding`
(backend, device, RGB source, on_error, threads) and :class:`FlowSource` (rawframes or online). Light: NumPy and
torch, no PyAV or OpenCV (the online flow's computation loads when it is made)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import torch

from .. import flow
from ..flow.encoding import DEFAULT_BOUND
from ..flow.names import DEFAULT_ONLINE_ALGORITHM
from .options import DEFAULT_TEST_SEGMENTS, MEMORY_CACHE_SHARE
from .sampling import flow_stack_indices, tsn_snippet_starts
from .transforms import DEFAULT_TEST_CROP_SCALE, TRAIN_SCALES, Crop, sample_train_crop, tsn_test_crops

DEFAULT_TRAIN_SEGMENTS = 3

MIB = 1 << 20
# Used when the available memory cannot be read (no /proc/meminfo, no sysconf).
FALLBACK_AVAILABLE = 4 << 30


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable`` of /proc/meminfo; the physical memory where unreadable)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return FALLBACK_AVAILABLE


def memory_limit(limit_mib: int | None) -> int:
    """The cache's limit in bytes: ``limit_mib`` MiB, or MEMORY_CACHE_SHARE of the available memory divided among
    the node's processes (``LOCAL_WORLD_SIZE``, set by torchrun)."""
    if limit_mib is not None:
        return int(limit_mib) * MIB
    processes = max(int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1), 1)
    return int(available_memory() * MEMORY_CACHE_SHARE) // processes


def distributed_shard() -> tuple[int, int]:
    """The shard this process reads by default (:class:`Sharding`'s None).

    Returns:
        ``(rank, world size)`` of torch.distributed when it is initialised, else ``(0, 1)``.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def shard_bounds(num_items: int, shard_id: int, num_shards: int) -> tuple[int, int]:
    """[begin, end) of shard ``shard_id``: contiguous, disjoint, sizes differ by at most one (DALI's rule).

    Args:
        num_items: the items to share out.
        shard_id: this shard, in ``0 .. num_shards - 1``.
        num_shards: the number of shards.

    Returns:
        ``(begin, end)``: the positions of the shard's items.
    """
    return shard_id * num_items // num_shards, (shard_id + 1) * num_items // num_shards



class SampledClip(NamedTuple):
    """What :meth:`ClipSampling.sample` draws for a clip of ``num_frames`` frames (frame numbers 0-based, from its
    first frame; docs/design.md §6.4).

    Attributes:
        starts: int64 ``[T]`` the snippets' start frames.
        mask: bool ``[T]``: False on the slots that repeat the last real snippet of a short clip.
        flows: int64 ``[T, L]`` the indices of each snippet's flow stack.
        crops: the crops of the clip's views (one in training).
    """

    starts: np.ndarray
    mask: np.ndarray
    flows: np.ndarray
    crops: tuple[Crop, ...]


@dataclass(frozen=True)
class ClipSampling:
    """Which frames make a clip and how it is cut into views (TSN).

    Each of the T snippets is an RGB frame and a stack of ``flow_length`` flow pairs, cropped and resized to
    ``size``. The views of a clip are adjacent rows of ClipBatch.rgb/flow (ClipBatch.num_views, mean_over_views),
    cut from one decode of its frames (and one computation of its online flow). No check here: build_loader and
    the loader check the values.

    Attributes:
        num_segments: T, snippets per clip; None: 3 in training, 25 at test.
        flow_length: L, flow pairs per stack (the flow input has 2L channels).
        size: the side (pixels) of the square crops fed to the model.
        train: random snippet positions and crops with augmentation; otherwise the centre of each segment and
            ``num_crops`` test views. None: True for the subset "train".
        flip: horizontal flips in training and among the test views (False where labels depend on left/right; a
            mirrored view's flow x is negated).
        num_crops: test views per clip: 1 (centre), 3 (along the long side) or 10 (corners + centre, and their
            mirrors when ``flip``; 5 views without).
        test_crop_scale: the test windows' side as a fraction of the short side.
    """

    num_segments: int | None = None
    flow_length: int = 5
    size: int = 224
    train: bool | None = None
    flip: bool = True
    num_crops: int = 1
    test_crop_scale: float = DEFAULT_TEST_CROP_SCALE

    def for_subset(self, subset: str) -> "ClipSampling":
        """These settings with ``train`` and ``num_segments`` decided for ``subset`` where they were left None.

        Args:
            subset: ``"train"`` or another subset (``"test"``, ``"val"``).

        Returns:
            A copy with no None left.
        """
        train = subset == "train" if self.train is None else self.train
        return replace(self, train=train,
                       num_segments=self.num_segments or (DEFAULT_TRAIN_SEGMENTS if train else DEFAULT_TEST_SEGMENTS))


    def sample(self, num_frames: int, frame_size: tuple[int, int],
               rng: np.random.Generator | None = None) -> SampledClip:
        """The snippets and crops of a clip, with these settings resolved (``for_subset``).

        Args:
            num_frames: the clip's frame count (>= 2).
            frame_size: ``(height, width)`` of its frames.
            rng: draws the training positions and crop (a test clip draws nothing).

        Returns:
            The snippets' starts, mask and flow indices, and the views' crops.

        Raises:
            ValueError: fewer than 2 frames, ``num_segments`` < 1, ``num_crops`` not 1, 3 or 10, or training
                without ``rng``.
        """
        starts, mask = tsn_snippet_starts(num_frames, self.num_segments, self.flow_length, self.train, rng)
        flows = flow_stack_indices(starts, self.flow_length, num_frames - 1)
        height, width = frame_size
        if self.train:
            crops = (sample_train_crop(height, width, rng, TRAIN_SCALES, self.flip),)
        else:
            crops = tsn_test_crops(height, width, self.test_crop_scale, self.num_crops, self.flip)
        return SampledClip(starts, mask, flows, crops)


@dataclass(frozen=True)
class Sharding:
    """Which clips this process reads, in which order: one shard of a permutation that is the same on every rank.

    Attributes:
        shard_id: this process's shard; None: the rank of torch.distributed, else 0.
        num_shards: the number of shards; None: the world size of torch.distributed, else 1.
        seed: with the epoch, draws the permutation.
        shuffle: permute the clips each epoch; None: in training.
        drop_last: every shard yields the smallest shard's number of whole batches, so that the ranks of a
            distributed run make the same number of steps.
    """

    shard_id: int | None = None
    num_shards: int | None = None
    seed: int = 0
    shuffle: bool | None = None
    drop_last: bool = False

    def resolved(self, train: bool) -> "Sharding":
        """These settings with the shard taken from torch.distributed and ``shuffle`` from ``train`` where None.

        Args:
            train: whether the clips are for training.

        Returns:
            A copy with no None left.
        """
        rank, world = distributed_shard()
        return replace(self, shard_id=rank if self.shard_id is None else self.shard_id,
                       num_shards=world if self.num_shards is None else self.num_shards,
                       shuffle=train if self.shuffle is None else self.shuffle)


def prefetch_depth(prefetch: int | None, from_memory: bool) -> int:
    """Batches assembled ahead of the consumer by a background thread (``prefetch`` None: 2, or 0 for batches
    served from memory with no GPU to train on: on the CPU that thread stalls the step's intra-op threads, which
    wait for the core it takes, more than it saves; docs/design.md §6)."""
    if prefetch is not None:
        return prefetch
    return 0 if from_memory and not torch.cuda.is_available() else 2


@dataclass(frozen=True)
class Decoding:
    """How the pixels are read: backend, device, RGB source, bad data, threads, memory.

    Attributes:
        backend: "dali", "pyav" or "auto" (DALI when installed and the clips go to a GPU, "pyav" on the CPU and
            always for online flow).
        device: "gpu" (DALI mixed decoders, CUDA outputs on the local rank's GPU) or "cpu"; None: "gpu" when DALI
            and CUDA are available and the flow comes from rawframes (:func:`loader_device` gives the choice for a
            model's device).
        rgb_source: "video" (decode the videos; None means it for video kinds) or "frames" (the rawframes' img
            files; the only choice for kind="rawframes").
        on_error: "raise" or "skip" (warn, count, report at epoch end; a skipped clip's row is filled by another
            clip of the shard, flagged in ClipBatch.replaced, so every rank yields len(loader) batches).
        num_threads: decoding threads (None: up to 4, as many as the CPUs).
        prefetch: batches assembled ahead by a background thread (0: none; None: 2, or none for batches served
            from the memory cache with no GPU, where that thread would take a core from the step).
        pin_memory: CPU batches in page-locked memory (None: when CUDA is available and device="cpu").
        short_side: with online flow, every video's frames are resized on decode so their short side is this many
            pixels (the aspect ratio kept), and the crops and the flow are cut and computed at that size, as from
            rawframes extracted with ``--short-side`` (None: the videos' own size).
        memory_cache: "on", "auto" or "off" (PyAV backend): each video decoded once and its frames and flow kept
            in memory for the run; "auto" when the split's decoded size fits under ``memory_limit``
            (jna_fast/data/memory_cache.py).
        memory_limit: the memory cache's limit in bytes (None: a share of the available memory divided among the
            node's processes).
    """

    backend: str = "auto"
    device: str | None = None
    rgb_source: str | None = None
    on_error: str = "raise"
    num_threads: int | None = None
    prefetch: int | None = None
    pin_memory: bool | None = None
    short_side: int | None = None
    memory_cache: str = "off"
    memory_limit: int | None = None


@dataclass(frozen=True)
class FlowSource:
    """Where the flow stacks come from: the rawframes, or computed online from the decoded frames.

    Attributes:
        source: "rawframes" reads the flow images of each video's rawframes folder (under build_loader's
            ``frames_root``); "online" computes each stack from the video's decoded frames (jna_fast/flow/online.py;
            no rawframes needed).
        algorithm: the online flow's algorithm: "dis", "farneback", "tvl1" or "nvof" (DALI, on a GPU with
            optical-flow hardware).
        bound: the online flow is clipped at this many pixels, as the extractor's --bound.
        quantise: round the online flow to the 8-bit grid of the flow JPEGs.
    """

    source: str = "rawframes"
    algorithm: str = DEFAULT_ONLINE_ALGORITHM
    bound: float = DEFAULT_BOUND
    quantise: bool = True

    @classmethod
    def online(cls, algorithm: str = DEFAULT_ONLINE_ALGORITHM, bound: float = DEFAULT_BOUND,
               quantise: bool = True) -> "FlowSource":
        """Flow computed online from the videos' decoded frames.

        Args:
            algorithm: "dis", "farneback", "tvl1" or "nvof".
            bound: clip at this many pixels.
            quantise: round to the 8-bit grid of the flow JPEGs.

        Returns:
            ``FlowSource("online", algorithm, bound, quantise)``.
        """
        return cls("online", algorithm, bound, quantise)

    def online_flow(self):
        """The online flow computation (jna_fast.flow.OnlineFlow, its algorithm checked here), or None when the flow
        is read from rawframes.

        Raises:
            ValueError: an algorithm not in ``jna_fast.flow.ALGORITHMS``, or a bad bound.
            FlowAlgorithmUnavailable: the algorithm cannot run here.
        """
        return flow.OnlineFlow(self.algorithm, self.bound, self.quantise) if self.source == "online" else None

