"""A small synthetic action dataset in the official UCF101 layout, built so that both streams and temporal attention
matter.

Each video shows a static textured background, a small grey distractor square drifting slowly in a random direction
for the whole video, and, only inside a window of frames ``[start, end)``, the class's object doing the class's
motion. Classes come in three families (``FAMILIES``; ``families=`` selects some):

- motion classes share one object (a yellow disc) and differ only in motion: direction (SlideRight / SlideLeft /
  SlideUp), speed (SlideRightFast) or periodicity (SwingHorizontal / SwingVertical);
- appearance classes share one motion (sliding down at the base speed) and differ only in shape (disc / square /
  triangle, all of equal area) and colour (red / green / blue);
- binding classes show two discs, a red and a blue one of the same grey level, one sliding right and the other
  left through the frame's edges; the class says which colour goes which way (RedRightBlueLeft /
  BlueRightRedLeft). Colours, positions and motions have the same distribution in both classes (see
  ``_binding_tracks``), so neither the RGB frames alone nor the flow alone, nor any sum of what each tells, can
  separate them: a network must combine what both streams see at the same place.

So a single RGB frame can't tell the motion classes apart, the flow can't tell the colours apart, neither can tell
the binding classes apart, and outside the window neither stream sees anything of the class. Every object carries
a texture so that flow is measurable inside it. The catalogue interleaves the families: the first 10 classes of all
three are 4 motion, 4 appearance and the 2 binding classes, and they are the default set.

No shortcut: the scene (background texture, tint, grain and the grey distractor's path) is drawn from
``(seed, group, clip)`` alone, so the clip ``g<GG>_c<CC>`` of every class has the same scene, pixel for pixel outside
the window and its decoys; nothing outside them, and nothing in the background, tells the classes apart (not even
by memorising training clips). The window's place and length come from the same distribution for every class.

Difficulty options:

- ``window_fraction=(low, high)``: the window covers between ``low`` and ``high`` of the video's frames (default
  (0.3, 0.5); shortened where a class's path would leave the frame). Shorter windows leave fewer snippets that
  carry the class, so averaging over time dilutes it more.
- ``decoys=n``: up to ``n`` bursts outside the window, each showing the object and motion of another class of the
  dataset for at most half as many frames as the window (so the label is always the class that fills the longest
  span). They make the snippets outside the window misleading instead of empty: a model must weigh snippets to
  tell the action from the decoy. Recorded per video in the metadata.

Horizontal flips change the label (SlideRight vs SlideLeft): the metadata declares
``"horizontal_flip_preserves_label": false`` and training on this dataset never flips.

Files written under ``root``::

    UCF-101/<Class>/v_<Class>_g<GG>_c<CC>.avi     MPEG-4 part 2 in AVI (as UCF101; DALI's GPU decoder reads it),
                                                  or MJPEG in AVI (codec="mjpeg"; DALI's CPU decoder reads it)
    ucfTrainTestlist/classInd.txt                 "<label> <Class>", labels 1-based
    ucfTrainTestlist/trainlist0{1,2,3}.txt        "<Class>/v_....avi <label>"
    ucfTrainTestlist/testlist0{1,2,3}.txt         "<Class>/v_....avi"
    synthetic_meta.json                           per video: class, family, generating parameters, the window
                                                  ``discriminative_frames`` = [start, end) (0-based decoded frame
                                                  indices; rawframes ``img_%05d`` numbers are these + 1) and the
                                                  object's centre in each window frame.

Splits follow UCF101's rule of keeping a group's clips together: split s (1..3) tests the groups g with
``(g - 1) % min(groups, 4) == s - 1`` and trains on the others (25% test when there are 4+ groups).

Deterministic: every random draw comes from ``numpy.random.default_rng([seed, ...])``, keyed by group and clip for
the scene and by class, group and clip for the window and decoys, and the encoder runs single-threaded, so the same
seed gives the same files byte for byte.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from ..cli import add_debug_option, run_command
from ..files import write_atomically
from .datasets.synthetic import DEFAULT_NUM_CLASSES, FAMILIES, TRAINING_VIDEOS_PER_CLASS, WINDOW_FRACTION

META_NAME = "synthetic_meta.json"
INCOMPLETE_MARKER = ".synthetic_incomplete"
VIDEO_DIR = "UCF-101"
SPLIT_DIR = "ucfTrainTestlist"
SPLITS = (1, 2, 3)
FPS = 25
CODECS = {"mpeg4": "yuv420p", "mjpeg": "yuvj420p"}

# Geometry as fractions of the frame's short side, so every size gives the same dataset up to scale.
OBJECT_RADIUS = 0.12          # equal-area radius of every object
BASE_SPEED = 0.018            # per frame
FAST_SPEED = 2.5 * BASE_SPEED
SWING_AMPLITUDE = 0.12
SWING_PERIOD = 10             # frames
DISTRACTOR_HALF_SIZE = 0.05
DISTRACTOR_SPEED = (0.006, 0.012)
EDGE_MARGIN = 0.03
DECOY_LENGTH_FRACTION = 0.5   # a decoy lasts at most this fraction of the shortest window
MIN_FRAMES = 8
DEFAULT_FRAME_SIZE = 96       # pixels, square frames
DEFAULT_VIDEOS_PER_CLASS = 8
# Bumped whenever the same parameters would give different videos, so a cached dataset of an older generator is
# never mistaken for a current one.
GENERATOR_VERSION = 3
SCENE_STREAM = 0x5CE4E        # separates the scene's random stream from the class-keyed ones

# Binding: two discs whose colours have the same grey level (0.299 R + 0.587 G + 0.114 B = 188.4), because flow is
# computed on grey frames: colours of different grey would give the flow branch the colour through the flow inside
# each disc. The binding discs carry a stronger texture than the other objects so that DIS measures their motion as
# well as it measures the single objects' (tests/test_synthetic.py).
BINDING_RED, BINDING_BLUE = (255, 160, 160), (130, 205.1, 255)
BINDING_TEXTURE = 0.3
OBJECT_TEXTURE = 0.15
MOTION_OBJECT = ("disc", (235, 215, 50))
APPEARANCE_MOTION = {"kind": "slide", "direction": (0.0, 1.0), "speed": BASE_SPEED}
RED, GREEN, BLUE = (220, 45, 45), (45, 190, 70), (55, 90, 235)
DISTRACTOR_COLOUR = (150, 150, 150)


DEFAULT_FAMILIES = FAMILIES


@dataclass(frozen=True)
class ClassSpec:
    """One class: its object (shape, colour) doing its motion; a binding class has a second object.

    ``motion`` is ``{"kind": "slide", direction, speed}``, ``{"kind": "swing", axis, amplitude, period}`` or, for the
    binding family, ``{"kind": "wrap", speed}``: the object slides horizontally through the frame's edges (it leaves
    on one side and comes back on the other), with ``colour`` going right and ``partner_colour`` going left.
    """

    name: str
    family: str              # one of FAMILIES
    shape: str               # "disc", "square" or "triangle"
    colour: tuple[float, float, float]
    motion: dict
    partner_colour: tuple[float, float, float] | None = None


def _motion_class(name: str, motion: dict) -> ClassSpec:
    return ClassSpec(name, "motion", MOTION_OBJECT[0], MOTION_OBJECT[1], motion)


def _appearance_class(name: str, shape: str, colour: tuple[int, int, int]) -> ClassSpec:
    return ClassSpec(name, "appearance", shape, colour, APPEARANCE_MOTION)


def _binding_class(name: str, goes_right: tuple, goes_left: tuple) -> ClassSpec:
    return ClassSpec(name, "binding", "disc", goes_right, {"kind": "wrap", "speed": BASE_SPEED}, goes_left)


def _slide(direction: tuple[float, float], speed: float = BASE_SPEED) -> dict:
    return {"kind": "slide", "direction": direction, "speed": speed}


def _swing(axis: tuple[float, float]) -> dict:
    return {"kind": "swing", "axis": axis, "amplitude": SWING_AMPLITUDE, "period": SWING_PERIOD}


# Interleaved so that the first n classes mix the families: any n >= 2 has motion and appearance classes, n >= 3 a
# binding class too, and the default 10 are 4 motion, 4 appearance and both binding classes.
CLASS_CATALOGUE: tuple[ClassSpec, ...] = (
    _motion_class("SlideRight", _slide((1.0, 0.0))),
    _appearance_class("RedSquare", "square", RED),
    _binding_class("RedRightBlueLeft", BINDING_RED, BINDING_BLUE),
    _motion_class("SlideLeft", _slide((-1.0, 0.0))),
    _appearance_class("GreenSquare", "square", GREEN),
    _binding_class("BlueRightRedLeft", BINDING_BLUE, BINDING_RED),
    _motion_class("SwingHorizontal", _swing((1.0, 0.0))),
    _appearance_class("RedTriangle", "triangle", RED),
    _motion_class("SlideRightFast", _slide((1.0, 0.0), FAST_SPEED)),
    _appearance_class("BlueDisc", "disc", BLUE),
    _motion_class("SlideUp", _slide((0.0, -1.0))),
    _appearance_class("GreenTriangle", "triangle", GREEN),
    _motion_class("SwingVertical", _swing((0.0, 1.0))),
    _appearance_class("BlueSquare", "square", BLUE),
)


@dataclass(frozen=True)
class ObjectTrack:
    """One object of a class doing its motion over frames ``[start, end)``: in the window, or a decoy outside it."""

    class_name: str
    start: int
    end: int
    centres: tuple[tuple[float, float], ...]   # object centre (x, y) for each frame of the track
    shape: str
    colour: tuple[float, float, float]
    texture: float = OBJECT_TEXTURE            # amplitude of the brightness pattern that moves with the object
    wraps: bool = False                        # x is taken modulo the width: drawn again across the edge


@dataclass(frozen=True)
class VideoPlan:
    """Every random draw of one video, in pixels and frames; ``render_video`` turns it into frames."""

    class_name: str
    height: int
    width: int
    frames: int
    window: tuple[ObjectTrack, ...]    # the class's own object(s) and motion: the discriminative window
    decoys: tuple[tuple[ObjectTrack, ...], ...]  # bursts of other classes' objects and motions, outside it
    radius: float
    distractor_start: tuple[float, float]
    distractor_velocity: tuple[float, float]
    distractor_half_size: float
    scene_seed: tuple[int, ...]        # (seed, group, clip): the background, as the distractor, ignores the class

    @property
    def start(self) -> int:
        return self.window[0].start

    @property
    def end(self) -> int:
        return self.window[0].end

    @property
    def tracks(self) -> tuple[ObjectTrack, ...]:
        return (*self.window, *(track for burst in self.decoys for track in burst))


def _max_displacement(spec: ClassSpec, window: int, short_side: float) -> float:
    """How far the object's centre travels along its axis within a window of ``window`` frames, in pixels."""
    motion = spec.motion
    if motion["kind"] == "slide":
        return motion["speed"] * short_side * (window - 1)
    if motion["kind"] == "wrap":
        return 0.0  # through the edges: any path fits
    return 2 * motion["amplitude"] * short_side


