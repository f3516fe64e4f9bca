"""Builders of small real data files for the tests/test_data*.py modules (no tests here).

Videos are encoded with PyAV, rawframes written with cv2.imwrite at JPEG quality 100 (so images that are constant
over each 8x8 block decode exactly, which the flow value tests rely on).
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

# codec name -> (PyAV encoder, pixel format, file extension)
VIDEO_CODECS = {
    "h264": ("libx264", "yuv420p", ".mp4"),
    "mpeg4": ("mpeg4", "yuv420p", ".avi"),
    "vp9": ("libvpx-vp9", "yuv420p", ".webm"),
    "mjpeg": ("mjpeg", "yuvj420p", ".avi"),
}
# Not among the loader's test codecs: exact RGB frames (with options={"qp": "0"}), for reference videos.
LOSSLESS_CODECS = {"rgb-lossless": ("libx264rgb", "rgb24", ".mkv")}
EXACT_JPEG = [cv2.IMWRITE_JPEG_QUALITY, 100]


def smooth_frames(num_frames: int, height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    """uint8 [N, H, W, 3] low-frequency colour content that changes from frame to frame (lossy codecs keep it
    well, and each frame is distinct)."""
    rng = np.random.default_rng(seed)
    phases = rng.uniform(0, 2 * np.pi, size=3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = []
    for index in range(num_frames):
        red = 128 + 90 * np.sin(xx / 7 + phases[0] + 0.4 * index)
        green = 128 + 90 * np.cos(yy / 6 + phases[1] + 0.3 * index)
        blue = np.full_like(xx, 40 + (index * 37 + phases[2] * 10) % 170)
        frames.append(np.stack([red, green, blue], axis=-1))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def write_video(path: Path, frames: np.ndarray, codec: str, fps: int = 25, options: dict | None = None) -> Path:
    encoder, pixel_format, extension = {**VIDEO_CODECS, **LOSSLESS_CODECS}[codec]
    path = Path(path).with_suffix(extension)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(encoder, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pixel_format
        stream.options = options or {}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def flow_code(flow: int, component: int, num_flows: int) -> int:
    """A distinct JPEG value per (0-based flow field, component), so the loader's output tells which file it read.
    Values stay within 16..239 and never equal 255 - another code of the same component."""
    return 16 + 4 * flow + 2 * component if num_flows <= 50 else 16 + (4 * flow + 2 * component) % 220


def write_rawframes(frames_dir: Path, rgb: np.ndarray | None, flow_x: np.ndarray, flow_y: np.ndarray) -> Path:
    """img_%05d.jpg for the RGB frames (if given) and flow_x/flow_y_%05d.jpg for the uint8 flow images."""
    frames_dir = Path(frames_dir)
    frames_dir.mkdir(parents=True, exist_ok=True)
    if rgb is not None:
        for index, frame in enumerate(rgb, start=1):
            cv2.imwrite(str(frames_dir / f"img_{index:05d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), EXACT_JPEG)
    for index, (x, y) in enumerate(zip(flow_x, flow_y), start=1):
        cv2.imwrite(str(frames_dir / f"flow_x_{index:05d}.jpg"), x, EXACT_JPEG)
        cv2.imwrite(str(frames_dir / f"flow_y_{index:05d}.jpg"), y, EXACT_JPEG)
    return frames_dir


def coded_flow(num_frames: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Flow images whose left half holds flow_code(...) and right half 255 minus it: constant over 8x8 blocks when
    width is a multiple of 16, so JPEG keeps them exactly, and a horizontal flip is visible."""
    num_flows = num_frames - 1
    images = np.empty((2, num_flows, height, width), np.uint8)
    for flow in range(num_flows):
        for component in range(2):
            code = flow_code(flow, component, num_flows)
            images[component, flow, :, : width // 2] = code
            images[component, flow, :, width // 2:] = 255 - code
    return images[0], images[1]


def make_video_dataset(root: Path, frames_root: Path, videos: dict[str, tuple[int, str, int]],
                       height: int = 24, width: int = 32) -> dict[str, np.ndarray]:
    """Videos ``relative_id -> (num_frames, codec, seed)`` under root and their rawframes under frames_root (RGB
    imgs = the source frames, coded flow). Returns the source frames per id."""
    sources = {}
    for video_id, (num_frames, codec, seed) in videos.items():
        frames = smooth_frames(num_frames, height, width, seed)
        write_video(Path(root) / video_id, frames, codec)
        write_rawframes(Path(frames_root) / video_id, frames, *coded_flow(num_frames, height, width))
        sources[video_id] = frames
    return sources


def video_path(root: Path, video_id: str, codec: str) -> Path:
    return Path(root) / (video_id + VIDEO_CODECS[codec][2])
