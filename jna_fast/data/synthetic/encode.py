"""Encoding rendered frames into AVI files, deterministically (PyAV, single-threaded encoder)."""

from __future__ import annotations

import av
import numpy as np

FPS = 25
CODECS = {"mpeg4": "yuv420p", "mjpeg": "yuvj420p"}


def encode_video(frames: np.ndarray, path, codec: str = "mpeg4", fps: int = FPS) -> None:
    """Write RGB frames ``[F, H, W, 3]`` to an AVI file (a path, or a binary file opened for writing) with PyAV,
    deterministically (single-threaded encoder)."""
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    count, height, width, _ = frames.shape
    with av.open(path if hasattr(path, "write") else str(path), "w", format="avi") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = CODECS[codec]
        stream.bit_rate = 2 * height * width * fps  # ~2 bits per pixel: far above what these scenes need
        stream.thread_count = 1
        stream.codec_context.gop_size = 12
        stream.codec_context.max_b_frames = 0
        for index in range(count):
            frame = av.VideoFrame.from_ndarray(frames[index], format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)

