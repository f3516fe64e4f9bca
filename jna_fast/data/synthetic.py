"""A small synthetic action dataset in the official UCF101 layout, built so that both streams and temporal attention
matter.

Each video shows a static textured background (shared by the clips of a group, as in UCF101), a small grey
distractor square drifting slowly in a random direction for the whole video, and, only inside a window of frames
``[start, end)``, the class's object doing the class's motion. Classes come in two families:

- motion classes share one object (a yellow disc) and differ only in motion: direction (SlideRight / SlideLeft /
  SlideUp), speed (SlideRightFast) or periodicity (SwingHorizontal / SwingVertical);
- appearance classes share one motion (sliding down at the base speed) and differ only in shape (disc / square /
  triangle, all of equal area) and colour (red / green / blue).

So a single RGB frame can't tell the motion classes apart, the flow can't tell the colours apart, and outside the
window neither stream sees anything of the class. All objects carry the same texture so that flow is measurable
inside them. The catalogue interleaves the families, so any ``num_classes >= 2`` has both.

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

Deterministic: every random draw comes from ``numpy.random.default_rng([seed, ...])`` keyed by class, group and
clip, and the encoder runs single-threaded, so the same seed gives the same files byte for byte.
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
WINDOW_FRACTION = (0.3, 0.5)  # of the video's frames
MIN_FRAMES = 8

MOTION_OBJECT = ("disc", (235, 215, 50))
APPEARANCE_MOTION = {"kind": "slide", "direction": (0.0, 1.0), "speed": BASE_SPEED}
RED, GREEN, BLUE = (220, 45, 45), (45, 190, 70), (55, 90, 235)
DISTRACTOR_COLOUR = (150, 150, 150)


@dataclass(frozen=True)
class ClassSpec:
    name: str
    family: str              # "motion" or "appearance"
    shape: str               # "disc", "square" or "triangle"
    colour: tuple[int, int, int]
    motion: dict             # {"kind": "slide", direction, speed} or {"kind": "swing", axis, amplitude, period}


def _motion_class(name: str, motion: dict) -> ClassSpec:
    return ClassSpec(name, "motion", MOTION_OBJECT[0], MOTION_OBJECT[1], motion)


def _appearance_class(name: str, shape: str, colour: tuple[int, int, int]) -> ClassSpec:
    return ClassSpec(name, "appearance", shape, colour, APPEARANCE_MOTION)


def _slide(direction: tuple[float, float], speed: float = BASE_SPEED) -> dict:
    return {"kind": "slide", "direction": direction, "speed": speed}


def _swing(axis: tuple[float, float]) -> dict:
    return {"kind": "swing", "axis": axis, "amplitude": SWING_AMPLITUDE, "period": SWING_PERIOD}


CLASS_CATALOGUE: tuple[ClassSpec, ...] = (
    _motion_class("SlideRight", _slide((1.0, 0.0))),
    _appearance_class("RedSquare", "square", RED),
    _motion_class("SlideLeft", _slide((-1.0, 0.0))),
    _appearance_class("GreenSquare", "square", GREEN),
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
class VideoPlan:
    """Every random draw of one video, in pixels and frames; ``render_video`` turns it into frames."""

    class_name: str
    height: int
    width: int
    frames: int
    start: int                         # first frame of the discriminative window
    end: int                           # one past its last frame
    centres: tuple[tuple[float, float], ...]   # object centre (x, y) for each window frame
    radius: float
    shape: str
    colour: tuple[int, int, int]
    distractor_start: tuple[float, float]
    distractor_velocity: tuple[float, float]
    distractor_half_size: float
    background_seed: tuple[int, ...]


def _max_displacement(spec: ClassSpec, window: int, short_side: float) -> float:
    """How far the object's centre travels along its axis within a window of ``window`` frames, in pixels."""
    motion = spec.motion
    if motion["kind"] == "slide":
        return motion["speed"] * short_side * (window - 1)
    return 2 * motion["amplitude"] * short_side


