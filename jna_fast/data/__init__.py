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
sampling, same crops, same value mappings (pixels equal up to the resize filter). "auto": DALI when installed and the clips go
to a GPU; PyAV on the CPU (faster there than DALI's CPU operators, and served by the memory cache) and for online
flow, which is computed on the frames PyAV decodes.

Sampling, crops and values: sampling.py and transforms.py. Bad input: jna_fast/io/errors.py (on_error="raise"|"skip").
"""

from .._optional import lazy_exports
from .options import BACKENDS, FLOW_SOURCES

# The loading stack needs PyAV and OpenCV: imported on first use, so that the configuration, the dataset specs
# (jna_fast/data/datasets/) and the option declarations load without them.
_EXPORTS = {
    "DataError": "..io.errors",
    "VideoInfo": "..io.video",
    "VideoStream": "..io.video",
    "decode_frames": "..io.video",
    "frame_to_rgb": "..io.video",
    "probe_video": "..io.video",
    "clip_views": ".backends",
    "ClipBatch": ".batch",
    "ClipRequest": ".batch",
    "KINDS": ".datasets",
    "DatasetIndex": ".lists",
    "VideoRecord": ".lists",
    "load_index": ".datasets",
    "ClipLoader": ".clip_loader",
    "ClipSampling": ".loader_settings",
    "Decoding": ".loader_settings",
    "FlowSource": ".loader_settings",
    "SampledClip": ".loader_settings",
    "Sharding": ".loader_settings",
    "build_loader": ".loader",
    "distributed_shard": ".loader_settings",
    "loader_device": ".loader",
    "shard_bounds": ".loader_settings",
    "RawframesNaming": ".rawframes",
    "make_synthetic": ".synthetic",
    "flow_stack_indices": ".sampling",
    "snippet_span": ".sampling",
    "tsn_snippet_starts": ".sampling",
    "FLOW_CENTRE": ".transforms",
    "IMAGENET_MEAN": ".transforms",
    "IMAGENET_STD": ".transforms",
    "TRAIN_SCALES": ".transforms",
    "Crop": ".transforms",
    "centre_crop": ".transforms",
    "sample_train_crop": ".transforms",
    "tsn_test_crops": ".transforms",
    "tsn_view_count": ".transforms",
}
__getattr__ = lazy_exports(__name__, _EXPORTS, "jna_fast.data", "av", "cv2")
__all__ = ["BACKENDS", "FLOW_SOURCES", *_EXPORTS]
