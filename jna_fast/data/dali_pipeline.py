"""DALI pipelines: decoding, crop/resize, flip and normalisation of clips.

Four pipelines share one post-processing step (resize of the clip's crop window with an antialiased linear filter,
then ``crop_mirror_normalize`` for the flip, the normalisation and the CHW layout):

- ``video``: encoded video files -> ``fn.decoders.video`` at the snippet frames (``device="mixed"``: NVDEC on a GPU;
  ``"cpu"``: FFmpeg, which DALI 2.4 builds with VP8/VP9/MJPEG only) -> ``[T, 3, S, S]`` per clip;
- ``frames``: RGB frames decoded by PyAV (codecs that DALI cannot decode on the device at hand) fed through
  ``fn.external_source`` -> ``[T, 3, S, S]`` per clip;
- ``jpeg_rgb`` / ``jpeg_flow``: one rawframes JPEG per sample -> ``fn.decoders.image`` (nvJPEG with
  ``device="mixed"``, libjpeg-turbo on the CPU) -> ``[3, S, S]`` / ``[1, S, S]``.

Flow normalisation ``(v - 127.5) / (±127.5)`` runs in ``crop_mirror_normalize`` with a per-sample std whose sign is
-1 for the x component of a flipped clip: mirroring and negating x in one step (see transforms.py).

The pipelines are driven batch by batch with ``feed_input`` + ``run`` (the batch assembly in loader.py decides
sampling, crops and the decode route of each clip), so the loader does its own sharding and shuffling instead of
a DALI reader's ``shard_id``/``num_shards``; it follows the same rule (contiguous shards of one global order).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch

from ..io.errors import DataError
from ..io.video import decode_frames
from .transforms import FLOW_CENTRE, IMAGENET_MEAN, IMAGENET_STD

logger = logging.getLogger("jna_fast.data")


def dali_available() -> bool:
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        return False
    return True


def dali_device_id() -> int:
    """The CUDA device of this process's GPU pipelines and their outputs: the local rank's GPU under torchrun
    (``LOCAL_RANK``, one GPU per local rank, as train.py places the model), else torch's current device (also when
    each process sees a single GPU through CUDA_VISIBLE_DEVICES, where LOCAL_RANK exceeds the devices visible)."""
    local_rank = os.environ.get("LOCAL_RANK")
    if local_rank is not None:
        try:
            rank = int(local_rank)
        except ValueError:
            raise ValueError(f"LOCAL_RANK must be an integer, got {local_rank!r}") from None
        if 0 <= rank < torch.cuda.device_count():
            return rank
    return torch.cuda.current_device()


def _build(source: str, max_batch_size: int, size: int, device: str, num_threads: int, seed: int,
           device_id: int | None, num_views: int):
    """A built pipeline whose inputs are the named external sources of ``source`` (see ``DaliRunner.run``); a GPU
    pipeline runs on CUDA device ``device_id``. Each sample is decoded once and cut into ``num_views`` views (one
    output per view), each with its own ``roi_start_<v>``, ``roi_end_<v>``, ``mirror_<v>`` (and ``std_<v>``)."""
    from nvidia.dali import fn, pipeline_def, types

    gpu = device == "gpu"

    @pipeline_def(batch_size=max_batch_size, num_threads=num_threads, device_id=device_id if gpu else None,
                  prefetch_queue_depth=1, seed=seed)
    def pipeline():
        decoder_device = "mixed" if gpu else "cpu"
        if source == "video":
            encoded = fn.external_source(name="encoded", dtype=types.UINT8)
            frames = fn.external_source(name="frames", dtype=types.INT32)
            images = fn.decoders.video(encoded, frames=frames, device=decoder_device)
        elif source == "frames":
            images = fn.external_source(name="pixels", dtype=types.UINT8, layout="FHWC")
            images = images.gpu() if gpu else images
        else:
            encoded = fn.external_source(name="encoded", dtype=types.UINT8)
            images = fn.decoders.image(encoded, device=decoder_device,
                                       output_type=types.GRAY if source == "jpeg_flow" else types.RGB)
        layout = "CHW" if source.startswith("jpeg") else "FCHW"
        views = []
        for view in range(num_views):
            roi_start = fn.external_source(name=f"roi_start_{view}", dtype=types.FLOAT)
            roi_end = fn.external_source(name=f"roi_end_{view}", dtype=types.FLOAT)
            mirror = fn.external_source(name=f"mirror_{view}", dtype=types.INT32)
            window = fn.resize(images, size=[size, size], roi_start=roi_start, roi_end=roi_end, antialias=True,
                               interp_type=types.INTERP_LINEAR)
            if source == "jpeg_flow":
                std = fn.external_source(name=f"std_{view}", dtype=types.FLOAT)
                views.append(fn.crop_mirror_normalize(window, mirror=mirror, mean=[FLOW_CENTRE], std=std,
                                                      output_layout=layout, dtype=types.FLOAT))
            else:
                views.append(fn.crop_mirror_normalize(window, mirror=mirror, mean=[255 * m for m in IMAGENET_MEAN],
                                                      std=[255 * s for s in IMAGENET_STD], output_layout=layout,
                                                      dtype=types.FLOAT))
        return tuple(views)

    built = pipeline()
    built.build()
    return built


def dali_error_summary(error: BaseException) -> str:
    """The line of a DALI pipeline error that says what went wrong (the one after "encountered:")."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for number, line in enumerate(lines[:-1]):
        if line == "encountered:":
            return lines[number + 1][:300]
    return lines[0][:300] if lines else type(error).__name__