def window_length_range(frames: int, height: int, width: int, window_fraction=WINDOW_FRACTION) -> tuple[int, int]:
    """Inclusive bounds of the window length: ``window_fraction`` of the video, shortened so every class's path
    fits in the frame."""
    low, high = window_fraction
    if not 0 < low <= high <= 1:
        raise ValueError(f"window_fraction must be (low, high) with 0 < low <= high <= 1, got {window_fraction!r}")
    short_side = min(height, width)
    free_span = short_side * (1 - 2 * OBJECT_RADIUS - 2 * EDGE_MARGIN)
    longest = max(2, round(high * frames))
    while longest > 2 and any(_max_displacement(spec, longest, short_side) > free_span for spec in CLASS_CATALOGUE):
        longest -= 1
    shortest = min(longest, max(2, round(low * frames)))
    return shortest, longest


def _object_centres(spec: ClassSpec, window: int, height: int, width: int, rng: np.random.Generator
                    ) -> list[tuple[float, float]]:
    short_side = min(height, width)
    motion = spec.motion
    steps = np.arange(window, dtype=np.float64)
    if motion["kind"] == "slide":
        direction = np.asarray(motion["direction"])
        offsets = (steps - (window - 1) / 2)[:, None] * (motion["speed"] * short_side) * direction
    else:
        axis = np.asarray(motion["axis"])
        phase = rng.uniform(0, 2 * math.pi)
        swing = motion["amplitude"] * short_side * np.sin(2 * math.pi * steps / motion["period"] + phase)
        offsets = swing[:, None] * axis
    # Centre the path at a random point from which every offset stays inside the frame.
    margin = (OBJECT_RADIUS + EDGE_MARGIN) * short_side
    low = margin - offsets.min(axis=0)
    high = np.array([width, height]) - margin - offsets.max(axis=0)
    centre = rng.uniform(low, np.maximum(low, high))
    return [tuple(float(v) for v in point) for point in centre + offsets]


