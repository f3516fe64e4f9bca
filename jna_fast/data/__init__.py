"""Two-stream video data for JNA: datasets, TSN sampling, decoding (DALI / PyAV), augmentation, loaders.

Typical use (a UCF101-layout dataset whose flow was extracted with
``python -m jna_fast.flow extract --videos ROOT/UCF-101 --out FRAMES``)::

    from jna_fast.data import build_loader
    train = build_loader("ucf101", ROOT, split=1, subset="train", frames_root=FRAMES, batch_size=8)
    val = build_loader("ucf101", ROOT, split=1, subset="test", frames_root=FRAMES, batch_size=4)
    for epoch in range(epochs):
        train.set_epoch(epoch)
        for batch in train:          # ClipBatch: rgb, flow, mask, label, indices, video_ids, replaced
            ...

Feeding a GPU: ``backend, device = loader_device(model_device, "auto", flow_source)`` gives the loader to ask for
(DALI's GPU decoders when installed and the flow is read from rawframes, else the CPU loader with pinned batches and
``batch.to(model_device, non_blocking=True)``; online flow always runs in the CPU loader).
The loader's settings come in four small objects, each with defaults: ``ClipSampling`` (snippets, crops, views),
``Sharding`` (shard, order), ``Decoding`` (backend, device, RGB source, on_error, threads) and ``FlowSource``
(rawframes or online). Test-time views (TSN protocol): ``build_loader(..., subset="test",
sampling=ClipSampling(num_crops=10))`` yields ``num_views`` adjacent rows per clip; ``batch.mean_over_views(scores)``
averages them per clip.

Where the pixels come from:

- flow: the rawframes folder of the video (``frames_root/<video_id>/flow_{x,y}_%05d.jpg``;
  ``FlowSource()``, the default); a video of N frames has N-1 flow pairs, and the folder must have exactly that many
  (else: "short flow folder"). Or computed from the video's decoded frames (``FlowSource.online(algorithm)``, no
  rawframes needed; jna_fast/flow/online.py), with the same encoding, from the frames at the video's size or resized
  on decode to a short side (``Decoding(short_side=256)``, as the extractor's ``--short-side``; prediction's);
- RGB: decoded from the video itself (``Decoding(rgb_source="video")``, the default for video datasets) or read
  from the rawframes img files (``rgb_source="frames"``, the only source of kind="rawframes"). Both give the same frames
  (frame i of the video is img_{i+1} in jna_fast's own folders); crops are defined relative to the frame, so RGB
  decoded at the video's size and flow extracted at another size stay aligned.

Rawframes written by other tools (TSN dense_flow, denseflow, mmaction2), their name templates
(``naming=RawframesNaming(rgb_template, flow_template, start_index)``) and list-file counts: rawframes.py states the
conventions.

Backends (``Decoding(backend=...)``): "dali" runs JPEG decoding, crop/resize, flip and normalisation in DALI
pipelines (on a GPU with ``device="gpu"``: NVDEC video decoding, nvJPEG, CUDA outputs; on the CPU: DALI's CPU
operators, whose video decoder handles VP8/VP9/MJPEG; for other codecs PyAV decodes the frames and feeds the DALI
pipeline - the route is probed once per codec and logged). "pyav" needs no DALI: PyAV + OpenCV + NumPy, same
sampling, same crops, same value mappings (pixels equal up to the resize filter). "auto": DALI when installed (PyAV
for online flow, which is computed on the frames PyAV decodes).

Sampling, crops and values: sampling.py and transforms.py. Bad input: jna_fast/io/errors.py (on_error="raise"|"skip").
"""

from .._optional import require

require("jna_fast.data", "av", "cv2")

from ..io.errors import DataError
from ..io.video import VideoInfo, decode_frames, frame_to_rgb, probe_video
from .batch import ClipBatch, ClipRequest
from .lists import KINDS, DatasetIndex, VideoRecord, load_index
from .loader import (BACKENDS, FLOW_SOURCES, ClipLoader, ClipSampling, Decoding, FlowSource, Sharding,
                     build_loader, distributed_shard, loader_device, shard_bounds)
from .rawframes import RawframesNaming
from .synthetic import make_synthetic
from .sampling import flow_stack_indices, snippet_span, tsn_snippet_starts
from .transforms import (FLOW_CENTRE, IMAGENET_MEAN, IMAGENET_STD, TRAIN_SCALES, Crop, centre_crop,
                         sample_train_crop, tsn_test_crops, tsn_view_count)

__all__ = [
    "BACKENDS", "FLOW_SOURCES", "KINDS", "ClipBatch", "ClipLoader", "ClipRequest", "ClipSampling", "Crop",
    "DataError", "DatasetIndex", "Decoding", "FLOW_CENTRE", "FlowSource", "IMAGENET_MEAN", "IMAGENET_STD",
    "RawframesNaming", "Sharding", "TRAIN_SCALES", "VideoInfo", "VideoRecord", "build_loader", "centre_crop",
    "decode_frames", "distributed_shard", "flow_stack_indices", "frame_to_rgb", "load_index", "loader_device",
    "make_synthetic", "probe_video", "sample_train_crop", "shard_bounds", "snippet_span", "tsn_snippet_starts",
    "tsn_test_crops", "tsn_view_count",
]
