"""Parsers for the dataset list files: generic video/rawframes lists and the official UCF101 / HMDB51 splits,
shared by the dataset kinds' specs (jna_fast/data/datasets/), each of which builds its index with them
(``load_index(kind, ...)`` there). Light: standard library only.

The layouts of the kinds (``kind=`` of ``load_index``):

- ``"video"``: ``root`` is one video file (single-video prediction); its one record is labelled -1 (unknown).
- ``"videos"``: ``root`` holds the videos; ``list_file`` has lines ``relative/path.ext label`` (label 0-based).
- ``"rawframes"``: ``root`` holds one folder per video with ``img_%05d.jpg``, ``flow_x_%05d.jpg``,
  ``flow_y_%05d.jpg`` (1-based); ``list_file`` has lines ``frame_dir num_frames label`` where ``num_frames``
  counts the RGB frames (a video of N frames has N-1 flow pairs).
- ``"ucf101"``: ``root/UCF-101/<Class>/v_*.avi`` and ``root/ucfTrainTestlist/{classInd,trainlist0N,testlist0N}.txt``;
  ``classInd.txt`` numbers the classes from 1, the returned labels are that number minus one.
- ``"hmdb51"``: ``root/<class>/*.avi`` and ``root/testTrainMulti_7030_splits/<class>_test_splitN.txt`` with lines
  ``name.avi 0|1|2`` (1 = train, 2 = test, 0 = unused); classes are numbered from 0 in the sorted order of the
  class names (as mmaction2 numbers them; "climb" < "climb_stairs", although their split files sort the other way).
- ``"synthetic"``: the layout of ``"ucf101"`` (jna_fast/data/synthetic/).

A video's ``video_id`` is its path relative to the video folder (``root`` for "videos" and "hmdb51",
``root/UCF-101`` for "ucf101") without the extension: the name of its rawframes folder under ``frames_root``, as
written by ``python -m jna_fast.flow extract --videos <that folder> --out <frames_root>``.

List files are UTF-8 (a byte-order mark at the start is dropped); blank lines and lines starting with ``#`` are
ignored. Most problems (wrong field count, a field that is not an
integer, an unknown class, a missing video, one video listed twice with two labels) are reported as
``file:line: ...`` through the IssueLog (an error, or a skipped line with ``on_error="skip"``). Whatever
``on_error`` says, these are errors naming the file (and line):

- a path that leads out of its root once resolved (``..``, an absolute path, a symlink pointing elsewhere): a video
  must lie under its video folder and its rawframes folder under ``frames_root`` (kind "rawframes": under ``root``),
  so a list file can make the loader read nothing else;
- a label out of range: below 0, at least ``num_classes``, or in UCF101 not its class's index. Without
  ``num_classes`` a list's classes are 0 .. its largest label, and each must have a line: a class without one means
  the labels do not number the classes (a typo such as 57 for 5 would otherwise create 52 classes);
- a list with no usable line (an empty list says so).

A line repeating a video already listed with the same label is dropped, with one warning naming the lines.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..cli import visible
from ..files import path_under
from ..io.errors import DataError, InvalidListLine, IssueLog, list_file_lines, location

logger = logging.getLogger("jna_fast.data")

UNKNOWN_LABEL = -1
SUBSETS = ("train", "test")


@dataclass(frozen=True)
class VideoRecord:
    """One labelled video of a dataset index.

    Attributes:
        video_id: the video's id: its listed path without extension, or its rawframes folder as listed.
        label: the class index, 0-based (-1: unlabelled, kind="video").
        video_path: the video file; None for rawframes datasets.
        frames_dir: its rawframes folder; None where no rawframes are read.
        num_frames: the frame count; None when it is to be read from the rawframes folder.
        source: the list file line the record comes from.
    """

    video_id: str
    label: int
    video_path: Path | None
    frames_dir: Path | None
    num_frames: int | None
    source: str


@dataclass(frozen=True)
class DatasetIndex:
    """The videos of one subset of a dataset (:func:`jna_fast.data.load_index`).

    Attributes:
        records: one per video, in list order.
        class_names: the class names, by label.
    """

    records: list[VideoRecord]
    class_names: list[str]


def _confined(root: Path, relative: str, what: str, where: str) -> Path:
    path = path_under(root, relative)
    if path is None:
        raise InvalidListLine(f"{where}: {what} {relative!r} leads out of {root} (list paths must stay under it: "
                              f"no '..', absolute paths or symlinks to elsewhere)")
    return path


def _lines(list_file: Path):
    """(line number, fields) of the meaningful lines of a list file."""
    if not list_file.is_file():
        raise DataError(f"{visible(list_file)}: list file not found")
    for number, line in list_file_lines(list_file):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield number, stripped.split()


def _parse_int(text: str, what: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise DataError(f"{where}: {what} must be an integer, got {text!r}") from None


def _check_fields(fields: list[str], expected: int, form: str, where: str) -> None:
    if len(fields) != expected:
        raise DataError(f"{where}: expected {expected} field(s) '{form}', got {len(fields)}: {' '.join(fields)!r}")


def _frames_dir(frames_root: Path | None, video_id: str, where: str) -> Path | None:
    return None if frames_root is None else _confined(frames_root, video_id, "rawframes folder", where)


def _video_record(video_root: Path, relative: str, label: int, frames_root: Path | None, where: str) -> VideoRecord:
    video_path = _confined(video_root, relative, "video", where)
    if not video_path.is_file():
        raise DataError(f"{where}: video {visible(video_path)} does not exist")
    video_id = Path(os.path.splitext(os.path.normpath(relative))[0]).as_posix()  # "a/./b.avi" is "a/b"
    return VideoRecord(video_id, label, video_path, _frames_dir(frames_root, video_id, where), None, where)


def _check_label(label: int, num_classes: int | None, where: str) -> None:
    if label < 0 or (num_classes is not None and label >= num_classes):
        bound = "" if num_classes is None else f" < {num_classes}"
        raise InvalidListLine(f"{where}: label {label} out of range (expected 0 <= label{bound})")


def _collect(parse_line, lines, issues: IssueLog) -> list[VideoRecord]:
    records = []
    for number, fields in lines:
        try:
            records.append(parse_line(number, fields))
        except InvalidListLine:
            raise
        except DataError as error:
            issues.report(str(error))
    return records


def _class_names(num_classes: int | None, records: list[VideoRecord], list_file: Path) -> list[str]:
    """``num_classes`` names, or, when it is not given, one per label 0 .. the largest, each of which must have a
    line: a class without one means the labels do not number the classes (a label out of range)."""
    if num_classes is not None:
        return [str(index) for index in range(num_classes)]
    count = max((record.label for record in records), default=-1) + 1
    missing = sorted(set(range(count)) - {record.label for record in records})
    if missing:
        beyond = [f"{record.source} (label {record.label})" for record in records if record.label > missing[0]]
        raise InvalidListLine(
            f"{list_file}: its labels run to {count - 1}, but classes {_ranges(missing)} have no line, so the "
            f"labels do not number the classes 0..{count - 1}; labels above {missing[0]} at {', '.join(beyond[:5])}"
            f"{' ...' if len(beyond) > 5 else ''}. If a class really has no line here, give the number of classes "
            f"(num_classes=, --num-classes)")
    return [str(index) for index in range(count)]


def _ranges(numbers: list[int]) -> str:
    """Sorted integers as runs: [3, 4, 5, 9] -> "3..5, 9"."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ", ".join(str(low) if low == high else f"{low}..{high}" for low, high in runs)


