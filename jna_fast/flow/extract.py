"""Extract RGB frames and 8-bit optical flow from videos into the rawframes layout (docs/design.md §6.2, §6.6).

For ``<videos>/<rel>/<name>.<ext>`` the extractor writes ``<out>/<rel>/<name>/``::

    img_00001.jpg ... img_N.jpg                   RGB frames (after the optional short-side resize)
    flow_x_00001.jpg ... flow_x_{N-1}.jpg         flow from frame i to i+1, x component (encoding.py)
    flow_y_00001.jpg ... flow_y_{N-1}.jpg         same, y component
    .extract_complete.json                        completion marker: frame count and the settings used

Resumability: a video is written into a sibling ``<name>.partial-<pid>`` folder, marked as ours by a
``.extract_partial.json`` written first, the completion marker is written last, and only then is the folder renamed
into place. A folder is taken as complete only when its marker exists and records the same settings and the same
source video (size and modification time), so a run killed at any point leaves nothing that a later run mistakes
for done; stale ``.partial-*`` folders of dead processes are removed when their video is redone.

What is ever deleted: only folders this extractor marked as its own, under ``--out``: a partial folder holding
``.extract_partial.json``, and a complete folder holding ``.extract_complete.json`` that is redone (other settings,
a changed video). Every path of a ``--list`` file must lie under ``--videos`` once resolved (no ``..``, absolute
paths or symlinks to elsewhere: an error naming the line), and every output folder under ``--out`` (a symlink
leading out fails that video). A folder already at a video's output place without our marker (the user's, or another
tool's) is never touched: that video fails with an error saying so, and the run goes on.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
import traceback
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import av
import cv2
import numpy as np
from tqdm import tqdm

from ..files import path_under, write_atomically
from ..cli import check_output_folder, visible
from ..io.errors import InvalidListLine, list_file_lines
from ..io.video import frame_to_rgb, short_side_size
from .algorithms import ALGORITHMS, DEFAULT_EXTRACTION_ALGORITHM, make_estimator
from .encoding import DEFAULT_BOUND, check_bound, encode_flow
from .folders import (COMPLETE_MARKER, PARTIAL_MARKER, PARTIAL_TAG, foreign_folder, frame_dir_for, is_complete,
                      remove_stale_partials, settings_record, source_fingerprint)

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp",
                    ".ogv")
"""The file extensions :func:`find_videos` takes for videos (compared in lower case)."""
SUMMARY_NAME = "extract_summary.json"
"""The summary :func:`extract_flow` writes under its ``out_dir``."""
DEFAULT_JPEG_QUALITY = 95


def find_videos(videos_dir: str | os.PathLike, list_file: str | os.PathLike | None = None
                ) -> tuple[list[str], list[dict]]:
    """Relative POSIX paths of the videos to extract, and failures for list entries that don't exist.

    Without ``list_file``: every file under ``videos_dir`` (recursively) with an extension in VIDEO_EXTENSIONS,
    sorted. With it: the first whitespace-separated field of each non-blank line, relative to ``videos_dir``
    (so UCF101's ``trainlist01.txt``, whose second field is the label, can be passed as is; a byte-order mark at its
    start is dropped); a video listed twice is extracted once.

    Args:
        videos_dir: the videos' folder.
        list_file: a list file whose lines' first field is a video path relative to ``videos_dir``; None: all.

    Returns:
        ``(videos, missing)``: the relative paths, and one failure (``video``, ``path``, ``error``) per listed
        video that does not exist.

    Raises:
        FileNotFoundError: ``videos_dir`` is not a folder.
        InvalidListLine: a listed path leading out of ``videos_dir`` (nothing is extracted); a DataError.
    """
    videos_dir = Path(videos_dir)
    if not videos_dir.is_dir():
        raise FileNotFoundError(f"--videos {videos_dir}: not a directory")
    if list_file is None:
        found = sorted(path.relative_to(videos_dir).as_posix() for path in videos_dir.rglob("*")
                       if path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file())
        return found, []
    videos, missing, listed = [], [], set()
    for line_number, line in list_file_lines(list_file):
        fields = line.split()
        if not fields:
            continue
        if path_under(videos_dir, fields[0]) is None:
            raise InvalidListLine(f"--list {list_file} line {line_number}: {fields[0]!r} leads out of --videos "
                                  f"{videos_dir} (paths must stay under it: no '..', absolute paths or symlinks "
                                  f"to elsewhere); nothing was extracted")
        relative = Path(os.path.normpath(fields[0])).as_posix()
        if relative in listed:
            continue
        listed.add(relative)
        if (videos_dir / relative).is_file():
            videos.append(relative)
        else:
            missing.append({"video": relative, "path": str(videos_dir / relative),
                            "error": f"{visible(relative)} listed in {list_file} line {line_number} but not found "
                                     f"under {videos_dir}"})
    return videos, missing


def extraction_complete(videos_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                        algorithm: str = DEFAULT_EXTRACTION_ALGORITHM, short_side: int | None = None,
                        bound: float = DEFAULT_BOUND, jpeg_quality: int = DEFAULT_JPEG_QUALITY) -> bool:
    """Whether every video under ``videos_dir`` has its complete rawframes folder in ``out_dir`` with these
    settings, so that :func:`extract_flow` would have nothing to do; reads only, writes nothing.

    Args:
        videos_dir: the videos, as given to :func:`extract_flow`.
        out_dir: the rawframes root.
        algorithm: the flow algorithm the folders must have been extracted with.
        short_side: their short-side resize (None: none).
        bound: their flow clip, in pixels.
        jpeg_quality: their JPEG quality.

    Returns:
        True when nothing is left to extract.

    Raises:
        FileNotFoundError: ``videos_dir`` is not a folder.
        ValueError: ``bound`` not a positive finite number.
    """
    settings = settings_record(algorithm, short_side, check_bound(bound), int(jpeg_quality))
    videos, _ = find_videos(videos_dir)
    return all(is_complete(Path(out_dir) / frame_dir_for(video), settings, Path(videos_dir) / video) is not None
               for video in videos)


def _decode_rgb_frames(video_path: Path, short_side: int | None):
    """Yield the video's frames as RGB uint8 ``[H, W, 3]``, resized so the short side is ``short_side``."""
    with av.open(str(video_path)) as container:
        if not container.streams.video:
            raise ValueError(f"{video_path}: no video stream")
        for frame in container.decode(video=0):
            # The loader's conversion and resize, so img files, online flow and prediction see the same pixels.
            yield frame_to_rgb(frame, short_side_size(frame.height, frame.width, short_side))


