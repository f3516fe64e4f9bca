"""Motion planning of one synthetic video: every random draw (the window, the object's path, the decoys, the
distractor and the scene's seed) as a :class:`VideoPlan`, in pixels and frames; jna_fast/data/synthetic/render.py
draws it. NumPy only."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .classes import (BINDING_RED, BINDING_TEXTURE, CLASS_CATALOGUE, DECOY_LENGTH_FRACTION, DISTRACTOR_HALF_SIZE,
                      DISTRACTOR_SPEED, EDGE_MARGIN, OBJECT_RADIUS, OBJECT_TEXTURE, WINDOW_FRACTION, ClassSpec)

SCENE_STREAM = 0x5CE4E        # separates the scene's random stream from the class-keyed ones


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