def _without_duplicates(records: list[VideoRecord], issues: IssueLog) -> list[VideoRecord]:
    """The records with each video once: a repeat with the same label is dropped (one warning names them all),
    a repeat with another label is reported through ``issues`` (an error, or skipped)."""
    first: dict[str, VideoRecord] = {}
    kept, repeats = [], []
    for record in records:
        earlier = first.setdefault(record.video_id, record)
        if earlier is record:
            kept.append(record)
        elif earlier.label == record.label:
            repeats.append(f"{record.source} (as {earlier.source})")
        else:
            issues.report(f"{record.source}: video {record.video_id} listed again with label {record.label} "
                          f"({earlier.source}: label {earlier.label})")
    if repeats:
        logger.warning("dropped %d duplicate list line(s), each a video already listed with the same label: %s%s",
                       len(repeats), ", ".join(repeats[:20]), " ..." if len(repeats) > 20 else "")
    return kept


def _usable(records: list[VideoRecord], source, issues: IssueLog) -> list[VideoRecord]:
    """The records without duplicates; a DataError when none is left (an empty list says it is empty)."""
    records = _without_duplicates(records, issues)
    if not records:
        if issues.issues:
            raise DataError(f"{source}: no usable video: every line was skipped (see the warnings above)")
        raise DataError(f"{source}: lists no video (the list is empty)")
    return records


def parse_video_list(root: Path, list_file: Path, frames_root: Path | None, issues: IssueLog,
                     num_classes: int | None = None) -> DatasetIndex:
    def parse(number, fields):
        where = location(list_file, number)
        _check_fields(fields, 2, "relative/path.ext label", where)
        label = _parse_int(fields[1], "label", where)
        _check_label(label, num_classes, where)
        return _video_record(root, fields[0], label, frames_root, where)

    records = _usable(_collect(parse, _lines(list_file), issues), list_file, issues)
    return DatasetIndex(records, _class_names(num_classes, records, list_file))