def _binding_tracks(spec: ClassSpec, start: int, length: int, height: int, width: int, rng: np.random.Generator
                    ) -> tuple[ObjectTrack, ObjectTrack]:
    """The two discs of a binding class: one going right, one going left, at the same speed, through the edges.

    Neither stream alone can tell the two binding classes apart, by construction:
    - each disc's x is uniform over the width in every frame (uniform at the start, then moved modulo the width),
      independently of the other's and of the class;
    - the two heights are an unordered pair at least a diameter (+2 px) apart, so the discs never overlap and the
      draw order plays no part; which colour takes the upper one is a fair coin, independent of the class;
    so a frame shows the same distribution of (red position, blue position) in both classes, and the flow the same
    distribution of (upper motion, lower motion): only which colour moves which way differs.
    """
    short_side = min(height, width)
    radius = OBJECT_RADIUS * short_side
    margin = (OBJECT_RADIUS + EDGE_MARGIN) * short_side
    while True:  # two heights a diameter apart (rejection: the free span holds about 3 diameters)
        upper, lower = sorted(rng.uniform(margin, height - margin, size=2))
        if lower - upper >= 2 * radius + 2:
            break
    red_on_top = bool(rng.integers(2))
    right_height, left_height = (upper, lower) if red_on_top == (spec.colour == BINDING_RED) else (lower, upper)
    step = spec.motion["speed"] * short_side
    tracks = []
    for colour, direction, y in ((spec.colour, 1.0, right_height), (spec.partner_colour, -1.0, left_height)):
        x0 = rng.uniform(0, width)
        centres = tuple((float((x0 + direction * step * k) % width), float(y)) for k in range(length))
        tracks.append(ObjectTrack(spec.name, start, start + length, centres, spec.shape, colour,
                                  texture=BINDING_TEXTURE, wraps=True))
    return tuple(tracks)