def window_length_range(frames: int, height: int, width: int) -> tuple[int, int]:
    """Inclusive bounds of the window length: WINDOW_FRACTION of the video, shortened so every class's path fits."""
    short_side = min(height, width)
    free_span = short_side * (1 - 2 * OBJECT_RADIUS - 2 * EDGE_MARGIN)
    longest = max(2, round(WINDOW_FRACTION[1] * frames))
    while longest > 2 and any(_max_displacement(spec, longest, short_side) > free_span for spec in CLASS_CATALOGUE):
        longest -= 1
    shortest = min(longest, max(2, round(WINDOW_FRACTION[0] * frames)))
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


def plan_video(spec: ClassSpec, class_index: int, group: int, clip: int, *, frames: int, height: int, width: int,
               seed: int) -> VideoPlan:
    """Draw one video's parameters; depends only on (seed, class, group, clip) and the sizes."""
    rng = np.random.default_rng([seed, class_index, group, clip])
    shortest, longest = window_length_range(frames, height, width)
    window = int(rng.integers(shortest, longest + 1))
    start = int(rng.integers(0, frames - window + 1))
    centres = _object_centres(spec, window, height, width, rng)
    short_side = min(height, width)
    half = DISTRACTOR_HALF_SIZE * short_side
    distractor_start = tuple(float(v) for v in rng.uniform([half, half], [width - half, height - half]))
    angle = rng.uniform(0, 2 * math.pi)
    speed = rng.uniform(*DISTRACTOR_SPEED) * short_side
    return VideoPlan(
        class_name=spec.name, height=height, width=width, frames=frames, start=start, end=start + window,
        centres=tuple(centres), radius=OBJECT_RADIUS * short_side, shape=spec.shape, colour=spec.colour,
        distractor_start=distractor_start,
        distractor_velocity=(float(speed * math.cos(angle)), float(speed * math.sin(angle))),
        distractor_half_size=half, background_seed=(seed, class_index, group))


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


