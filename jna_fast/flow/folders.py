"""The rawframes folders that ``python -m jna_fast.flow extract`` owns (jna_fast/flow/extract.py says how they are
written): where a video's folder goes, the completion and partial markers, and which folders are complete, someone
else's, or left by a dead process. Reads and deletes files only; needs neither OpenCV nor PyAV."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

COMPLETE_MARKER = ".extract_complete.json"
"""Written last into a rawframes folder by the extractor: frame count, settings and source video."""
PARTIAL_MARKER = ".extract_partial.json"
"""Marks a folder being written as the extractor's own (the only kind of folder it deletes)."""
PARTIAL_TAG = ".partial-"


def frame_dir_for(relative_video: str) -> str:
    """The output folder (relative to --out) of a video: its relative path without the extension.

    Args:
        relative_video: the video's path relative to --videos.

    Returns:
        The POSIX path of its rawframes folder relative to --out.
    """
    return Path(relative_video).with_suffix("").as_posix()


def read_completion_marker(frame_dir: str | os.PathLike) -> dict | None:
    """The marker of a completely extracted folder.

    Args:
        frame_dir: the rawframes folder.

    Returns:
        The marker's JSON (``video``, ``frames``, ``flow_pairs``, ``settings``, ``source``), or None when the folder
        is absent, partial or unreadable.
    """
    try:
        with open(Path(frame_dir) / COMPLETE_MARKER, encoding="utf-8") as marker:
            return json.load(marker)
    except (OSError, ValueError):
        return None


def settings_record(algorithm: str, short_side: int | None, bound: float, jpeg_quality: int) -> dict:
    """The settings a completion marker records: a folder extracted with others is redone."""
    return {"algorithm": algorithm, "short_side": short_side, "bound": float(bound), "jpeg_quality": jpeg_quality}


def source_fingerprint(video_path: Path) -> dict:
    """Size and modification time of the video: a replaced or regenerated video invalidates its frames."""
    status = video_path.stat()
    return {"bytes": status.st_size, "mtime_ns": status.st_mtime_ns}


def is_complete(frame_dir: Path, settings: dict, video_path: Path) -> dict | None:
    marker = read_completion_marker(frame_dir)
    if (marker is not None and marker.get("settings") == settings
            and marker.get("source") == source_fingerprint(video_path)):
        return marker
    return None


def foreign_folder(frame_dir: Path) -> str | None:
    """Why ``frame_dir`` must not be replaced, or None: anything there other than a folder this extractor
    completed (which holds its completion marker) is someone else's."""
    if frame_dir.is_symlink() or (frame_dir.exists() and not (frame_dir / COMPLETE_MARKER).is_file()):
        return (f"{frame_dir} exists and was not written by python -m jna_fast.flow extract (no {COMPLETE_MARKER} "
                f"in it), so it is left as it is: move it away, or choose another --out")
    return None


def remove_stale_partials(frame_dir: Path) -> None:
    """Delete the ``<name>.partial-<pid>`` folders that this extractor marked as its own and whose process is no
    longer running; a folder of that name without the marker is not ours and stays."""
    for partial in frame_dir.parent.glob(f"{frame_dir.name}{PARTIAL_TAG}*"):
        pid_text = partial.name[len(frame_dir.name) + len(PARTIAL_TAG):]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and process_alive(int(pid_text)):
            continue
        if not partial.is_symlink() and (partial / PARTIAL_MARKER).is_file():
            shutil.rmtree(partial, ignore_errors=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