def _class_tracks(spec: ClassSpec, start: int, length: int, height: int, width: int, rng: np.random.Generator
                  ) -> tuple[ObjectTrack, ...]:
    """The object(s) of class ``spec`` doing its motion over frames ``[start, start + length)``."""
    if spec.family == "binding":
        return _binding_tracks(spec, start, length, height, width, rng)
    centres = _object_centres(spec, length, height, width, rng)
    return (ObjectTrack(spec.name, start, start + length, tuple(centres), spec.shape, spec.colour),)


def _decoy_tracks(window: ObjectTrack, count: int, decoy_classes: tuple[ClassSpec, ...], frames: int,
                  shortest_window: int, height: int, width: int, rng: np.random.Generator
                  ) -> tuple[tuple[ObjectTrack, ...], ...]:
    """Up to ``count`` bursts of other classes in the frames outside the window, apart from it and each other;
    fewer where those frames have no room."""
    longest = max(2, int(DECOY_LENGTH_FRACTION * shortest_window))
    free = [(0, window.start), (window.end, frames)]
    decoys = []
    for _ in range(count):
        room = [(begin, end) for begin, end in free if end - begin >= 2]
        if not room or not decoy_classes:
            break
        begin, end = room[int(rng.integers(len(room)))]
        length = int(rng.integers(2, min(longest, end - begin) + 1))
        start = int(rng.integers(begin, end - length + 1))
        spec = decoy_classes[int(rng.integers(len(decoy_classes)))]
        decoys.append(_class_tracks(spec, start, length, height, width, rng))
        free.remove((begin, end))
        free += [(begin, start), (start + length, end)]
    return tuple(sorted(decoys, key=lambda burst: burst[0].start))