def _object_texture(dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    """Brightness factor in [0.7, 1] that moves with the object, giving flow something to track inside it."""
    wavelength = 0.9 * radius
    return 0.85 + 0.15 * np.cos(2 * math.pi * dx / wavelength) * np.cos(2 * math.pi * dy / wavelength)


def _background(plan: VideoPlan) -> np.ndarray:
    """Static smooth texture with a mild tint, the same for all clips of a group (like a UCF101 group's scene)."""
    rng = np.random.default_rng(list(plan.background_seed) + [0xB6])
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
    """Frames ``[F, H, W, 3]`` uint8 RGB; with ``with_masks`` also the object's coverage ``[F, H, W]`` in [0, 1]."""
    background = _background(plan)
    colour = np.asarray(plan.colour, dtype=np.float32)
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
        if plan.start <= index < plan.end:
            centre_x, centre_y = plan.centres[index - plan.start]
            window, dx, dy = _patch_samples(centre_x, centre_y, SHAPE_EXTENT * plan.radius, plan.height,
                                            plan.width)
            inside = _shape_inside(plan.shape, dx, dy, plan.radius)
            coverage = _to_pixels(inside.astype(np.float32))
            # coverage-weighted texture: the object's colour times its brightness, summed over covered samples
            brightness = _to_pixels(np.where(inside, _object_texture(dx, dy, plan.radius), 0.0))
            image[window] = image[window] * (1 - coverage[..., None]) + colour * brightness[..., None]
            masks[index][window] = coverage
        frames[index] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return (frames, masks) if with_masks else frames


def encode_video(frames: np.ndarray, path: str | os.PathLike, codec: str = "mpeg4", fps: int = FPS) -> None:
    """Write RGB frames ``[F, H, W, 3]`` to an AVI file with PyAV, deterministically (single-threaded encoder)."""
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    count, height, width, _ = frames.shape
    with av.open(str(path), "w", format="avi") as container:
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


def make_synthetic(root: str | os.PathLike, num_classes: int = 8, videos_per_class: int = 8, frames: int = 32,
                   size: int | tuple[int, int] = 96, seed: int = 0, clips_per_group: int = 2,
                   codec: str = "mpeg4", overwrite: bool = False) -> dict:
    """Write the synthetic dataset under ``root`` (see the module doc) and return its metadata.

    If ``root`` already holds a complete dataset made with the same arguments it is reused as is; a different one
    (or a foreign ``UCF-101`` folder) raises FileExistsError unless ``overwrite`` is set. A run interrupted midway
    is detected by its leftover ``.synthetic_incomplete`` marker and redone.
    """
    if not 2 <= num_classes <= len(CLASS_CATALOGUE):
        raise ValueError(f"num_classes must be in 2..{len(CLASS_CATALOGUE)}, got {num_classes}")
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
    height, width = _normalise_size(size)
    root = Path(root)
    parameters = {"num_classes": num_classes, "videos_per_class": videos_per_class, "frames": frames,
                  "height": height, "width": width, "seed": seed, "clips_per_group": clips_per_group,
                  "codec": codec, "fps": FPS}

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

    specs = CLASS_CATALOGUE[:num_classes]
    videos = []
    for class_index, spec in enumerate(specs):
        (root / VIDEO_DIR / spec.name).mkdir(parents=True)
        for video_index in range(videos_per_class):
            group, clip = video_index // clips_per_group + 1, video_index % clips_per_group + 1
            plan = plan_video(spec, class_index, group, clip, frames=frames, height=height, width=width, seed=seed)
            relative = f"{spec.name}/{video_name(spec.name, group, clip)}"
            encode_video(render_video(plan), root / VIDEO_DIR / relative, codec)
            videos.append({
                "video": relative, "class": spec.name, "label": class_index + 1, "family": spec.family,
                "group": group, "clip": clip, "frames": frames, "height": height, "width": width,
                "discriminative_frames": [plan.start, plan.end],
                "test_in_splits": [split for split in SPLITS if group in split_test_groups(split, groups)],
                "object": {"shape": spec.shape, "colour": list(spec.colour), "radius": plan.radius},
                "motion": _jsonable(spec.motion),
                "object_centres": [list(centre) for centre in plan.centres],
                "distractor": {"start": list(plan.distractor_start), "velocity": list(plan.distractor_velocity),
                               "half_size": plan.distractor_half_size},
                "background_seed": list(plan.background_seed),
            })

    _write_split_files(root / SPLIT_DIR, specs, videos)
    metadata = {
        "parameters": parameters,
        "classes": [{"label": index + 1, **_jsonable(asdict(spec))} for index, spec in enumerate(specs)],
        "videos": videos,
    }
    temporary = meta_path.with_name(f"{META_NAME}.tmp")
    temporary.write_text(json.dumps(metadata, indent=1), encoding="utf-8")
    os.replace(temporary, meta_path)
    (root / INCOMPLETE_MARKER).unlink()
    return metadata


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
    parser.add_argument("--num-classes", type=int, default=8, help=f"2..{len(CLASS_CATALOGUE)} (default 8)")
    parser.add_argument("--videos-per-class", type=int, default=8, help="default 8")
    parser.add_argument("--clips-per-group", type=int, default=2, help="default 2")
    parser.add_argument("--frames", type=int, default=32, help="frames per video (default 32)")
    parser.add_argument("--size", type=int, nargs="+", default=[96], metavar="PIXELS",
                        help="frame size: one number for square frames or HEIGHT WIDTH (default 96)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--codec", choices=sorted(CODECS), default="mpeg4",
                        help="mpeg4 (UCF101's codec; DALI GPU decoder) or mjpeg (DALI CPU decoder); default mpeg4")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset under --root")
    args = parser.parse_args(argv)
    if len(args.size) > 2:
        parser.error(f"--size takes one or two numbers, got {len(args.size)}")
    size = args.size[0] if len(args.size) == 1 else tuple(args.size)
    try:
        metadata = make_synthetic(args.root, num_classes=args.num_classes, videos_per_class=args.videos_per_class,
                                  frames=args.frames, size=size, seed=args.seed, clips_per_group=args.clips_per_group,
                                  codec=args.codec, overwrite=args.overwrite)
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(metadata['videos'])} videos of {len(metadata['classes'])} classes in {args.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
