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
"""Flow is clipped at this many pixels before the 8-bit encoding (TSN's)."""


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
    """One flow component (pixels) on the 0..255 scale of the encoding, not rounded (zero motion at 127.5).

    Args:
        values: the component in pixels, any shape.
        bound: the clip, in pixels (> 0).

    Returns:
        float32, the shape of ``values``, in [0, 255].

    Raises:
        ValueError: ``bound`` not a positive finite number.
    """
    return _scaled(values, bound).astype(np.float32)


def encode_component(values: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Quantise one flow component to uint8 with the TSN rule, rounding the float64 scale (not its float32 copy,
    which may sit on the other side of a half code).

    Args:
        values: the component in pixels, any shape.
        bound: the clip, in pixels (> 0).

    Returns:
        uint8, the shape of ``values``.

    Raises:
        ValueError: ``bound`` not a positive finite number.
    """
    return np.rint(_scaled(values, bound)).astype(np.uint8)


def decode_component(quantised: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Inverse of ``encode_component`` (up to the quantisation step ``2 * bound / 255``).

    Args:
        quantised: uint8 (or any integer/float array of 0..255 values), any shape.
        bound: the clip it was encoded with, in pixels (> 0).

    Returns:
        float32 pixels, the shape of ``quantised``.

    Raises:
        ValueError: ``bound`` not a positive finite number.
    """
    bound = check_bound(bound)
    return (np.asarray(quantised, dtype=np.float32) * (2.0 * bound / 255.0) - bound).astype(np.float32)


def encode_flow(flow: np.ndarray, bound: float = DEFAULT_BOUND) -> tuple[np.ndarray, np.ndarray]:
    """Split a flow field into the two uint8 images of the encoding.

    Args:
        flow: ``[H, W, 2]`` (x then y, in pixels), any real dtype.
        bound: the clip, in pixels (> 0).

    Returns:
        ``(flow_x, flow_y)``: uint8 ``[H, W]`` each.

    Raises:
        ValueError: ``flow`` not ``[H, W, 2]``, or ``bound`` not a positive finite number.
    """
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[-1] != 2:
        raise ValueError(f"flow must have shape [H, W, 2] (x, y components last), got {tuple(flow.shape)}")
    return encode_component(flow[..., 0], bound), encode_component(flow[..., 1], bound)


def decode_flow(flow_x: np.ndarray, flow_y: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Rebuild a flow field from the two uint8 images written by ``encode_flow``.

    Args:
        flow_x: ``[H, W]`` the x component's image.
        flow_y: ``[H, W]`` the y component's image.
        bound: the clip they were encoded with, in pixels (> 0).

    Returns:
        float32 ``[H, W, 2]`` in pixels.

    Raises:
        ValueError: images that are not 2-D of one shape, or ``bound`` not a positive finite number.
    """
    flow_x, flow_y = np.asarray(flow_x), np.asarray(flow_y)
    if flow_x.shape != flow_y.shape or flow_x.ndim != 2:
        raise ValueError(
            f"flow_x and flow_y must be 2-D images of the same shape, got {tuple(flow_x.shape)} and "
            f"{tuple(flow_y.shape)}")
    return np.stack([decode_component(flow_x, bound), decode_component(flow_y, bound)], axis=-1)