def plan_video(spec: ClassSpec, class_index: int, group: int, clip: int, *, frames: int, height: int, width: int,
               seed: int, window_fraction=WINDOW_FRACTION, decoys: int = 0,
               decoy_classes: tuple[ClassSpec, ...] = ()) -> VideoPlan:
    """Draw one video's parameters. The scene depends only on (seed, group, clip); the window and the decoys on
    (seed, class, group, clip); all of them on the sizes and options."""
    rng = np.random.default_rng([seed, class_index, group, clip])
    shortest, longest = window_length_range(frames, height, width, window_fraction)
    length = int(rng.integers(shortest, longest + 1))
    window = _class_tracks(spec, int(rng.integers(0, frames - length + 1)), length, height, width, rng)
    others = tuple(other for other in decoy_classes if other.name != spec.name)
    decoy_tracks = _decoy_tracks(window[0], decoys, others, frames, shortest, height, width, rng)
    scene = np.random.default_rng([seed, SCENE_STREAM, group, clip])
    short_side = min(height, width)
    half = DISTRACTOR_HALF_SIZE * short_side
    distractor_start = tuple(float(v) for v in scene.uniform([half, half], [width - half, height - half]))
    angle = scene.uniform(0, 2 * math.pi)
    speed = scene.uniform(*DISTRACTOR_SPEED) * short_side
    return VideoPlan(
        class_name=spec.name, height=height, width=width, frames=frames, window=window, decoys=decoy_tracks,
        radius=OBJECT_RADIUS * short_side, distractor_start=distractor_start,
        distractor_velocity=(float(speed * math.cos(angle)), float(speed * math.sin(angle))),
        distractor_half_size=half, scene_seed=(seed, group, clip))


# Rendering --------------------------------------------------------------------------------------------------------

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


# Dataset ----------------------------------------------------------------------------------------------------------

def video_name(class_name: str, group: int, clip: int) -> str:
    return f"v_{class_name}_g{group:02d}_c{clip:02d}.avi"


def split_test_groups(split: int, groups: int) -> set[int]:
    """Groups (1-based) whose clips form the test list of ``split``; the rest are training clips."""
    cycle = min(groups, 4)
    return {group for group in range(1, groups + 1) if (group - 1) % cycle == (split - 1) % cycle}


def _normalise_size(size) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if height < 32 or width < 32 or height % 2 or width % 2:
        raise ValueError(f"size must be an even number >= 32 or (height, width) of such numbers, got {size!r}")
    return int(height), int(width)


def catalogue(families=FAMILIES) -> tuple[ClassSpec, ...]:
    """The classes of the chosen families, in the catalogue's interleaved order."""
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown or not families:
        raise ValueError(f"families must be some of {', '.join(FAMILIES)}, got {list(families)!r}")
    return tuple(spec for spec in CLASS_CATALOGUE if spec.family in families)


