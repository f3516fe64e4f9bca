"""The clip loader: dataset index -> sharded, shuffled, TSN-sampled, augmented batches (see build_loader)."""

from __future__ import annotations

import itertools
import logging
import math
import os
import queue
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..flow.algorithms import DEFAULT_ONLINE_ALGORITHM
from ..flow.encoding import DEFAULT_BOUND
from ..flow.online import OnlineFlow
from ..io.errors import DataError, IssueLog
from ..io.video import VideoInfo, probe_video, short_side_size
from .backends import DaliBackend, PyAVBackend
from .batch import ClipBatch, ClipRequest
from .dali_pipeline import dali_available
from .lists import DatasetIndex, load_index
from .options import BACKENDS, DEFAULT_TEST_SEGMENTS, FLOW_SOURCES
from .rawframes import DEFAULT_NAMING, FrameFolder, RawframesNaming, scan_frame_folder
from .sampling import flow_stack_indices, tsn_snippet_starts
from .transforms import (DEFAULT_TEST_CROP_SCALE, TRAIN_SCALES, sample_train_crop, tsn_test_crops,
                         tsn_view_count)

logger = logging.getLogger("jna_fast.data")

DEFAULT_TRAIN_SEGMENTS = 3


def distributed_shard() -> tuple[int, int]:
    """(rank, world size) of torch.distributed when it is initialised, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def shard_bounds(num_items: int, shard_id: int, num_shards: int) -> tuple[int, int]:
    """[begin, end) of shard ``shard_id``: contiguous, disjoint, sizes differ by at most one (DALI's rule)."""
    return shard_id * num_items // num_shards, (shard_id + 1) * num_items // num_shards


@dataclass(frozen=True)
class ClipSampling:
    """Which frames make a clip and how it is cut into views (TSN): ``num_segments`` snippets (T; None: 3 in
    training, 25 at test), each an RGB frame and a stack of ``flow_length`` flow pairs, cropped and resized to
    ``size``. ``train``: random snippet positions and crops with augmentation (None: the subset is "train");
    otherwise the centre of each segment and ``num_crops`` test views per clip, 1 (centre), 3 (along the long side)
    or 10 (corners + centre, and their mirrors when ``flip``; 5 views without), cut at ``test_crop_scale`` of the
    short side. The views of a clip are adjacent rows of ClipBatch.rgb/flow (ClipBatch.num_views,
    mean_over_views), cut from one decode of its frames (and one computation of its online flow). ``flip``:
    horizontal flips in training and among the test views (False where labels depend on left/right; a mirrored
    view's flow x is negated)."""

    num_segments: int | None = None
    flow_length: int = 5
    size: int = 224
    train: bool | None = None
    flip: bool = True
    num_crops: int = 1
    test_crop_scale: float = DEFAULT_TEST_CROP_SCALE

    def for_subset(self, subset: str) -> "ClipSampling":
        """These settings with ``train`` and ``num_segments`` decided for ``subset`` where they were left None."""
        train = subset == "train" if self.train is None else self.train
        return replace(self, train=train,
                       num_segments=self.num_segments or (DEFAULT_TRAIN_SEGMENTS if train else DEFAULT_TEST_SEGMENTS))


@dataclass(frozen=True)
class Sharding:
    """Which clips this process reads, in which order: shard ``shard_id`` of ``num_shards`` (None: the rank and
    world size of torch.distributed, else 0 of 1) of a permutation drawn from (``seed``, epoch) when ``shuffle``
    (None: in training), the same on every rank. ``drop_last``: every shard yields the smallest shard's number of
    whole batches, so that the ranks of a distributed run make the same number of steps."""

    shard_id: int | None = None
    num_shards: int | None = None
    seed: int = 0
    shuffle: bool | None = None
    drop_last: bool = False

    def resolved(self, train: bool) -> "Sharding":
        """These settings with the shard taken from torch.distributed and ``shuffle`` from ``train`` where None."""
        rank, world = distributed_shard()
        return replace(self, shard_id=rank if self.shard_id is None else self.shard_id,
                       num_shards=world if self.num_shards is None else self.num_shards,
                       shuffle=train if self.shuffle is None else self.shuffle)


@dataclass(frozen=True)
class Decoding:
    """How the pixels are read. ``backend``: "dali", "pyav" or "auto" (DALI when installed; always "pyav" for
    online flow). ``device``: "gpu" (DALI mixed decoders, CUDA outputs on the local rank's GPU) or "cpu"; None:
    "gpu" when DALI and CUDA are available and the flow comes from rawframes (:func:`loader_device` gives the
    choice for a model's device). ``rgb_source``: "video" (decode the videos; None means it for video kinds) or
    "frames" (the rawframes' img files; the only choice for kind="rawframes"). ``on_error``: "raise" or "skip"
    (warn, count, report at epoch end; a skipped clip's row is filled by another clip of the shard, flagged in
    ClipBatch.replaced, so every rank yields len(loader) batches). ``num_threads``: decoding threads (None: up to
    4, as many as the CPUs). ``prefetch``: batches assembled ahead by a background thread (0: none).
    ``pin_memory``: CPU batches in page-locked memory (None: when CUDA is available and device="cpu").
    ``short_side``: with online flow, every video's frames are resized on decode so their short side is this many
    pixels (the aspect ratio kept), and the crops and the flow are cut and computed at that size, as from
    rawframes extracted with ``--short-side`` (None: the videos' own size)."""

    backend: str = "auto"
    device: str | None = None
    rgb_source: str | None = None
    on_error: str = "raise"
    num_threads: int | None = None
    prefetch: int = 2
    pin_memory: bool | None = None
    short_side: int | None = None


@dataclass(frozen=True)
class FlowSource:
    """Where the flow stacks come from: ``source`` "rawframes" reads the flow images of each video's rawframes
    folder (under build_loader's ``frames_root``); "online" computes each stack from the video's decoded frames
    with ``algorithm`` ("dis", "farneback", "tvl1" or "nvof": DALI, on a GPU with optical-flow hardware), clipped
    at ``bound`` pixels as the extractor's --bound, rounded to the 8-bit grid of the flow JPEGs when ``quantise``
    (jna_fast/flow/online.py); no rawframes needed."""

    source: str = "rawframes"
    algorithm: str = DEFAULT_ONLINE_ALGORITHM
    bound: float = DEFAULT_BOUND
    quantise: bool = True

    @classmethod
    def online(cls, algorithm: str = DEFAULT_ONLINE_ALGORITHM, bound: float = DEFAULT_BOUND,
               quantise: bool = True) -> "FlowSource":
        return cls("online", algorithm, bound, quantise)

    def online_flow(self) -> OnlineFlow | None:
        """The online flow computation (its algorithm checked here), or None when the flow is read from rawframes."""
        return OnlineFlow(self.algorithm, self.bound, self.quantise) if self.source == "online" else None


@dataclass(frozen=True)
class _ClipSource:
    """A video's frames as the loader samples them: ``num_frames`` frames from video frame ``first_frame`` on
    (a dense_flow folder's img files start at frame 1), the video (when RGB or flow is decoded from it), the
    rawframes folder (None for online flow) and the (height, width) the crops are drawn in."""

    num_frames: int
    first_frame: int
    video: VideoInfo | None
    folder: FrameFolder | None
    flow_size: tuple[int, int]


class ClipLoader:
    """Iterable of :class:`ClipBatch` over one shard of a dataset; ``len()`` is the number of batches and
    ``set_epoch(e)`` reshuffles (the same permutation on every rank, then each rank takes its contiguous shard).

    Every epoch yields exactly ``len()`` batches, whatever is skipped as bad data: a skipped clip's row is filled
    by another clip of the shard (``ClipBatch.replaced``), so ranks never disagree on their step count (DDP).
    ``skipped_clips`` counts the clips skipped in the last finished epoch on this shard (sum it over ranks);
    ``last_epoch_skipped`` names them: ``{"video": video_id, "reason": message}`` each."""

    def __init__(self, index: DatasetIndex, *, batch_size: int, sampling: ClipSampling, sharding: Sharding,
                 decoding: Decoding, issues: IssueLog, naming: RawframesNaming = DEFAULT_NAMING,
                 online_flow: OnlineFlow | None = None):
        """``sampling``, ``sharding`` and ``decoding`` as :func:`build_loader` resolves them (no None left);
        ``issues`` applies on_error; ``online_flow``: None when the flow is read from rawframes."""
        train, num_crops, flip = sampling.train, sampling.num_crops, sampling.flip
        shard_id, num_shards = sharding.shard_id, sharding.num_shards
        backend, device, pin_memory = decoding.backend, decoding.device, decoding.pin_memory
        if not 0 <= shard_id < num_shards:
            raise ValueError(f"shard_id must be in [0, num_shards={num_shards}), got {shard_id}")
        for name, value in (("num_segments", sampling.num_segments), ("flow_length", sampling.flow_length),
                            ("batch_size", batch_size), ("size", sampling.size),
                            ("num_threads", decoding.num_threads)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if train and num_crops != 1:
            raise ValueError(f"num_crops={num_crops} is a test-time setting; training draws one random crop per clip")
        if pin_memory and device != "cpu":
            raise ValueError("pin_memory applies to device='cpu' (the batches of device='gpu' are on the GPU)")
        self.index, self.train = index, train
        self.num_segments, self.flow_length, self.size = sampling.num_segments, sampling.flow_length, sampling.size
        self.batch_size, self.rgb_from_video = batch_size, decoding.rgb_source == "video"
        self.shard_id, self.num_shards, self.issues, self.seed = shard_id, num_shards, issues, sharding.seed
        self.shuffle, self.drop_last = sharding.shuffle, sharding.drop_last
        self.test_crop_scale, self.prefetch = sampling.test_crop_scale, decoding.prefetch
        self.flip, self.pin_memory = flip, pin_memory
        self.num_crops, self.num_views = num_crops, 1 if train else tsn_view_count(num_crops, flip)
        self.epoch = 0
        self.list_issues = issues.take()  # list lines skipped while parsing (on_error="skip")
        self.last_epoch_issues: list[str] = []  # one message per clip skipped in the last finished epoch
        self.last_epoch_skipped: list[dict] = []
        self.naming, self.online_flow, self.short_side = naming, online_flow, decoding.short_side
        self._sources: dict[int, _ClipSource] = {}
        self._videos: dict[int, VideoInfo] = {}
        self._known_bad: dict[int, str] = {}
        if backend == "dali":
            self.backend = DaliBackend(self.size, self.num_segments, self.flow_length, batch_size, device,
                                       decoding.num_threads, self.seed, self.num_views, pin_memory)
        else:
            self.backend = PyAVBackend(self.size, self.flow_length, decoding.num_threads, pin_memory, online_flow)
        self.device = device
        flow_from = (f"computed online ({online_flow})" if online_flow is not None else
                     "rawframes images (%s)" % ("DALI " + ("nvJPEG" if device == "gpu" else "CPU JPEG decoder")
                                                if backend == "dali" else "OpenCV"))
        logger.info("%d videos, shard %d/%d, backend %s on %s; RGB from %s, flow %s", len(index.records), shard_id,
                    num_shards, backend, device, "the videos" if self.rgb_from_video else "rawframes images",
                    flow_from)

    @property
    def class_names(self) -> list[str]:
        return self.index.class_names

    @property
    def num_classes(self) -> int:
        return len(self.index.class_names)

    @property
    def skipped_clips(self) -> int:
        """Clips of this shard skipped as bad data in the last finished epoch (each counted once)."""
        return len(self.last_epoch_issues)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def shard_positions(self, epoch: int | None = None) -> np.ndarray:
        """Positions (in index.records) this shard reads in ``epoch``, in reading order."""
        epoch = self.epoch if epoch is None else epoch
        count = len(self.index.records)
        order = (np.random.default_rng((self.seed, epoch)).permutation(count) if self.shuffle
                 else np.arange(count))
        begin, end = shard_bounds(count, self.shard_id, self.num_shards)
        return order[begin:end]

    def __len__(self) -> int:
        count = len(self.index.records)
        if self.drop_last:
            # Every rank runs the same number of steps (DDP needs it): the smallest shard sets the count.
            return (count // self.num_shards) // self.batch_size
        begin, end = shard_bounds(count, self.shard_id, self.num_shards)
        return math.ceil((end - begin) / self.batch_size)

    def frame_short_side(self) -> int | None:
        """The short side of the frames the crops are cut from and the flow is computed at (the rawframes', or
        the videos' as decoded for online flow), read from the first video whose frames can be read (a dataset
        prepared as TSN's, every video at one short side, has one); None when none can."""
        for position in range(len(self.index.records)):
            try:
                return min(self._source(position).flow_size)
            except DataError:
                continue
        return None

    # --- per clip ---------------------------------------------------------------------------------------------
    def _video(self, position: int) -> VideoInfo:
        if position not in self._videos:
            self._videos[position] = probe_video(self.index.records[position].video_path)
        return self._videos[position]

    def _source(self, position: int) -> _ClipSource:
        """Where the clip's frames and flows come from, checked once per video (its folder and video must agree)."""
        if position not in self._sources:
            self._sources[position] = self._check_source(position)
        return self._sources[position]

    def _check_source(self, position: int) -> _ClipSource:
        record = self.index.records[position]
        if self.online_flow is not None:
            video = self._video(position)
            if video.num_frames < 2:
                raise DataError(f"{record.video_path}: {video.num_frames} frame; optical flow needs at least 2")
            return _ClipSource(video.num_frames, 0, video, None,
                               short_side_size(video.height, video.width, self.short_side))
        folder = scan_frame_folder(record.frames_dir, self.naming)
        flow_size = (folder.height, folder.width)
        if not self.rgb_from_video:
            first_frame = folder.first_frame()
            if record.num_frames is not None:
                folder.frames_from_count(record.num_frames, record.source)
            # The snippets are drawn from the frames that have an img file: first_frame .. num_flows.
            usable = folder.num_flows + 1 - first_frame
            if usable < 2:
                raise DataError(f"{record.frames_dir}: {folder.num_flows} flow pair(s) beside {folder.num_images} "
                                f"img files leave no flow pair after the first img's frame")
            return _ClipSource(usable, first_frame, None, folder, flow_size)
        video = self._video(position)
        num_frames = folder.num_flows + 1
        if video.num_frames < num_frames:
            raise DataError(f"{record.video_path}: truncated video or wrong frames_root: {video.num_frames} frames, "
                            f"but its rawframes folder {record.frames_dir} has {folder.num_flows} flow pairs")
        if video.num_frames > num_frames:
            raise DataError(f"{record.frames_dir}: short flow folder: {folder.num_flows} flow pairs, but the video "
                            f"{record.video_path} has {video.num_frames} frames ({video.num_frames - 1} expected)")
        return _ClipSource(num_frames, 0, video, folder, flow_size)

    def request(self, position: int, epoch: int | None = None) -> ClipRequest:
        """Sampling and crop of the clip at ``position`` for ``epoch`` (deterministic in seed, epoch, position)."""
        epoch = self.epoch if epoch is None else epoch
        record = self.index.records[position]
        source = self._source(position)
        rng = np.random.default_rng((self.seed, epoch, position))
        starts, mask = tsn_snippet_starts(source.num_frames, self.num_segments, self.flow_length, self.train, rng)
        flows = flow_stack_indices(starts, self.flow_length, source.num_frames - 1)
        height, width = source.flow_size
        if self.train:
            crops = (sample_train_crop(height, width, rng, TRAIN_SCALES, self.flip),)
        else:
            crops = tsn_test_crops(height, width, self.test_crop_scale, self.num_crops, self.flip)
        return ClipRequest(record, starts + source.first_frame, flows + source.first_frame, mask, crops,
                           source.video, source.flow_size, source.folder, source.first_frame)

    def _skip(self, position: int, message: str, failed: dict[int, str]) -> None:
        """Applies on_error to a bad clip, once per clip and epoch (``failed``: the epoch's bad clips so far)."""
        if position not in failed:
            failed[position] = message
            self.issues.report(message)

    def _decode(self, positions, epoch: int, failed: dict[int, str]):
        """The clips at ``positions`` that load: their (position, request) pairs and rgb/flow rows (None if none)."""
        wanted = []
        for position in positions:
            if position in self._known_bad:
                self._skip(position, self._known_bad[position], failed)
            elif position not in failed:
                try:
                    wanted.append((position, self.request(position, epoch)))
                except DataError as error:
                    self._known_bad[position] = f"{error} [{self.index.records[position].source}]"
                    self._skip(position, self._known_bad[position], failed)
        if not wanted:
            return [], None, None
        rgb, flow, failures = self.backend.decode([request for _, request in wanted])
        for row, message in sorted(failures.items()):
            position, request = wanted[row]
            self._skip(position, f"{message} [{request.record.source}]", failed)
        return [pair for row, pair in enumerate(wanted) if row not in failures], rgb, flow

    # --- per batch ---------------------------------------------------------------------------------------------
    def load_batch(self, batch_number: int, epoch: int | None = None,
                   failed: dict[int, str] | None = None) -> ClipBatch:
        """Batch ``batch_number`` of this shard in ``epoch``. A clip skipped as bad data (on_error="skip") is
        replaced by the next clip of the shard that loads (the shard's order from the end of this batch on,
        wrapping around; a shard with fewer good clips than rows repeats them), flagged in ``replaced``; only a
        shard with no loadable clip at all raises. ``failed``: the epoch's bad clips so far (each reported once)."""
        epoch = self.epoch if epoch is None else epoch
        failed = {} if failed is None else failed
        shard = [int(p) for p in self.shard_positions(epoch)]
        begin, end = batch_number * self.batch_size, min((batch_number + 1) * self.batch_size, len(shard))
        kept, rgb, flow = self._decode(shard[begin:end], epoch, failed)
        pieces = [(rgb, flow)] if kept else []
        missing = (end - begin) - len(kept)
        spares = iter(shard[end:] + shard[:begin])
        stand_ins: list = []
        while len(stand_ins) < missing:
            candidates = list(itertools.islice((p for p in spares if p not in failed and p not in self._known_bad),
                                               missing - len(stand_ins)))
            if not candidates:
                break
            found, rgb, flow = self._decode(candidates, epoch, failed)
            if found:
                stand_ins += found
                pieces.append((rgb, flow))
        if not kept and not stand_ins:
            raise DataError(f"shard {self.shard_id}/{self.num_shards}: none of its {len(shard)} clips loads in "
                            f"epoch {epoch} (every one was skipped as bad data, see the warnings above)")
        rgb = pieces[0][0] if len(pieces) == 1 else torch.cat([piece[0] for piece in pieces])
        flow = pieces[0][1] if len(pieces) == 1 else torch.cat([piece[1] for piece in pieces])
        rows = kept + stand_ins
        replaced = [False] * len(kept) + [True] * len(stand_ins)
        if len(rows) < end - begin:
            # Fewer good clips in the whole shard than rows in the batch: repeat the good ones.
            repeats = [row % len(rows) for row in range(len(rows), end - begin)]
            view_rows = torch.tensor([r * self.num_views + v for r in repeats for v in range(self.num_views)],
                                     device=rgb.device)
            rgb, flow = torch.cat([rgb, rgb[view_rows]]), torch.cat([flow, flow[view_rows]])
            rows, replaced = rows + [rows[r] for r in repeats], replaced + [True] * len(repeats)
        requests = [request for _, request in rows]
        batch = ClipBatch(rgb=rgb, flow=flow,
                          mask=torch.from_numpy(np.stack([r.mask for r in requests])),
                          label=torch.tensor([r.record.label for r in requests], dtype=torch.int64),
                          indices=torch.from_numpy(np.stack([r.starts for r in requests]).astype(np.int64)),
                          video_ids=[r.record.video_id for r in requests],
                          replaced=torch.tensor(replaced), num_views=self.num_views)
        return batch.pin_memory() if self.pin_memory else batch

    def _batches_of_epoch(self, epoch: int, start_batch: int, failed: dict[int, str]):
        for batch_number in range(start_batch, len(self)):
            yield self.load_batch(batch_number, epoch, failed)

    def _end_epoch(self, epoch: int, failed: dict[int, str]) -> None:
        self.last_epoch_issues = self.issues.take()
        self.last_epoch_skipped = [{"video": self.index.records[position].video_id, "reason": message}
                                   for position, message in sorted(failed.items())]
        if self.last_epoch_issues or self.list_issues:
            logger.warning("epoch %d, shard %d/%d: skipped %d clips with bad data (and %d bad list lines at load)",
                           epoch, self.shard_id, self.num_shards, len(self.last_epoch_issues),
                           len(self.list_issues))

    def __iter__(self):
        return self.batches()

    def batches(self, start_batch: int = 0):
        """The batches of the current epoch from batch number ``start_batch`` on (a resumed run skips the batches
        it already trained on without decoding them)."""
        epoch, failed = self.epoch, {}
        if self.prefetch < 1:
            yield from self._batches_of_epoch(epoch, start_batch, failed)
            self._end_epoch(epoch, failed)
            return
        yield from self._prefetched(epoch, start_batch, failed)

    def _prefetched(self, epoch: int, start_batch: int, failed: dict[int, str]):
        """Batches assembled by a background thread, ``prefetch`` ahead of the consumer."""
        ready: queue.Queue = queue.Queue(self.prefetch)
        stop = threading.Event()
        finished = object()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce():
            try:
                for batch in self._batches_of_epoch(epoch, start_batch, failed):
                    if not put(batch):
                        return
                put(finished)
            except BaseException as error:  # handed to the consumer, raised there
                put(error)

        worker = threading.Thread(target=produce, name="jna_fast_data_prefetch", daemon=True)
        worker.start()
        try:
            while True:
                item = ready.get()
                if item is finished:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
            self._end_epoch(epoch, failed)
        finally:
            stop.set()
            worker.join()


def _resolve_backend(backend: str, flow_source: str = "rawframes") -> str:
    """The backend ("dali" | "pyav") that ``backend`` ("auto" included) means for flow from ``flow_source``."""
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
        return "dali" if dali_available() else "pyav"
    if backend == "dali" and not dali_available():
        raise ValueError("backend='dali' needs nvidia-dali: pip install 'jna_fast[dali]'; or use backend='pyav'")
    return backend


def loader_device(model_device: torch.device | str, backend: str = "auto",
                  flow_source: str = "rawframes") -> tuple[str, str]:
    """(resolved backend, loader device "gpu" | "cpu") to ask build_loader for, to feed a model on
    ``model_device`` with flow from ``flow_source``: "gpu" (DALI's GPU decoders, batches already on the model's
    GPU) only when the backend resolves to DALI and the model is on CUDA; otherwise "cpu", whose batches are in
    pinned memory when CUDA is available (build_loader's default), so ``batch.to(model_device, non_blocking=True)``
    copies asynchronously. Online flow is computed in the PyAV backend: ("pyav", "cpu") whatever the model's
    device ("auto" resolves to it; "dali" is refused)."""
    resolved = _resolve_backend(backend, flow_source)
    on_cuda = torch.device(model_device).type == "cuda" and torch.cuda.is_available()
    return resolved, "gpu" if resolved == "dali" and on_cuda else "cpu"


def build_loader(kind: str, root, *, split: int = 1, subset: str = "train", frames_root=None, list_file=None,
                 num_classes: int | None = None, naming: RawframesNaming = DEFAULT_NAMING, batch_size: int = 8,
                 sampling: ClipSampling = ClipSampling(), sharding: Sharding = Sharding(),
                 decoding: Decoding = Decoding(), flow: FlowSource = FlowSource()) -> ClipLoader:
    """A loader of two-stream clips (see jna_fast/data/__init__.py for the full description).

    kind/root/split/subset/list_file/num_classes: the dataset (lists.py; kind="video": ``root`` is one video file,
    its clips labelled -1). frames_root: the rawframes folder of a video dataset (``python -m jna_fast.flow extract
    --videos <video folder> --out <frames_root>``, or folders written by TSN's dense_flow, denseflow or mmaction2's
    build_rawframes). naming: the rawframes' file names (mmaction2's ``filename_tmpl`` of each modality and
    ``start_index``; conventions in jna_fast/data/rawframes.py). sampling: the snippets and views of a clip
    (:class:`ClipSampling`); sharding: which clips this process reads, in which order (:class:`Sharding`);
    decoding: backend, device, RGB source, on_error and threads (:class:`Decoding`); flow: rawframes or online
    (:class:`FlowSource`). Settings left None are decided here: see each class.
    """
    if decoding.short_side is not None and (flow.source != "online" or int(decoding.short_side) < 1):
        raise ValueError(f"short_side={decoding.short_side!r}: must be a number of pixels >= 1, with online flow "
                         f"(rawframes keep the size they were extracted at)")
    backend = _resolve_backend(decoding.backend, flow.source)
    online_flow = flow.online_flow()
    issues = IssueLog(decoding.on_error)
    index = load_index(kind, root, split=split, subset=subset, list_file=list_file, frames_root=frames_root,
                       num_classes=num_classes, issues=issues)
    if kind == "rawframes" and flow.source == "online":
        raise ValueError("flow_source='online' computes flow from videos: use a video kind (videos, ucf101, hmdb51, "
                         "video), not kind='rawframes'")
    if kind != "rawframes" and frames_root is None and flow.source == "rawframes":
        raise ValueError(f"kind={kind!r} needs frames_root= (the rawframes folder holding the flow, written by "
                         f"`python -m jna_fast.flow extract`), or flow_source='online'")
    if frames_root is not None and not Path(frames_root).is_dir():
        raise DataError(f"{frames_root}: frames_root not found")
    rgb_source = decoding.rgb_source or ("frames" if kind == "rawframes" else "video")
    if rgb_source not in ("video", "frames") or (kind == "rawframes" and rgb_source == "video"):
        raise ValueError(f"rgb_source must be 'video' or 'frames' ('frames' for kind='rawframes'), got {rgb_source!r}")
    if flow.source == "online" and rgb_source != "video":
        raise ValueError("flow_source='online' decodes the RGB from the videos too: rgb_source must be 'video'")
    cuda = torch.cuda.is_available()
    device = decoding.device
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