def _write_jpeg(path: Path, image: np.ndarray, jpeg_quality: int) -> None:
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]):
        raise OSError(f"could not write {path}")


def extract_video(video_path: str | os.PathLike, frame_dir: str | os.PathLike, *, estimator=None,
                  algorithm: str = DEFAULT_EXTRACTION_ALGORITHM, short_side: int | None = None,
                  bound: float = DEFAULT_BOUND, jpeg_quality: int = DEFAULT_JPEG_QUALITY, flow_threads: int = 1) -> int:
    """Extract one video into ``frame_dir`` (atomically, see the module doc); returns its frame count N.

    ``estimator`` (from ``algorithms.make_estimator``) is reused when given, so a worker builds it once.
    ``flow_threads``: flow pairs computed at once (the OpenCV estimators; the output does not depend on it).
    """
    video_path, frame_dir = Path(video_path), Path(frame_dir)
    foreign = foreign_folder(frame_dir)
    if foreign:
        raise FileExistsError(foreign)
    settings = settings_record(algorithm, short_side, bound, jpeg_quality)
    estimator = estimator if estimator is not None else make_estimator(algorithm)
    source = source_fingerprint(video_path)  # taken before decoding: a video replaced meanwhile is redone later
    frame_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(frame_dir)
    partial = frame_dir.with_name(f"{frame_dir.name}{PARTIAL_TAG}{os.getpid()}")
    partial.mkdir()
    try:
        with open(partial / PARTIAL_MARKER, "w", encoding="utf-8") as marker_file:
            json.dump({"pid": os.getpid(), "video": str(video_path)}, marker_file)
        frame_count = 0

        def gray_frames_after_writing_rgb():
            nonlocal frame_count
            for rgb in _decode_rgb_frames(video_path, short_side):
                frame_count += 1
                _write_jpeg(partial / f"img_{frame_count:05d}.jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                            jpeg_quality)
                yield cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)

        flow_count = 0
        for flow in estimator.flows(gray_frames_after_writing_rgb(), threads=flow_threads):
            flow_count += 1
            flow_x, flow_y = encode_flow(flow, bound)
            _write_jpeg(partial / f"flow_x_{flow_count:05d}.jpg", flow_x, jpeg_quality)
            _write_jpeg(partial / f"flow_y_{flow_count:05d}.jpg", flow_y, jpeg_quality)
        if frame_count == 0:
            raise ValueError(f"{video_path}: no video frames could be decoded")
        if frame_count < 2:
            raise ValueError(f"{video_path}: only {frame_count} frame decoded; optical flow needs at least 2")
        if flow_count != frame_count - 1:
            raise RuntimeError(f"{video_path}: {frame_count} frames gave {flow_count} flows, expected "
                               f"{frame_count - 1}")
        marker = {"video": str(video_path), "frames": frame_count, "flow_pairs": flow_count, "settings": settings,
                  "source": source}
        with open(partial / COMPLETE_MARKER, "w", encoding="utf-8") as marker_file:
            json.dump(marker, marker_file)
        foreign = foreign_folder(frame_dir)  # again: something may have appeared there meanwhile
        if foreign:
            raise FileExistsError(foreign)
        if frame_dir.exists():
            shutil.rmtree(frame_dir)  # our own folder, extracted with other settings or from a changed video
        os.rename(partial, frame_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    (frame_dir / PARTIAL_MARKER).unlink()
    return frame_count


_worker_estimator = None
_worker_flow_threads = 1


def _initialise_worker(algorithm: str, flow_threads: int) -> None:
    global _worker_estimator, _worker_flow_threads
    # The cores are shared out as flow pairs in flight (flow_threads per worker process); OpenCV's own threads
    # would oversubscribe them (and TV-L1 does not use them: one core per pair whatever setNumThreads, docs/design.md §6.2).
    cv2.setNumThreads(1)
    _worker_estimator = make_estimator(algorithm)
    _worker_flow_threads = flow_threads


def _describe(error: BaseException) -> str:
    return traceback.format_exception_only(type(error), error)[-1].strip()


def _extract_task(video_path: str, frame_dir: str, settings: dict, estimator=None, flow_threads: int | None = None
                  ) -> tuple[str, int | None, str | None]:
    """Returns (frame_dir, frame count, None) or (frame_dir, None, error text); runs in a worker or in-process."""
    try:
        frames = extract_video(video_path, frame_dir, estimator=estimator or _worker_estimator,
                               flow_threads=flow_threads or _worker_flow_threads, **settings)
        return frame_dir, frames, None
    except Exception as error:  # a failed video is reported in the summary; the run goes on
        return frame_dir, None, _describe(error)


def _write_json_atomically(path: Path, payload: dict) -> None:
    write_atomically(path, lambda handle: handle.write(json.dumps(payload, indent=2).encode("utf-8")))


def extract_flow(videos_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                 algorithm: str = DEFAULT_EXTRACTION_ALGORITHM, short_side: int | None = None,
                 bound: float = DEFAULT_BOUND, workers: int | None = None, list_file: str | os.PathLike | None = None,
                 jpeg_quality: int = DEFAULT_JPEG_QUALITY, progress: bool = True) -> dict:
    """Extract every video under ``videos_dir`` into rawframes under ``out_dir``; a failed video never stops the run.

    Args:
        videos_dir: the videos, searched recursively (:data:`VIDEO_EXTENSIONS`).
        out_dir: where the rawframes folders go, one per video at its relative path (created).
        algorithm: one of :data:`ALGORITHMS`.
        short_side: resize so the shorter side has this many pixels (TSN uses 256); None keeps the video's size.
        bound: the flow's clip in pixels, > 0 (encoding.py).
        workers: cores (default: all; 1: this process; >1: "spawn" workers, docs/guides/datasets.md).
        list_file: extract only the videos it lists (:func:`find_videos`).
        jpeg_quality: the JPEG quality, 1..100.
        progress: show a progress bar.

    Returns:
        The summary, also in ``<out_dir>/extract_summary.json``: ``done``, ``skipped`` (complete already), ``failed``.

    Raises:
        ValueError: a setting out of range, ``out_dir`` a file, or a list line leading out of ``videos_dir``.
        FileNotFoundError: ``videos_dir`` is not a folder.
        FlowAlgorithmUnavailable: the algorithm cannot run here (``nvof`` without an NVIDIA GPU or DALI)."""
    workers = _checked_workers(algorithm, short_side, jpeg_quality, workers)
    bound = check_bound(bound)
    estimator = make_estimator(algorithm)  # fails early, e.g. nvof without a GPU
    settings = settings_record(algorithm, short_side, bound, int(jpeg_quality))
    videos_dir, out_dir = Path(videos_dir), Path(out_dir)
    check_output_folder(out_dir, "--out")
    videos, failed = find_videos(videos_dir, list_file)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    skipped, pending = _plan(videos_dir, out_dir, videos, settings, failed)
    done = []
    bar = tqdm(total=len(pending), unit="video", desc=f"flow ({algorithm})", disable=not progress,
               dynamic_ncols=True)
    bar.set_postfix(skipped=len(skipped), failed=len(failed))

    def record(result: tuple[str, int | None, str | None]) -> None:
        absolute_frame_dir, frames, error = result
        video, frame_dir = pending[absolute_frame_dir]
        if error is None:
            done.append({"video": video, "frame_dir": frame_dir, "frames": frames})
        else:
            failed.append({"video": video, "path": str(videos_dir / video), "error": error})
        bar.update(1)
        bar.set_postfix(skipped=len(skipped), failed=len(failed))

    try:
        flow_threads = _extract_pending(videos_dir, pending, settings, estimator, workers, record)
    finally:
        bar.close()
    summary = {"videos_dir": str(videos_dir), "out_dir": str(out_dir), "settings": settings,
               **_outcome(done, skipped, failed, time.monotonic() - started),
               "workers": workers, "flow_threads_per_video": flow_threads if pending else None}
    summary.update({key: sorted(entries, key=lambda entry: entry["video"])
                    for key, entries in (("done", done), ("skipped", skipped), ("failed", failed))})
    _write_json_atomically(out_dir / SUMMARY_NAME, summary)
    return summary


def _checked_workers(algorithm: str, short_side: int | None, jpeg_quality: int, workers: int | None) -> int:
    """Check :func:`extract_flow`'s settings; returns the number of cores to use."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}")
    if short_side is not None and (int(short_side) != short_side or short_side < 1):
        raise ValueError(f"short_side must be a positive integer or None, got {short_side!r}")
    if not 1 <= int(jpeg_quality) <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality!r}")
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return workers


def _plan(videos_dir: Path, out_dir: Path, videos: list[str], settings: dict, failed: list[dict]
          ) -> tuple[list[dict], dict[str, tuple[str, str]]]:
    """Sort the videos into those already complete with these settings (returned: ``skipped``), those to extract
    (returned: ``pending``, absolute output folder -> (video, output folder under ``out_dir``)), and those that
    cannot be (appended to ``failed``: two videos sharing an output folder, a folder leading out of ``out_dir``, a
    folder that is not ours)."""
    videos_by_frame_dir = defaultdict(list)
    for video in videos:
        videos_by_frame_dir[frame_dir_for(video)].append(video)
    skipped, pending = [], {}
    for frame_dir, sources in videos_by_frame_dir.items():
        if len(sources) > 1:
            failed.extend({"video": video, "path": str(videos_dir / video),
                           "error": f"output folder {out_dir / frame_dir} would be shared by {', '.join(sources)}"}
                          for video in sources)
            continue
        problem = (f"output folder {out_dir / frame_dir} leads out of --out {out_dir} (a symlink?)"
                   if path_under(out_dir, frame_dir) is None else foreign_folder(out_dir / frame_dir))
        if problem:
            failed.append({"video": sources[0], "path": str(videos_dir / sources[0]), "error": problem})
            continue
        marker = is_complete(out_dir / frame_dir, settings, videos_dir / sources[0])
        if marker is not None:
            skipped.append({"video": sources[0], "frame_dir": frame_dir, "frames": marker["frames"]})
        else:
            pending[str(out_dir / frame_dir)] = (sources[0], frame_dir)
    return skipped, pending


def _extract_pending(videos_dir: Path, pending: dict[str, tuple[str, str]], settings: dict, estimator,
                     workers: int, record) -> int:
    """Extract the pending videos on ``workers`` cores, passing each result to ``record``; returns the flow pairs
    each video computed at once."""
    # `workers` cores in all: one process per video while there are enough videos, and each process computes
    # workers // processes flow pairs at once, so a single long video (or a few) still uses every core.
    if workers == 1 or len(pending) <= 1:
        for absolute_frame_dir, (video, _) in pending.items():
            record(_extract_task(str(videos_dir / video), absolute_frame_dir, settings, estimator, workers))
        return workers
    # spawn, not fork: the caller may hold DALI/CUDA/OpenMP state that a forked child must not inherit
    pool_size = min(workers, len(pending))
    flow_threads = max(1, workers // pool_size)
    with ProcessPoolExecutor(max_workers=pool_size, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_initialise_worker, initargs=(settings["algorithm"], flow_threads)) as pool:
        futures = {pool.submit(_extract_task, str(videos_dir / video), absolute_frame_dir, settings):
                   absolute_frame_dir for absolute_frame_dir, (video, _) in pending.items()}
        for future in as_completed(futures):
            try:
                record(future.result())
            except Exception as error:  # the worker process itself died (e.g. killed for memory)
                record((futures[future], None, f"worker process failed: {_describe(error)}"))
    return flow_threads


def _outcome(done: list[dict], skipped: list[dict], failed: list[dict], elapsed: float) -> dict:
    """The summary's counts and timings."""
    frames_done = sum(entry["frames"] for entry in done)
    return {
        "counts": {"done": len(done), "skipped": len(skipped), "failed": len(failed)},
        "elapsed_s": round(elapsed, 3),
        # Throughput of this run's algorithm over the videos extracted now (skipped ones cost nothing).
        "frames_done": frames_done,
        "frames_per_s": round(frames_done / elapsed, 2) if frames_done and elapsed > 0 else None,
    }