def make_synthetic(root: str | os.PathLike, num_classes: int = DEFAULT_NUM_CLASSES,
                   videos_per_class: int = DEFAULT_VIDEOS_PER_CLASS, frames: int = 32,
                   size: int | tuple[int, int] = DEFAULT_FRAME_SIZE, seed: int = 0, clips_per_group: int = 2,
                   codec: str = "mpeg4",
                   window_fraction: tuple[float, float] = WINDOW_FRACTION, decoys: int = 0,
                   families: tuple[str, ...] = DEFAULT_FAMILIES, overwrite: bool = False) -> dict:
    """Write the synthetic dataset under ``root`` (see the module doc) and return its metadata: the first
    ``num_classes`` classes of the chosen ``families``.

    If ``root`` already holds a complete dataset made with the same arguments it is reused as is; a different one
    (or a foreign ``UCF-101`` folder) raises FileExistsError unless ``overwrite`` is set. A run interrupted midway
    is detected by its leftover ``.synthetic_incomplete`` marker and redone.
    """
    offered = catalogue(families)
    families = tuple(family for family in FAMILIES if family in families)  # catalogue order, no repeats
    if not 2 <= num_classes <= len(offered):
        raise ValueError(f"num_classes must be in 2..{len(offered)} (the classes of the families "
                         f"{', '.join(families)}), got {num_classes}")
    if clips_per_group < 1:
        raise ValueError(f"clips_per_group must be >= 1, got {clips_per_group}")
    groups = math.ceil(videos_per_class / clips_per_group)
    if groups < 2:
        raise ValueError(f"videos_per_class={videos_per_class} with clips_per_group={clips_per_group} makes "
                         f"{groups} group; splits need at least 2 groups per class, so use videos_per_class > "
                         f"clips_per_group")
    if frames < MIN_FRAMES:
        raise ValueError(f"frames must be >= {MIN_FRAMES}, got {frames}")
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    if decoys < 0:
        raise ValueError(f"decoys must be >= 0, got {decoys}")
    height, width = _normalise_size(size)
    window_fraction = tuple(float(v) for v in window_fraction)
    window_length_range(frames, height, width, window_fraction)  # validates the fractions
    root = Path(root)
    parameters = {"generator_version": GENERATOR_VERSION, "num_classes": num_classes,
                  "videos_per_class": videos_per_class, "frames": frames, "height": height, "width": width,
                  "seed": seed, "clips_per_group": clips_per_group, "codec": codec, "fps": FPS,
                  "window_fraction": list(window_fraction), "decoys": decoys, "families": list(families)}

    meta_path = root / META_NAME
    interrupted = (root / INCOMPLETE_MARKER).exists()
    if meta_path.exists() and not interrupted and not overwrite:
        existing = json.loads(meta_path.read_text(encoding="utf-8"))
        if existing.get("parameters") == parameters:
            return existing
        raise FileExistsError(f"{meta_path} describes a synthetic dataset made with {existing.get('parameters')}, "
                              f"not {parameters}; pass overwrite=True (--overwrite) to replace it")
    if (root / VIDEO_DIR).exists() and not (overwrite or interrupted or meta_path.exists()):
        raise FileExistsError(f"{root / VIDEO_DIR} exists and is not a synthetic dataset made here; pass "
                              f"overwrite=True (--overwrite) to replace it")
    root.mkdir(parents=True, exist_ok=True)
    (root / INCOMPLETE_MARKER).touch()
    for stale in (root / VIDEO_DIR, root / SPLIT_DIR):
        shutil.rmtree(stale, ignore_errors=True)
    meta_path.unlink(missing_ok=True)

    specs = offered[:num_classes]
    videos = []
    for class_index, spec in enumerate(specs):
        (root / VIDEO_DIR / spec.name).mkdir(parents=True)
        for video_index in range(videos_per_class):
            group, clip = video_index // clips_per_group + 1, video_index % clips_per_group + 1
            plan = plan_video(spec, class_index, group, clip, frames=frames, height=height, width=width, seed=seed,
                              window_fraction=window_fraction, decoys=decoys, decoy_classes=specs)
            relative = f"{spec.name}/{video_name(spec.name, group, clip)}"
            encode_video(render_video(plan), root / VIDEO_DIR / relative, codec)
            videos.append({
                "video": relative, "class": spec.name, "label": class_index + 1, "family": spec.family,
                "group": group, "clip": clip, "frames": frames, "height": height, "width": width,
                "discriminative_frames": [plan.start, plan.end],
                "test_in_splits": [split for split in SPLITS if group in split_test_groups(split, groups)],
                "object_radius": plan.radius,
                "motion": _jsonable(spec.motion),
                "objects": [{"shape": track.shape, "colour": list(track.colour),
                             "centres": [list(centre) for centre in track.centres]} for track in plan.window],
                "distractor": {"start": list(plan.distractor_start), "velocity": list(plan.distractor_velocity),
                               "half_size": plan.distractor_half_size},
                "scene_seed": list(plan.scene_seed),
                "decoys": [{"class": burst[0].class_name, "frames": [burst[0].start, burst[0].end]}
                           for burst in plan.decoys],
            })

    _write_split_files(root / SPLIT_DIR, specs, videos)
    metadata = {
        "parameters": parameters,
        "horizontal_flip_preserves_label": False,
        "classes": [{"label": index + 1, **_jsonable(asdict(spec))} for index, spec in enumerate(specs)],
        "videos": videos,
    }
    write_atomically(meta_path, lambda handle: handle.write(json.dumps(metadata, indent=1).encode("utf-8")))
    (root / INCOMPLETE_MARKER).unlink()
    return metadata


