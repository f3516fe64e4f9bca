"""8-bit JPEG quantisation of optical flow (docs/design.md §6.2, the TSN convention).

Each flow component is stored as its own greyscale JPEG with
``value = round(255 * (clip(v, -bound, bound) + bound) / (2 * bound))``, so 128 is (almost) zero motion and the
quantisation step is ``2 * bound / 255`` pixels. ``decode_flow`` is the inverse up to that step. The scale is
computed in float64, as TSN's dense_flow computes it (in double, rounding half to even like ``cvRound``): in float32
about 4 values in a million, those within a rounding error of a half code, would land one code off.
"""

from __future__ import annotations

import numpy as np

DEFAULT_BOUND = 20.0


def check_bound(bound: float) -> float:
    bound = float(bound)
    if not np.isfinite(bound) or bound <= 0:
        raise ValueError(f"bound must be a positive finite number of pixels, got {bound!r}")
    return bound


def _scaled(values: np.ndarray, bound: float) -> np.ndarray:
    """float64 ``255 * (clip(v, -bound, bound) + bound) / (2 * bound)``."""
    bound = check_bound(bound)
    clipped = np.clip(np.asarray(values, dtype=np.float64), -bound, bound)
    return 255.0 * (clipped + bound) / (2.0 * bound)


def scale_component(values: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """One flow component (pixels) on the 0..255 scale of the encoding, not rounded, as float32 (zero motion at
    127.5)."""
    return _scaled(values, bound).astype(np.float32)


def encode_component(values: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Quantise one flow component (any shape, in pixels) to uint8 with the TSN rule, rounding the float64 scale
    (not its float32 copy, which may sit on the other side of a half code)."""
    return np.rint(_scaled(values, bound)).astype(np.uint8)


def decode_component(quantised: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Inverse of ``encode_component``: uint8 (or any integer/float array of 0..255 values) to float32 pixels."""
    bound = check_bound(bound)
    return (np.asarray(quantised, dtype=np.float32) * (2.0 * bound / 255.0) - bound).astype(np.float32)


def encode_flow(flow: np.ndarray, bound: float = DEFAULT_BOUND) -> tuple[np.ndarray, np.ndarray]:
    """Split a flow field ``[H, W, 2]`` (x then y, in pixels) into the two uint8 images ``(flow_x, flow_y)``."""
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[-1] != 2:
        raise ValueError(f"flow must have shape [H, W, 2] (x, y components last), got {tuple(flow.shape)}")
    return encode_component(flow[..., 0], bound), encode_component(flow[..., 1], bound)


def decode_flow(flow_x: np.ndarray, flow_y: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Rebuild a float32 flow field ``[H, W, 2]`` from the two uint8 images written by ``encode_flow``."""
    flow_x, flow_y = np.asarray(flow_x), np.asarray(flow_y)
    if flow_x.shape != flow_y.shape or flow_x.ndim != 2:
        raise ValueError(
            f"flow_x and flow_y must be 2-D images of the same shape, got {tuple(flow_x.shape)} and "
            f"{tuple(flow_y.shape)}")
    return np.stack([decode_component(flow_x, bound), decode_component(flow_y, bound)], axis=-1)