def parse_rawframes_list(root: Path, list_file: Path, issues: IssueLog,
                         num_classes: int | None = None) -> DatasetIndex:
    def parse(number, fields):
        where = location(list_file, number)
        _check_fields(fields, 3, "frame_dir num_frames label", where)
        num_frames = _parse_int(fields[1], "num_frames", where)
        if num_frames < 2:
            raise DataError(f"{where}: num_frames must be >= 2 (a flow pair needs two frames), got {num_frames}")
        label = _parse_int(fields[2], "label", where)
        _check_label(label, num_classes, where)
        frames_dir = _confined(root, fields[0], "rawframes folder", where)
        return VideoRecord(Path(os.path.normpath(fields[0])).as_posix(), label, None, frames_dir, num_frames, where)

    records = _usable(_collect(parse, _lines(list_file), issues), list_file, issues)
    return DatasetIndex(records, _class_names(num_classes, records, list_file))


def _check_split(split: int, valid: range, kind: str) -> None:
    if split not in valid:
        raise ValueError(f"split must be one of {list(valid)} for kind={kind!r}, got {split!r}")


def parse_ucf101(root: Path, split: int, subset: str, frames_root: Path | None, issues: IssueLog) -> DatasetIndex:
    _check_split(split, range(1, 4), "ucf101")
    lists_dir, video_root = root / "ucfTrainTestlist", root / "UCF-101"
    if not video_root.is_dir():
        raise DataError(f"{video_root}: UCF101 video folder not found (expected root/UCF-101/<Class>/v_*.avi)")
    class_file = lists_dir / "classInd.txt"
    class_ids: dict[str, int] = {}
    for number, fields in _lines(class_file):
        where = location(class_file, number)
        _check_fields(fields, 2, "index ClassName", where)
        index = _parse_int(fields[0], "class index", where)
        if index != len(class_ids) + 1 or fields[1] in class_ids:
            raise DataError(f"{where}: class indices must run 1, 2, ... without repeats; got {index} {fields[1]}")
        class_ids[fields[1]] = index
    if not class_ids:
        raise DataError(f"{class_file}: no classes")
    list_file = lists_dir / f"{'trainlist' if subset == 'train' else 'testlist'}{split:02d}.txt"

    def parse(number, fields):
        where = location(list_file, number)
        if subset == "train":
            _check_fields(fields, 2, "Class/v_name.avi label", where)
        else:
            _check_fields(fields, 1, "Class/v_name.avi", where)
        relative = fields[0]
        class_name = relative.split("/", 1)[0]
        if class_name not in class_ids:
            raise DataError(f"{where}: unknown class {class_name!r} (not in {class_file})")
        if subset == "train":
            label = _parse_int(fields[1], "label", where)
            if label != class_ids[class_name]:
                raise InvalidListLine(f"{where}: label {label} out of range or not the index of class "
                                      f"{class_name!r} ({class_ids[class_name]} in {class_file})")
        return _video_record(video_root, relative, class_ids[class_name] - 1, frames_root, where)

    return DatasetIndex(_usable(_collect(parse, _lines(list_file), issues), list_file, issues), list(class_ids))


HMDB51_SUBSET_CODES = {"train": "1", "test": "2"}


def parse_hmdb51(root: Path, split: int, subset: str, frames_root: Path | None, issues: IssueLog) -> DatasetIndex:
    _check_split(split, range(1, 4), "hmdb51")
    splits_dir = root / "testTrainMulti_7030_splits"
    suffix = f"_test_split{split}.txt"
    found = list(splits_dir.glob(f"*{suffix}")) if splits_dir.is_dir() else []
    if not found:
        raise DataError(f"{splits_dir}: no HMDB51 split files '<class>{suffix}'")
    # Numbered in the sorted order of the class names (as mmaction2 does), not of the file names: "climb_stairs_"
    # sorts before "climb_test" although "climb" sorts before "climb_stairs".
    files_by_class = {path.name[: -len(suffix)]: path for path in found}
    class_names = sorted(files_by_class)
    split_files = [files_by_class[name] for name in class_names]
    wanted = HMDB51_SUBSET_CODES[subset]
    records: list[VideoRecord] = []
    for label, (class_name, split_file) in enumerate(zip(class_names, split_files)):
        def parse(number, fields, class_name=class_name, label=label, split_file=split_file):
            where = location(split_file, number)
            _check_fields(fields, 2, "name.avi 0|1|2", where)
            if fields[1] not in ("0", "1", "2"):
                raise DataError(f"{where}: split code must be 0 (unused), 1 (train) or 2 (test), got {fields[1]!r}")
            if fields[1] != wanted:
                return None
            return _video_record(root, f"{class_name}/{fields[0]}", label, frames_root, where)

        records.extend(r for r in _collect(parse, _lines(split_file), issues) if r is not None)
    return DatasetIndex(_usable(records, f"{splits_dir}/*{suffix} (subset {subset})", issues), class_names)


def single_video_index(video_path: Path, frames_root: Path | None = None,
                       num_classes: int | None = None) -> DatasetIndex:
    """The index of one video file (label -1): its rawframes, if any, are ``frames_root/<file name stem>``."""
    if not video_path.is_file():
        raise DataError(f"{video_path}: video file not found")
    record = _video_record(video_path.parent, video_path.name, UNKNOWN_LABEL, frames_root, str(video_path))
    return DatasetIndex([record], [str(index) for index in range(num_classes or 0)])
