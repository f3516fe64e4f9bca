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

from .._optional import require

require("jna_fast.flow", "av", "cv2")

from .algorithms import (ALGORITHMS, DEFAULT_EXTRACTION_ALGORITHM, DEFAULT_ONLINE_ALGORITHM, FlowAlgorithmUnavailable,
                         make_estimator)
from .encoding import DEFAULT_BOUND, decode_component, decode_flow, encode_component, encode_flow, scale_component
from .extract import (COMPLETE_MARKER, PARTIAL_MARKER, SUMMARY_NAME, VIDEO_EXTENSIONS, extract_flow, extract_video,
                      extraction_complete, find_videos, frame_dir_for, read_completion_marker)
from .online import OnlineFlow, encoded_flow_stacks, frames_for_flows

__all__ = [
    "ALGORITHMS", "COMPLETE_MARKER", "DEFAULT_BOUND", "DEFAULT_EXTRACTION_ALGORITHM", "DEFAULT_ONLINE_ALGORITHM",
    "FlowAlgorithmUnavailable", "OnlineFlow", "PARTIAL_MARKER", "SUMMARY_NAME", "VIDEO_EXTENSIONS",
    "decode_component", "decode_flow", "encode_component", "encode_flow", "encoded_flow_stacks", "extract_flow",
    "extract_video", "extraction_complete", "find_videos", "frame_dir_for", "frames_for_flows", "make_estimator",
    "read_completion_marker", "scale_component",
]
