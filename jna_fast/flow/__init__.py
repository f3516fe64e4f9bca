"""Optical-flow extraction into the rawframes layout, and the 8-bit flow encoding (docs/design.md §6.2, §6.6).

API::

    extract_flow(videos_dir, out_dir, *, algorithm="tvl1", short_side=None, bound=20.0, workers=None,
                 list_file=None, jpeg_quality=95, progress=True) -> summary dict
    extract_video(video_path, frame_dir, *, algorithm="tvl1", short_side=None, bound=20.0, jpeg_quality=95) -> N
    encode_flow(flow[H, W, 2], bound=20.0) -> (flow_x uint8, flow_y uint8)
    decode_flow(flow_x, flow_y, bound=20.0) -> flow[H, W, 2] float32

    encoded_flow_stacks(frames, flow_indices, *, estimator, bound=20.0, quantise=True) -> [T, 2L, H, W]
    OnlineFlow(algorithm="dis", bound=20.0, quantise=True).stacks(frames, flow_indices)   (per-thread estimators)

CLI: ``python -m jna_fast.flow extract --videos DIR --out DIR [--algorithm tvl1|dis|farneback|nvof] ...``
"""

from .._optional import lazy_exports
from .names import ALGORITHMS, DEFAULT_EXTRACTION_ALGORITHM, DEFAULT_ONLINE_ALGORITHM

# Everything else is imported on first use (most of it needs OpenCV and PyAV).
_EXPORTS = {
    "FlowAlgorithmUnavailable": ".algorithms",
    "make_estimator": ".algorithms",
    "DEFAULT_BOUND": ".encoding",
    "decode_component": ".encoding",
    "decode_flow": ".encoding",
    "encode_component": ".encoding",
    "encode_flow": ".encoding",
    "scale_component": ".encoding",
    "COMPLETE_MARKER": ".folders",
    "PARTIAL_MARKER": ".folders",
    "SUMMARY_NAME": ".extract",
    "VIDEO_EXTENSIONS": ".extract",
    "extract_flow": ".extract",
    "extract_video": ".extract",
    "extraction_complete": ".extract",
    "find_videos": ".extract",
    "frame_dir_for": ".folders",
    "read_completion_marker": ".folders",
    "OnlineFlow": ".online",
    "encoded_flow_stacks": ".online",
    "frames_for_flows": ".online",
}
__getattr__ = lazy_exports(__name__, _EXPORTS, "jna_fast.flow", "av", "cv2")
__all__ = ["ALGORITHMS", "DEFAULT_EXTRACTION_ALGORITHM", "DEFAULT_ONLINE_ALGORITHM", *_EXPORTS]
