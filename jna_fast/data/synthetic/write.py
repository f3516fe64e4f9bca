"""Writing the synthetic set under a root (:func:`make_synthetic`): its arguments checked, the root claimed (an
identical complete set is reused, an interrupted one redone), every video planned, rendered and encoded, then the
split lists and the metadata (the layout is jna_fast/data/synthetic/layout.py's)."""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from ...files import write_atomically
from .classes import (DEFAULT_FAMILIES, DEFAULT_FRAME_SIZE, DEFAULT_NUM_CLASSES, DEFAULT_VIDEOS_PER_CLASS, FAMILIES,
                      MIN_FRAMES, WINDOW_FRACTION, catalogue)
from .encode import CODECS, FPS, encode_video
from .layout import (GENERATOR_VERSION, INCOMPLETE_MARKER, META_NAME, SPLIT_DIR, SPLITS, VIDEO_DIR, jsonable,
                     split_test_groups, video_name, write_split_files)
from .plan import plan_video, window_length_range
from .render import render_video


def _normalise_size(size) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if height < 32 or width < 32 or height % 2 or width % 2:
        raise ValueError(f"size must be an even number >= 32 or (height, width) of such numbers, got {size!r}")
    return int(height), int(width)


def make_synthetic(root: str | os.PathLike, num_classes: int = DEFAULT_NUM_CLASSES,
                   videos_per_class: int = DEFAULT_VIDEOS_PER_CLASS, frames: int = 32,
                   size: int | tuple[int, int] = DEFAULT_FRAME_SIZE, seed: int = 0, clips_per_group: int = 2,
                   codec: str = "mpeg4",
                   window_fraction: tuple[float, float] = WINDOW_FRACTION, decoys: int = 0,
                   families: tuple[str, ...] = DEFAULT_FAMILIES, overwrite: bool = False) -> dict:
    """Write the synthetic dataset under ``root`` (see jna_fast/data/synthetic/__init__.py) and return its
    metadata: the first ``num_classes`` classes of the chosen ``families``.

    If ``root`` already holds a complete dataset made with the same arguments it is reused as is; a different one
    (or a foreign ``UCF-101`` folder) raises FileExistsError unless ``overwrite`` is set. A run interrupted midway
    is detected by its leftover ``.synthetic_incomplete`` marker and redone.

    Args:
        root: the folder to write (UCF101 layout: ``UCF-101/<Class>/v_*.avi`` and the split lists).
        num_classes: classes, at least 2 and at most those of ``families``.
        videos_per_class: videos of each class.
        frames: frames per video, >= 8.
        size: frame side, or ``(height, width)``: even numbers >= 32.
        seed: seeds every random draw (the same arguments write the same videos).
        clips_per_group: clips per UCF101-style group ``g<GG>_c<CC>`` (a group's clips share their scene);
            ``videos_per_class`` must make at least 2 groups.
        codec: "mpeg4" or "mjpeg".
        window_fraction: ``(low, high)``: the share of the frames the class's window covers, 0 < low <= high <= 1.
        decoys: at most this many bursts of other classes outside the window, >= 0.
        families: the class families to draw from: "motion", "appearance", "binding".
        overwrite: replace a different dataset under ``root``.

    Returns:
        The metadata (also written to the root): ``parameters``, ``horizontal_flip_preserves_label`` (False),
        ``classes`` and ``videos``.

    Raises:
        ValueError: an argument out of the ranges above.
        FileExistsError: ``root`` holds a different dataset and ``overwrite`` is not set.
    """
    parameters = _checked_parameters(num_classes, videos_per_class, frames, size, seed, clips_per_group, codec,
                                     window_fraction, decoys, families)
    root = Path(root)
    existing = _claim(root, parameters, overwrite)
    if existing is not None:
        return existing
    specs = catalogue(families)[:num_classes]
    videos = [_write_video(root, parameters, specs, class_index, video_index)
              for class_index in range(len(specs)) for video_index in range(videos_per_class)]
    write_split_files(root / SPLIT_DIR, specs, videos)
    metadata = {
        "parameters": parameters,
        "horizontal_flip_preserves_label": False,
        "classes": [{"label": index + 1, **jsonable(asdict(spec))} for index, spec in enumerate(specs)],
        "videos": videos,
    }
    write_atomically(root / META_NAME, lambda handle: handle.write(json.dumps(metadata, indent=1).encode("utf-8")))
    (root / INCOMPLETE_MARKER).unlink()
    return metadata


def _checked_parameters(num_classes, videos_per_class, frames, size, seed, clips_per_group, codec, window_fraction,
                        decoys, families) -> dict:
    """make_synthetic's arguments checked, as its metadata records them (``parameters``)."""
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
    return {"generator_version": GENERATOR_VERSION, "num_classes": num_classes,
            "videos_per_class": videos_per_class, "frames": frames, "height": height, "width": width,
            "seed": seed, "clips_per_group": clips_per_group, "codec": codec, "fps": FPS,
            "window_fraction": list(window_fraction), "decoys": decoys, "families": list(families)}


def _claim(root: Path, parameters: dict, overwrite: bool) -> dict | None:
    """The metadata of the complete dataset made with ``parameters`` already in ``root`` (reused as is), or None
    once ``root`` is ready to be written: marked incomplete, any earlier dataset's files removed."""
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
    return None


def _write_video(root: Path, parameters: dict, specs: tuple, class_index: int, video_index: int) -> dict:
    """Plan, render and encode video ``video_index`` of class ``specs[class_index]`` (the other ``specs`` are its
    decoys' classes); its metadata entry."""
    spec = specs[class_index]
    clips_per_group, frames = parameters["clips_per_group"], parameters["frames"]
    height, width = parameters["height"], parameters["width"]
    groups = math.ceil(parameters["videos_per_class"] / clips_per_group)
    group, clip = video_index // clips_per_group + 1, video_index % clips_per_group + 1
    plan = plan_video(spec, class_index, group, clip, frames=frames, height=height, width=width,
                      seed=parameters["seed"], window_fraction=tuple(parameters["window_fraction"]),
                      decoys=parameters["decoys"], decoy_classes=specs)
    (root / VIDEO_DIR / spec.name).mkdir(parents=True, exist_ok=True)
    relative = f"{spec.name}/{video_name(spec.name, group, clip)}"
    encode_video(render_video(plan), root / VIDEO_DIR / relative, parameters["codec"])
    return {
        "video": relative, "class": spec.name, "label": class_index + 1, "family": spec.family,
        "group": group, "clip": clip, "frames": frames, "height": height, "width": width,
        "discriminative_frames": [plan.start, plan.end],
        "test_in_splits": [split for split in SPLITS if group in split_test_groups(split, groups)],
        "object_radius": plan.radius,
        "motion": jsonable(spec.motion),
        "objects": [{"shape": track.shape, "colour": list(track.colour),
                     "centres": [list(centre) for centre in track.centres]} for track in plan.window],
        "distractor": {"start": list(plan.distractor_start), "velocity": list(plan.distractor_velocity),
                       "half_size": plan.distractor_half_size},
        "scene_seed": list(plan.scene_seed),
        "decoys": [{"class": burst[0].class_name, "frames": [burst[0].start, burst[0].end]}
                   for burst in plan.decoys],
    }
