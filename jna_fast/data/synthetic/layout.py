"""The synthetic set's files: the split rule, the names of its videos and its cache folder, its metadata and what is
read from it (the flip policy, the salient windows). Standard library only: the dataset spec reads it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

META_NAME = "synthetic_meta.json"
INCOMPLETE_MARKER = ".synthetic_incomplete"
VIDEO_DIR = "UCF-101"
SPLIT_DIR = "ucfTrainTestlist"
SPLITS = (1, 2, 3)
# Bumped whenever the same parameters would give different videos, so a cached dataset of an older generator is
# never mistaken for a current one.
GENERATOR_VERSION = 3


def video_name(class_name: str, group: int, clip: int) -> str:
    return f"v_{class_name}_g{group:02d}_c{clip:02d}.avi"


def split_test_groups(split: int, groups: int) -> set[int]:
    """Groups (1-based) whose clips form the test list of ``split``; the rest are training clips."""
    cycle = min(groups, 4)
    return {group for group in range(1, groups + 1) if (group - 1) % cycle == (split - 1) % cycle}



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


def jsonable(value):
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [jsonable(item) for item in value]
    return value


def write_split_files(split_dir: Path, specs, videos: list[dict]) -> None:
    split_dir.mkdir(parents=True)
    (split_dir / "classInd.txt").write_text(
        "".join(f"{index + 1} {spec.name}\n" for index, spec in enumerate(specs)), encoding="utf-8")
    for split in SPLITS:
        train = [f"{video['video']} {video['label']}\n" for video in videos if split not in video["test_in_splits"]]
        test = [f"{video['video']}\n" for video in videos if split in video["test_in_splits"]]
        (split_dir / f"trainlist{split:02d}.txt").write_text("".join(train), encoding="utf-8")
        (split_dir / f"testlist{split:02d}.txt").write_text("".join(test), encoding="utf-8")

