"""List/split file parsing: UCF101 and HMDB51 label mapping, generic lists, and every bad-line case."""

import logging
from pathlib import Path

import pytest

from jna_fast.data import DataError, load_index
from jna_fast.io.errors import InvalidListLine, IssueLog

UCF_CLASSES = ["ApplyEyeMakeup", "Basketball", "YoYo"]


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")  # the parser only checks that the video exists; decoding is tested elsewhere


def make_ucf101(root: Path, train_lines: list[str], test_lines: list[str], split: int = 1) -> Path:
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i} {name}\n" for i, name in enumerate(UCF_CLASSES, 1)))
    (lists / f"trainlist{split:02d}.txt").write_text("\n".join(train_lines) + "\n")
    (lists / f"testlist{split:02d}.txt").write_text("\n".join(test_lines) + "\n")
    for line in train_lines + test_lines:
        _touch(root / "UCF-101" / line.split()[0])
    return root


def test_ucf101_labels_come_from_classind(tmp_path):
    root = make_ucf101(tmp_path, ["YoYo/v_YoYo_g01_c01.avi 3", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1"],
                       ["Basketball/v_Basketball_g02_c01.avi", "YoYo/v_YoYo_g02_c01.avi"], split=2)
    train = load_index("ucf101", root, split=2, subset="train", frames_root=tmp_path / "frames")
    assert train.class_names == UCF_CLASSES
    assert [(r.video_id, r.label) for r in train.records] == [("YoYo/v_YoYo_g01_c01", 2),
                                                             ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01", 0)]
    assert train.records[0].video_path == root / "UCF-101" / "YoYo" / "v_YoYo_g01_c01.avi"
    assert train.records[0].frames_dir == tmp_path / "frames" / "YoYo" / "v_YoYo_g01_c01"
    test = load_index("ucf101", root, split=2, subset="test")
    assert [(r.video_id, r.label) for r in test.records] == [("Basketball/v_Basketball_g02_c01", 1),
                                                            ("YoYo/v_YoYo_g02_c01", 2)]


@pytest.mark.parametrize("bad_line, subset, problem", [
    ("YoYo/v_YoYo_g03_c01.avi", "train", "expected 2 field"),
    ("YoYo/v_YoYo_g03_c01.avi 3 extra", "train", "expected 2 field"),
    ("Unknown/v_Unknown_g03_c01.avi 2", "train", "unknown class 'Unknown'"),
    ("YoYo/v_YoYo_g03_c01.avi 7", "train", "label 7 out of range"),
    ("YoYo/v_YoYo_g03_c01.avi 1", "train", "not the index of class 'YoYo'"),
    ("YoYo/v_YoYo_g03_c01.avi x", "train", "label must be an integer"),
    ("YoYo/v_YoYo_g03_c01.avi 3", "test", "expected 1 field"),
])
def test_ucf101_bad_lines_name_file_and_line(tmp_path, bad_line, subset, problem):
    good = "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi" + (" 1" if subset == "train" else "")
    lines = [good, bad_line]
    root = make_ucf101(tmp_path, lines if subset == "train" else [], lines if subset == "test" else [])
    list_file = root / "ucfTrainTestlist" / f"{'trainlist' if subset == 'train' else 'testlist'}01.txt"
    with pytest.raises(DataError, match=problem) as raised:
        load_index("ucf101", root, split=1, subset=subset)
    assert f"{list_file}:2:" in str(raised.value)


def test_missing_video_is_an_error_naming_the_line(tmp_path):
    root = make_ucf101(tmp_path, ["YoYo/v_YoYo_g01_c01.avi 3"], [])
    (root / "UCF-101" / "YoYo" / "v_YoYo_g01_c01.avi").unlink()
    with pytest.raises(DataError, match=r"trainlist01.txt:1: video .*v_YoYo_g01_c01.avi does not exist"):
        load_index("ucf101", root, split=1, subset="train")


def test_skip_mode_warns_counts_and_keeps_good_lines(tmp_path, caplog):
    root = make_ucf101(tmp_path, ["YoYo/v_YoYo_g01_c01.avi 3", "Nope/v_Nope_g01_c01.avi 1",
                                  "YoYo/v_YoYo_g02_c01.avi"], [])
    issues = IssueLog("skip")
    with caplog.at_level(logging.WARNING, logger="jna_fast.data"):
        index = load_index("ucf101", root, split=1, subset="train", issues=issues)
    assert [r.video_id for r in index.records] == ["YoYo/v_YoYo_g01_c01"]
    reported = issues.take()
    assert len(reported) == 2 and "trainlist01.txt:2:" in reported[0] and "trainlist01.txt:3:" in reported[1]
    assert sum("skipped" in record.message for record in caplog.records) == 2


def make_hmdb51(root: Path, splits: dict[str, list[str]], split: int = 1) -> Path:
    split_dir = root / "testTrainMulti_7030_splits"
    split_dir.mkdir(parents=True)
    for class_name, lines in splits.items():
        (split_dir / f"{class_name}_test_split{split}.txt").write_text("\n".join(lines) + "\n")
        for line in lines:
            _touch(root / class_name / line.split()[0])
    return root


def test_hmdb51_split_codes_and_class_order(tmp_path):
    root = make_hmdb51(tmp_path, {"wave": ["w1.avi 1", "w2.avi 2", "w3.avi 0"],
                                  "brush_hair": ["b1.avi 2", "b2.avi 1", "b3.avi 1"]}, split=3)
    train = load_index("hmdb51", root, split=3, subset="train")
    assert train.class_names == ["brush_hair", "wave"]
    assert [(r.video_id, r.label) for r in train.records] == [("brush_hair/b2", 0), ("brush_hair/b3", 0),
                                                             ("wave/w1", 1)]
    test = load_index("hmdb51", root, split=3, subset="test")
    assert [(r.video_id, r.label) for r in test.records] == [("brush_hair/b1", 0), ("wave/w2", 1)]


def test_hmdb51_classes_numbered_in_class_name_order_not_split_file_order(tmp_path):
    # The split files of these names sort differently from the names: "climb_stairs_test..." < "climb_test...",
    # "kick_ball_test..." < "kick_test...", "sword_exercise_test..." < "sword_test...". mmaction2 numbers them in
    # the order of the names.
    names = ["sword_exercise", "kick", "climb_stairs", "sword", "climb", "kick_ball"]
    root = make_hmdb51(tmp_path, {name: [f"{name}_1.avi 1"] for name in names})
    split_file_order = sorted(path.name for path in (root / "testTrainMulti_7030_splits").iterdir())
    assert split_file_order[:2] == ["climb_stairs_test_split1.txt", "climb_test_split1.txt"]
    index = load_index("hmdb51", root, split=1, subset="train")
    expected = ["climb", "climb_stairs", "kick", "kick_ball", "sword", "sword_exercise"]
    assert index.class_names == expected
    assert sorted((r.video_id, r.label) for r in index.records) == [(f"{name}/{name}_1", label)
                                                                    for label, name in enumerate(expected)]


@pytest.mark.parametrize("bad_line, problem", [("w2.avi 3", "split code must be 0"),
                                               ("w2.avi", "expected 2 field")])
def test_hmdb51_bad_lines(tmp_path, bad_line, problem):
    root = make_hmdb51(tmp_path, {"wave": ["w1.avi 1", "w2.avi 1"]})
    (root / "testTrainMulti_7030_splits" / "wave_test_split1.txt").write_text(f"w1.avi 1\n{bad_line}\n")
    with pytest.raises(DataError, match=problem) as raised:
        load_index("hmdb51", root, split=1, subset="train")
    assert "wave_test_split1.txt:2:" in str(raised.value)


def test_hmdb51_without_split_files_names_the_folder(tmp_path):
    with pytest.raises(DataError, match="testTrainMulti_7030_splits: no HMDB51 split files"):
        load_index("hmdb51", tmp_path, split=1)


def test_generic_lists(tmp_path):
    _touch(tmp_path / "cls" / "a.mp4")
    (tmp_path / "videos.txt").write_text("# comment\n\ncls/a.mp4 4\n")
    index = load_index("videos", tmp_path, list_file="videos.txt", frames_root=tmp_path / "fr", num_classes=5)
    assert [(r.video_id, r.label, r.frames_dir) for r in index.records] == [("cls/a", 4, tmp_path / "fr" / "cls/a")]
    assert len(index.class_names) == 5
    with pytest.raises(DataError, match=r"videos.txt:3: label 4 out of range \(expected 0 <= label < 4\)"):
        load_index("videos", tmp_path, list_file="videos.txt", num_classes=4)
    (tmp_path / "frames.txt").write_text("clip_a 12 0\nclip_b 12\nclip_c 1 0\n")
    issues = IssueLog("skip")
    index = load_index("rawframes", tmp_path, list_file="frames.txt", issues=issues)
    assert [(r.video_id, r.num_frames, r.frames_dir) for r in index.records] == [("clip_a", 12, tmp_path / "clip_a")]
    messages = issues.take()
    assert "frames.txt:2: expected 3 field" in messages[0]
    assert "frames.txt:3: num_frames must be >= 2" in messages[1]


# --- lines that contradict the dataset: errors whatever on_error says ---------------------------------------------
@pytest.fixture
def victim(tmp_path):
    """A folder beside the dataset with a video and a rawframes-like folder in it."""
    folder = tmp_path / "victim"
    (folder / "data").mkdir(parents=True)
    (folder / "data.avi").write_bytes(b"")
    return folder


def _escaping_lines(dataset: Path, victim: Path, suffix: str) -> dict[str, str]:
    """A path per way of leading out of ``dataset``: '..', an absolute path, a symlink inside it to the victim."""
    (dataset / "link").symlink_to(victim, target_is_directory=True)
    return {"dotdot": f"../victim/data{suffix}", "absolute": f"{victim}/data{suffix}", "symlink": f"link/data{suffix}"}


@pytest.mark.parametrize("on_error", ["raise", "skip"])
@pytest.mark.parametrize("way", ["dotdot", "absolute", "symlink"])
def test_video_list_paths_must_stay_under_the_root(tmp_path, victim, way, on_error):
    root = tmp_path / "videos"
    _touch(root / "cls" / "a.avi")
    line = _escaping_lines(root, victim, ".avi")[way]
    (root / "list.txt").write_text(f"cls/a.avi 0\n{line} 0\n")
    with pytest.raises(InvalidListLine, match=rf"list.txt:2: video '{line}' leads out of {root}"):
        load_index("videos", root, list_file="list.txt", frames_root=tmp_path / "frames", issues=IssueLog(on_error))


@pytest.mark.parametrize("way", ["dotdot", "absolute", "symlink"])
def test_rawframes_list_folders_must_stay_under_the_root(tmp_path, victim, way):
    root = tmp_path / "frames"
    root.mkdir()
    line = _escaping_lines(root, victim, "")[way]
    (root / "list.txt").write_text(f"clip_a 12 0\n{line} 12 0\n")
    with pytest.raises(InvalidListLine, match=rf"list.txt:2: rawframes folder '{line}' leads out of {root}"):
        load_index("rawframes", root, list_file="list.txt", issues=IssueLog("skip"))


def test_a_video_whose_rawframes_folder_is_a_symlink_out_of_frames_root_is_refused(tmp_path, victim):
    root, frames_root = tmp_path / "videos", tmp_path / "frames"
    _touch(root / "cls" / "a.avi")
    frames_root.mkdir()
    (frames_root / "cls").symlink_to(victim, target_is_directory=True)
    (root / "list.txt").write_text("cls/a.avi 0\n")
    with pytest.raises(InvalidListLine, match=rf"list.txt:1: rawframes folder 'cls/a' leads out of {frames_root}"):
        load_index("videos", root, list_file="list.txt", frames_root=frames_root)


def test_official_split_files_are_confined_too(tmp_path, victim):
    ucf = make_ucf101(tmp_path / "ucf", ["YoYo/v_YoYo_g01_c01.avi 3"], [])
    (ucf / "ucfTrainTestlist" / "trainlist01.txt").write_text("YoYo/v_YoYo_g01_c01.avi 3\n"
                                                              "YoYo/../../../victim/data.avi 3\n")
    with pytest.raises(InvalidListLine, match=r"trainlist01.txt:2: video 'YoYo/../../../victim/data.avi' leads out"):
        load_index("ucf101", ucf, split=1, subset="train", issues=IssueLog("skip"))
    hmdb = make_hmdb51(tmp_path / "hmdb", {"wave": ["w1.avi 1"]})
    (hmdb / "testTrainMulti_7030_splits" / "wave_test_split1.txt").write_text("w1.avi 1\n../../victim/data.avi 1\n")
    with pytest.raises(InvalidListLine, match=r"wave_test_split1.txt:2: video 'wave/../../victim/data.avi' leads out"):
        load_index("hmdb51", hmdb, split=1, subset="train", issues=IssueLog("skip"))


def test_a_path_that_stays_under_the_root_is_one_video(tmp_path):
    _touch(tmp_path / "cls" / "a.avi")
    (tmp_path / "list.txt").write_text("cls/../cls/./a.avi 0\n")
    (record,) = load_index("videos", tmp_path, list_file="list.txt", frames_root=tmp_path / "fr").records
    assert record.video_id == "cls/a" and record.frames_dir == tmp_path / "fr" / "cls" / "a"


def _rawframes_list(root: Path, lines: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "list.txt").write_text("".join(f"{line}\n" for line in lines))
    return root


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_a_label_beyond_the_classes_is_an_error_naming_the_line(tmp_path, on_error):
    root = _rawframes_list(tmp_path, ["a 12 0", "b 12 1", "c 12 2", "d 12 57", "e 12 1"])
    with pytest.raises(InvalidListLine, match=r"list.txt: its labels run to 57, but classes 3..56 have no line.*"
                                              r"labels above 3 at .*list.txt:4 \(label 57\)"):
        load_index("rawframes", root, list_file="list.txt", issues=IssueLog(on_error))
    with pytest.raises(InvalidListLine, match=r"list.txt:4: label 57 out of range \(expected 0 <= label < 3\)"):
        load_index("rawframes", root, list_file="list.txt", num_classes=3, issues=IssueLog(on_error))
    with pytest.raises(InvalidListLine, match=r"list.txt:4: label -1 out of range"):
        _rawframes_list(tmp_path, ["a 12 0", "b 12 1", "c 12 2", "d 12 -1"])
        load_index("rawframes", root, list_file="list.txt", issues=IssueLog(on_error))


def test_declared_classes_may_lack_training_lines(tmp_path):
    root = _rawframes_list(tmp_path, ["a 12 0", "b 12 2"])
    assert load_index("rawframes", root, list_file="list.txt", num_classes=4).class_names == ["0", "1", "2", "3"]


def test_duplicate_lines_are_dropped_with_a_warning_naming_them(tmp_path, caplog):
    root = _rawframes_list(tmp_path, ["a 12 0", "b 12 1", "a 12 0", "./b 12 1", "c 12 0"])
    with caplog.at_level(logging.WARNING, logger="jna_fast.data"):
        index = load_index("rawframes", root, list_file="list.txt")
    assert [record.video_id for record in index.records] == ["a", "b", "c"]
    (warning,) = [record.message for record in caplog.records if "duplicate" in record.message]
    assert "dropped 2 duplicate list line(s)" in warning
    assert f"{root / 'list.txt'}:3 (as {root / 'list.txt'}:1)" in warning
    assert f"{root / 'list.txt'}:4 (as {root / 'list.txt'}:2)" in warning


def test_a_video_listed_with_two_labels_is_an_error(tmp_path):
    root = _rawframes_list(tmp_path, ["a 12 0", "b 12 1", "a 12 1"])
    with pytest.raises(DataError, match=r"list.txt:3: video a listed again with label 1 \(.*list.txt:1: label 0\)"):
        load_index("rawframes", root, list_file="list.txt")
    issues = IssueLog("skip")
    index = load_index("rawframes", root, list_file="list.txt", issues=issues)
    assert [record.video_id for record in index.records] == ["a", "b"]
    assert "list.txt:3: video a listed again" in issues.take()[0]


def test_an_empty_list_says_it_is_empty(tmp_path):
    root = _rawframes_list(tmp_path, ["# nothing yet", ""])
    with pytest.raises(DataError, match=r"list.txt: lists no video \(the list is empty\)"):
        load_index("rawframes", root, list_file="list.txt")
    _rawframes_list(tmp_path, ["a 12", "b x 0"])
    with pytest.raises(DataError, match=r"list.txt: no usable video: every line was skipped"):
        load_index("rawframes", root, list_file="list.txt", issues=IssueLog("skip"))


def _training_config(root: Path, *options: str):
    from jna_fast.config import parse_args

    return parse_args(["--dataset", "rawframes", "--root", str(root), "--train-list", "list.txt", "--val-list",
                       "list.txt", "--data-backend", "pyav", "--on-error", "raise", "--out", str(root / "run"),
                       *options])


@pytest.mark.parametrize("options, message", [
    ((), r"its labels run to 57, but classes 2..56 have no line"),
    (("--num-classes", "2"), r"list.txt:3: label 57 out of range \(expected 0 <= label < 2\)"),
])
def test_training_refuses_a_label_beyond_the_classes(tmp_path, options, message):
    from jna_fast.train import train

    root = _rawframes_list(tmp_path, ["a 12 0", "b 12 1", "c 12 57"])
    with pytest.raises(InvalidListLine, match=message):
        train(_training_config(root, *options))


def test_training_on_an_empty_list_says_it_is_empty(tmp_path):
    from jna_fast.train import train

    root = _rawframes_list(tmp_path, [])
    with pytest.raises(DataError, match="the list is empty"):
        train(_training_config(root))


def test_num_classes_is_an_option_of_list_datasets_only(tmp_path):
    from jna_fast.config import parse_args

    assert _training_config(tmp_path, "--num-classes", "5").data.num_classes == 5
    with pytest.raises(SystemExit):
        parse_args(["--dataset", "ucf101", "--root", str(tmp_path), "--num-classes", "5"])
    with pytest.raises(SystemExit):
        _training_config(tmp_path, "--num-classes", "0")


# --- what editors put in a list: a byte-order mark, invisible characters, another encoding ------------------------

BOM = b"\xef\xbb\xbf"


def _prepend_bom(*files: Path) -> None:
    for path in files:
        path.write_bytes(BOM + path.read_bytes())


def test_a_byte_order_mark_before_the_first_line_is_dropped_by_every_list_reader(tmp_path):
    ucf = make_ucf101(tmp_path / "ucf", ["YoYo/v_YoYo_g01_c01.avi 3"], ["Basketball/v_Basketball_g01_c01.avi"])
    _prepend_bom(*(ucf / "ucfTrainTestlist").iterdir())
    assert [(r.video_id, r.label) for r in load_index("ucf101", ucf).records] == [("YoYo/v_YoYo_g01_c01", 2)]
    assert load_index("ucf101", ucf, subset="test").records[0].label == 1
    hmdb = make_hmdb51(tmp_path / "hmdb", {"wave": ["w1.avi 1", "w2.avi 2"]})
    _prepend_bom(*(hmdb / "testTrainMulti_7030_splits").iterdir())
    assert [r.video_id for r in load_index("hmdb51", hmdb).records] == ["wave/w1"]
    _touch(tmp_path / "videos" / "cls" / "a.mp4")
    (tmp_path / "videos" / "list.txt").write_bytes(BOM + b"cls/a.mp4 0\n")
    assert [r.video_id for r in load_index("videos", tmp_path / "videos", list_file="list.txt").records] == ["cls/a"]
    frames = _rawframes_list(tmp_path / "frames", ["clip 12 0"])
    _prepend_bom(frames / "list.txt")
    assert [r.video_id for r in load_index("rawframes", frames, list_file="list.txt").records] == ["clip"]


def test_a_path_not_found_shows_its_invisible_characters(tmp_path):
    _touch(tmp_path / "cls" / "a.mp4")
    (tmp_path / "list.txt").write_text("cls/a\u200b.mp4 0\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"list.txt:1: video '.*/cls/a\\u200b.mp4' does not exist"):
        load_index("videos", tmp_path, list_file="list.txt")


def test_a_list_that_is_not_utf8_names_its_line(tmp_path):
    (tmp_path / "list.txt").write_text("cls/a.mp4 0\n", encoding="utf-16")
    with pytest.raises(DataError, match=r"list.txt:1: not UTF-8 text"):
        load_index("videos", tmp_path, list_file="list.txt")
