"""Rasterising a :class:`~jna_fast.data.synthetic.plan.VideoPlan` into RGB frames: the scene's background, the
distractor and the objects, anti-aliased by supersampling. Needs OpenCV (the background's resize)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .classes import DISTRACTOR_COLOUR
from .plan import SCENE_STREAM, VideoPlan

SUPERSAMPLING = 4  # sub-samples per pixel side, for anti-aliased edges at sub-pixel positions
SHAPE_EXTENT = 1.6  # every shape lies within this many radii of its centre (the triangle's circumradius is 1.56)


def _patch_samples(centre_x: float, centre_y: float, extent: float, height: int, width: int):
    """The pixel window around a shape and its sub-sample offsets from the shape's centre.

    Pixel (i, j) covers [j, j+1) x [i, i+1); returns ((rows, cols) slices, dx, dy) with dx, dy of shape
    [rows * SUPERSAMPLING, cols * SUPERSAMPLING].
    """
    x0, x1 = max(0, math.floor(centre_x - extent) - 1), min(width, math.ceil(centre_x + extent) + 1)
    y0, y1 = max(0, math.floor(centre_y - extent) - 1), min(height, math.ceil(centre_y + extent) + 1)
    offsets = (np.arange(SUPERSAMPLING) + 0.5) / SUPERSAMPLING
    xs = (np.arange(x0, x1)[:, None] + offsets[None, :]).reshape(-1) - centre_x
    ys = (np.arange(y0, y1)[:, None] + offsets[None, :]).reshape(-1) - centre_y
    dx, dy = np.meshgrid(xs, ys)
    return (slice(y0, y1), slice(x0, x1)), dx, dy


def _to_pixels(samples: np.ndarray) -> np.ndarray:
    rows, cols = samples.shape[0] // SUPERSAMPLING, samples.shape[1] // SUPERSAMPLING
    return samples.reshape(rows, SUPERSAMPLING, cols, SUPERSAMPLING).mean(axis=(1, 3))


def _shape_inside(shape: str, dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    """Which sub-samples lie inside the shape centred at the origin; all shapes have the area of a disc of radius."""
    if shape == "disc":
        return dx * dx + dy * dy <= radius * radius
    if shape == "square":
        half_side = radius * math.sqrt(math.pi) / 2
        return np.maximum(np.abs(dx), np.abs(dy)) <= half_side
    if shape == "triangle":  # equilateral, apex up (y grows downwards), centroid at the origin
        inradius = radius * math.sqrt(math.pi / (3 * math.sqrt(3)))
        inside = dy <= inradius
        for normal_x, normal_y in ((math.sqrt(3) / 2, -0.5), (-math.sqrt(3) / 2, -0.5)):
            inside &= normal_x * dx + normal_y * dy <= inradius
        return inside
    raise ValueError(f"unknown shape {shape!r}")


def _object_texture(dx: np.ndarray, dy: np.ndarray, radius: float, amplitude: float) -> np.ndarray:
    """Brightness factor in [1 - 2 amplitude, 1] that moves with the object, giving flow something to track inside
    it."""
    wavelength = 0.9 * radius
    return 1 - amplitude + amplitude * np.cos(2 * math.pi * dx / wavelength) * np.cos(2 * math.pi * dy / wavelength)


def _background(plan: VideoPlan) -> np.ndarray:
    """Static smooth texture with a mild tint, drawn from the scene's seed alone (never from the class)."""
    rng = np.random.default_rng([SCENE_STREAM, *plan.scene_seed, 0xB6])
    coarse_size = (max(2, plan.width // 8), max(2, plan.height // 8))
    luminance = cv2.resize(rng.uniform(70, 150, size=coarse_size[::-1]), (plan.width, plan.height),
                           interpolation=cv2.INTER_CUBIC)
    tint = rng.uniform(-15, 15, size=3)
    grain = rng.uniform(-6, 6, size=(plan.height, plan.width, 3))
    return np.clip(luminance[..., None] + tint + grain, 0, 255).astype(np.float32)


def _bounce(position: float, low: float, high: float) -> float:
    """Reflect an unbounded 1-D position into [low, high] as if bouncing off both ends."""
    span = high - low
    folded = (position - low) % (2 * span)
    return low + (folded if folded <= span else 2 * span - folded)


def distractor_centre(plan: VideoPlan, frame_index: int) -> tuple[float, float]:
    half = plan.distractor_half_size
    x = plan.distractor_start[0] + plan.distractor_velocity[0] * frame_index
    y = plan.distractor_start[1] + plan.distractor_velocity[1] * frame_index
    return _bounce(x, half, plan.width - half), _bounce(y, half, plan.height - half)


def render_video(plan: VideoPlan, with_masks: bool = False):
    """Frames ``[F, H, W, 3]`` uint8 RGB; with ``with_masks`` also the coverage ``[F, H, W]`` in [0, 1] of the
    class's own object (the window's, not the decoys')."""
    background = _background(plan)
    grey = np.asarray(DISTRACTOR_COLOUR, dtype=np.float32)
    frames = np.empty((plan.frames, plan.height, plan.width, 3), dtype=np.uint8)
    masks = np.zeros((plan.frames, plan.height, plan.width), dtype=np.float32)
    for index in range(plan.frames):
        image = background.copy()
        distractor_x, distractor_y = distractor_centre(plan, index)
        window, dx, dy = _patch_samples(distractor_x, distractor_y, plan.distractor_half_size, plan.height,
                                        plan.width)
        inside = np.maximum(np.abs(dx), np.abs(dy)) <= plan.distractor_half_size
        coverage = _to_pixels(inside.astype(np.float32))[..., None]
        image[window] = image[window] * (1 - coverage) + grey * coverage
        for track in plan.tracks:
            if not track.start <= index < track.end:
                continue
            centre_x, centre_y = track.centres[index - track.start]
            extent = SHAPE_EXTENT * plan.radius
            # a wrapping object near an edge also shows across the other edge
            copies = [centre_x + shift for shift in ((-plan.width, 0, plan.width) if track.wraps else (0,))
                      if -extent - 1 < centre_x + shift < plan.width + extent + 1]
            for copy_x in copies:
                window, dx, dy = _patch_samples(copy_x, centre_y, extent, plan.height, plan.width)
                inside = _shape_inside(track.shape, dx, dy, plan.radius)
                coverage = _to_pixels(inside.astype(np.float32))
                # coverage-weighted texture: the object's colour times its brightness, summed over covered samples
                brightness = _to_pixels(np.where(inside, _object_texture(dx, dy, plan.radius, track.texture), 0.0))
                colour = np.asarray(track.colour, dtype=np.float32)
                image[window] = image[window] * (1 - coverage[..., None]) + colour * brightness[..., None]
                if any(track is own for own in plan.window):
                    masks[index][window] = np.maximum(masks[index][window], coverage)
        frames[index] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return (frames, masks) if with_masks else frames

