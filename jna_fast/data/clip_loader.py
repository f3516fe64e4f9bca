"""The clip loader's engine: :class:`ClipLoader`, a dataset index -> sharded, shuffled, TSN-sampled, augmented
batches, as build_loader (jna_fast/data/loader.py) resolves its settings (jna_fast/data/loader_settings.py)."""

from __future__ import annotations

import itertools
import logging
import math
import os
import queue
import threading
from dataclasses import dataclass

import numpy as np
import torch

from ..flow.online import OnlineFlow
from ..io.errors import DataError, IssueLog
from ..io.video import VideoInfo, probe_video, short_side_size
from .backends import DaliBackend, PyAVBackend
from .batch import ClipBatch, ClipRequest
from .lists import DatasetIndex
from .loader_settings import MIB, ClipSampling, Decoding, Sharding, memory_limit, prefetch_depth, shard_bounds
from .memory_cache import MemoryCache, split_estimate, use_memory_cache
from .rawframes import DEFAULT_NAMING, FrameFolder, RawframesNaming, scan_frame_folder
from .transforms import tsn_view_count

logger = logging.getLogger("jna_fast.data")


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


def _check_settings(batch_size: int, sampling: ClipSampling, sharding: Sharding, decoding: Decoding) -> None:
    if not 0 <= sharding.shard_id < sharding.num_shards:
        raise ValueError(f"shard_id must be in [0, num_shards={sharding.num_shards}), got {sharding.shard_id}")
    for name, value in (("num_segments", sampling.num_segments), ("flow_length", sampling.flow_length),
                        ("batch_size", batch_size), ("size", sampling.size),
                        ("num_threads", decoding.num_threads)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if sampling.train and sampling.num_crops != 1:
        raise ValueError(f"num_crops={sampling.num_crops} is a test-time setting; training draws one random crop "
                         f"per clip")
    if decoding.pin_memory and decoding.device != "cpu":
        raise ValueError("pin_memory applies to device='cpu' (the batches of device='gpu' are on the GPU)")


def _flow_origin(online_flow: OnlineFlow | None, backend: str, device: str) -> str:
    if online_flow is not None:
        return f"computed online ({online_flow})"
    return "rawframes images (%s)" % ("DALI " + ("nvJPEG" if device == "gpu" else "CPU JPEG decoder")
                                      if backend == "dali" else "OpenCV")


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
        """Made by :func:`build_loader`, which resolves the settings (no None left) and documents the errors.

        Args:
            index: the dataset's records and class names (:func:`load_index`).
            batch_size: clips per batch (B), >= 1.
            sampling: the snippets and views of a clip (``ClipSampling.for_subset``).
            sharding: the shard and the order (``Sharding.resolved``).
            decoding: backend, device, RGB source, threads, prefetch, memory cache.
            issues: applies on_error to bad clips.
            naming: the rawframes' file names.
            online_flow: the online flow computation; None when the flow is read from rawframes.
        """
        _check_settings(batch_size, sampling, sharding, decoding)
        train, num_crops, flip = sampling.train, sampling.num_crops, sampling.flip
        shard_id, num_shards = sharding.shard_id, sharding.num_shards
        backend, device, pin_memory = decoding.backend, decoding.device, decoding.pin_memory
        self.index, self.train, self.sampling = index, train, sampling
        self.num_segments, self.flow_length, self.size = sampling.num_segments, sampling.flow_length, sampling.size
        self.batch_size, self.rgb_from_video = batch_size, decoding.rgb_source == "video"
        self.shard_id, self.num_shards, self.issues, self.seed = shard_id, num_shards, issues, sharding.seed
        self.shuffle, self.drop_last = sharding.shuffle, sharding.drop_last
        self.test_crop_scale = sampling.test_crop_scale
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
        self.memory_bytes = 0  # the memory cache's estimated size (0: no cache)
        self.memory, self._fill_threads = self._memory_cache(decoding), decoding.num_threads
        self.prefetch = prefetch_depth(decoding.prefetch, self.memory is not None)
        if backend == "dali":
            self.backend = DaliBackend(self.size, self.num_segments, self.flow_length, batch_size, device,
                                       decoding.num_threads, self.seed, self.num_views, pin_memory)
        else:
            # Served from memory, a clip costs only its crops: one loader thread leaves the cores to the step.
            self.backend = PyAVBackend(self.size, self.flow_length, 1 if self.memory else decoding.num_threads,
                                       pin_memory, online_flow, self.memory)
        self.device = device
        logger.info("%d videos, shard %d/%d, backend %s on %s; RGB from %s, flow %s", len(index.records), shard_id,
                    num_shards, backend, device, "the videos" if self.rgb_from_video else "rawframes images",
                    _flow_origin(online_flow, backend, device))

    @property
    def class_names(self) -> list[str]:
        """The dataset's class names, by label."""
        return self.index.class_names

    @property
    def num_classes(self) -> int:
        """The number of classes."""
        return len(self.index.class_names)

    @property
    def skipped_clips(self) -> int:
        """Clips of this shard skipped as bad data in the last finished epoch (each counted once)."""
        return len(self.last_epoch_issues)

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration reads: its permutation and draws (the same on every rank)."""
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

    # --- the memory cache ---------------------------------------------------------------------------------------
    def _requests(self, positions, epoch: int = 0):
        for position in positions:
            try:
                yield self.request(int(position), epoch)
            except DataError:
                continue  # a bad source: skipped (and reported) when a batch asks for it

    def _memory_cache(self, decoding: Decoding) -> MemoryCache | None:
        """The memory cache of this loader, or None, by ``decoding.memory_cache`` and the size rule: the videos
        this process reads (the whole split when shuffled: the shards change every epoch) are estimated from
        their probed counts and sizes, before anything is decoded."""
        mode, subset = decoding.memory_cache, "train" if self.train else "test"
        if mode == "off":
            return None
        if decoding.backend != "pyav":
            if mode == "on":
                raise ValueError(f"memory_cache='on' serves the PyAV backend, not backend={decoding.backend!r}")
            return None
        limit = memory_limit(None) if decoding.memory_limit is None else decoding.memory_limit
        positions = range(len(self.index.records)) if self.shuffle else self.shard_positions(0)
        float_flow = self.online_flow is not None and not self.online_flow.quantise
        estimate, videos = split_estimate(self._requests(positions), limit if mode == "auto" else None, float_flow)
        if not use_memory_cache(mode, estimate, limit):
            logger.info("not caching the %s split in memory: %d videos already take %.0f MiB decoded, over the "
                        "limit of %.0f MiB (--data.memory_cache_mib)", subset, videos, estimate / MIB, limit / MIB)
            return None
        logger.info("caching %d videos of the %s split in memory: %.0f MiB (limit %.0f MiB); thread split: the "
                    "loader 1 thread (crops from memory), torch %d intra-op threads, %d CPUs", videos, subset,
                    estimate / MIB, limit / MIB, torch.get_num_threads(), os.cpu_count() or 1)
        self.memory_bytes = estimate
        return MemoryCache(self.online_flow)

    def fill_memory(self, epoch: int | None = None) -> None:
        """Decodes into the memory cache, with the decoding threads, the shard's videos of ``epoch`` not held yet."""
        if self.memory is not None:
            self.memory.fill(self._requests(self.shard_positions(epoch)), self._fill_threads)

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
        clip = self.sampling.sample(source.num_frames, source.flow_size,
                                    np.random.default_rng((self.seed, epoch, position)))
        return ClipRequest(record, clip.starts + source.first_frame, clip.flows + source.first_frame, clip.mask,
                           clip.crops, source.video, source.flow_size, source.folder, source.first_frame)

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
        self.fill_memory(epoch)
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