class DaliRunner:
    """One pipeline of each source, built on first use, fed and run synchronously; on the GPU, on CUDA device
    ``device_id`` (default: :func:`dali_device_id`), whose tensors receive the outputs. Every sample yields
    ``num_views`` views (crops) of one decode."""

    def __init__(self, device: str, size: int, max_batch_sizes: dict[str, int], num_threads: int, seed: int,
                 device_id: int | None = None, num_views: int = 1):
        if device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
        self.device, self.size, self.num_threads, self.seed = device, size, num_threads, seed
        self.device_id = (dali_device_id() if device_id is None else device_id) if device == "gpu" else None
        self.max_batch_sizes, self.num_views = max_batch_sizes, num_views
        self._pipelines: dict[str, object] = {}

    def _pipeline(self, source: str):
        if source not in self._pipelines:
            self._pipelines[source] = _build(source, self.max_batch_sizes[source], self.size, self.device,
                                             self.num_threads, self.seed, self.device_id, self.num_views)
        return self._pipelines[source]

    def run(self, source: str, inputs: dict[str, list[np.ndarray]], out: torch.Tensor) -> None:
        """Runs ``source`` on one batch of per-sample ``inputs`` and copies view v of the result into ``out[v]``
        (``out``: ``[num_views, n, ...]``, contiguous, on the pipeline's device: CPU, or CUDA device
        ``device_id``). Raises RuntimeError from DALI on bad data."""
        from nvidia.dali.plugin.pytorch import feed_ndarray

        pipe = self._pipeline(source)
        try:
            for name, samples in inputs.items():
                pipe.feed_input(name, samples)
            results = pipe.run()
        except RuntimeError:
            del self._pipelines[source]  # a pipeline that raised is no longer valid: rebuild it on next use
            raise
        if self.device == "gpu" and out.device != torch.device("cuda", self.device_id):
            raise ValueError(f"DALI outputs are on cuda:{self.device_id}, but the target tensor is on {out.device}")
        stream = torch.cuda.current_stream(self.device_id) if self.device == "gpu" else None
        for view, result in enumerate(results):
            feed_ndarray(result.as_tensor(), out[view], cuda_stream=stream)


def _probe_pipeline(device: str):
    """Decodes frame 0 of a video, nothing else (the codec probe; built per probe, as a failure invalidates it)."""
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(batch_size=1, num_threads=1, device_id=dali_device_id() if device == "gpu" else None,
                  prefetch_queue_depth=1)
    def pipeline():
        encoded = fn.external_source(name="encoded", dtype=types.UINT8)
        return fn.decoders.video(encoded, frames=[0], device="mixed" if device == "gpu" else "cpu")

    built = pipeline()
    built.build()
    return built


_codec_support: dict[tuple[str, str], bool] = {}


def dali_decodes(codec: str, sample_path, device: str) -> bool:
    """Whether DALI decodes ``codec`` on ``device``, found by decoding frame 0 of ``sample_path`` (a video in that
    codec) and comparing it with PyAV's decode; the answer is cached per codec and logged once."""
    key = (codec, device)
    if key in _codec_support:
        return _codec_support[key]
    reason = ""
    try:
        reference = decode_frames(sample_path, [0])[0].astype(np.float32)
    except DataError:
        return False  # the sample itself is bad: decide on another video of this codec
    try:
        pipe = _probe_pipeline(device)
        pipe.feed_input("encoded", [np.fromfile(sample_path, dtype=np.uint8)])
        (frames,) = pipe.run()
        frames = frames.as_cpu() if device == "gpu" else frames
        decoded = np.array(frames.at(0), dtype=np.float32)[0]
        # Decoders' colour conversions differ by a few codes (chroma filter, matrix); a decode that yields a
        # blank or wrong frame differs by tens. 8 codes (3 % of the range) separates the two.
        supported = decoded.shape == reference.shape and float(np.abs(decoded - reference).mean()) < 8.0
        if not supported:
            reason = f"its frame 0 differs from PyAV's (shape {decoded.shape} vs {reference.shape})"
    except RuntimeError as error:
        supported, reason = False, dali_error_summary(error)
    _codec_support[key] = supported
    if supported:
        logger.info("video codec %s: decoded by DALI on %s", codec, device)
    else:
        logger.info("video codec %s: DALI on %s cannot decode it (%s); PyAV decodes it and feeds the DALI pipeline",
                    codec, device, reason)
    return supported