def cache_folder_name(num_classes: int, videos_per_class: int, window_fraction: tuple[float, float], decoys: int,
                      seed: int, families: tuple[str, ...]) -> str:
    """The cache folder of a dataset made with these parameters: the generator's version is in the name, so a cache
    written by an older generator is never reused, and runs with other parameters never see a stale one."""
    low, high = window_fraction
    return (f"g{GENERATOR_VERSION}-c{num_classes}-v{videos_per_class}-w{low:g}-{high:g}-d{decoys}-s{seed}-"
            f"{'+'.join(families)}")


def complete_dataset_parameters(root: str | os.PathLike) -> dict | None:
    """The parameters a complete synthetic dataset in ``root`` was made with, or None when there is none (or an
    interrupted one)."""
    meta = None if (Path(root) / INCOMPLETE_MARKER).exists() else read_metadata(root)
    return None if meta is None else meta["parameters"]


def read_metadata(root: str | os.PathLike) -> dict | None:
    """The synthetic_meta.json of ``root``, or None when ``root`` holds no synthetic dataset."""
    path = Path(root) / META_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def flips_preserve_labels(root: str | os.PathLike) -> bool:
    """Whether a horizontal flip keeps the labels of the dataset in ``root``: not for the synthetic set (a flip swaps
    SlideLeft and SlideRight), as its metadata declares; any other dataset (no metadata) keeps them, as in TSN."""
    meta = read_metadata(root)
    return True if meta is None else bool(meta.get("horizontal_flip_preserves_label", True))


@dataclass(frozen=True)
class SalientWindows:
    """Known discriminative windows: video_id -> [start, end) frames, and video_id -> class family."""

    windows: dict[str, tuple[int, int]]
    families: dict[str, str]

    @classmethod
    def read(cls, root: str | os.PathLike) -> "SalientWindows | None":
        """The windows of the synthetic dataset in ``root``; None for a dataset without known windows."""
        meta = read_metadata(root)
        if meta is None:
            return None
        windows, families = {}, {}
        for video in meta["videos"]:
            video_id = os.path.splitext(video["video"])[0]
            windows[video_id] = tuple(video["discriminative_frames"])
            families[video_id] = video["family"]
        return cls(windows, families)


def _jsonable(value):
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(item) for item in value]
    return value


def _write_split_files(split_dir: Path, specs, videos: list[dict]) -> None:
    split_dir.mkdir(parents=True)
    (split_dir / "classInd.txt").write_text(
        "".join(f"{index + 1} {spec.name}\n" for index, spec in enumerate(specs)), encoding="utf-8")
    for split in SPLITS:
        train = [f"{video['video']} {video['label']}\n" for video in videos if split not in video["test_in_splits"]]
        test = [f"{video['video']}\n" for video in videos if split in video["test_in_splits"]]
        (split_dir / f"trainlist{split:02d}.txt").write_text("".join(train), encoding="utf-8")
        (split_dir / f"testlist{split:02d}.txt").write_text("".join(test), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jna_fast.data.synthetic",
                                     description="Write the synthetic UCF101-layout dataset (see the module doc).")
    parser.add_argument("--root", default="synthetic_ucf101", help="output folder (default ./synthetic_ucf101)")
    parser.add_argument("--num-classes", type=int, default=DEFAULT_NUM_CLASSES,
                        help=f"2..{len(CLASS_CATALOGUE)} (default {DEFAULT_NUM_CLASSES}): the first of the catalogue "
                        "of the chosen families")
    parser.add_argument("--families", default=",".join(DEFAULT_FAMILIES),
                        help=f"comma-separated, of {', '.join(FAMILIES)} (default {','.join(DEFAULT_FAMILIES)})")
    parser.add_argument("--videos-per-class", type=int, default=DEFAULT_VIDEOS_PER_CLASS,
                        help=f"default {DEFAULT_VIDEOS_PER_CLASS}")
    parser.add_argument("--clips-per-group", type=int, default=2, help="default 2")
    parser.add_argument("--frames", type=int, default=32, help="frames per video (default 32)")
    parser.add_argument("--size", type=int, nargs="+", default=[DEFAULT_FRAME_SIZE], metavar="PIXELS",
                        help=f"frame size: one number for square frames or HEIGHT WIDTH (default "
                             f"{DEFAULT_FRAME_SIZE})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--codec", choices=sorted(CODECS), default="mpeg4",
                        help="mpeg4 (UCF101's codec; DALI GPU decoder) or mjpeg (DALI CPU decoder); default mpeg4")
    parser.add_argument("--window-fraction", type=float, nargs=2, default=list(WINDOW_FRACTION),
                        metavar=("LOW", "HIGH"), help="the window covers LOW..HIGH of the frames (default "
                        f"{WINDOW_FRACTION[0]} {WINDOW_FRACTION[1]}); shorter windows are harder")
    parser.add_argument("--decoys", type=int, default=0,
                        help="bursts of other classes outside the window, each at most half the shortest "
                        "window (default 0); decoys make the snippets outside the window misleading")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset under --root")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    if len(args.size) > 2:
        parser.error(f"--size takes one or two numbers, got {len(args.size)}")
    size = args.size[0] if len(args.size) == 1 else tuple(args.size)

    def generate() -> None:
        metadata = make_synthetic(args.root, num_classes=args.num_classes, videos_per_class=args.videos_per_class,
                                  frames=args.frames, size=size, seed=args.seed, clips_per_group=args.clips_per_group,
                                  codec=args.codec, window_fraction=tuple(args.window_fraction),
                                  decoys=args.decoys, families=tuple(filter(None, args.families.split(","))),
                                  overwrite=args.overwrite)
        print(f"{len(metadata['videos'])} videos of {len(metadata['classes'])} classes in {args.root}")

    return run_command(generate, args.debug)


if __name__ == "__main__":
    sys.exit(main())
