"""List/split file parsing: UCF101 and HMDB51 label mapping, generic lists, and every bad-line case."""

import logging
from pathlib import Path

import pytest

from jna_fast.data import DataError, load_index
from jna_fast.data.errors import IssueLog

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
    (tmp_path / "frames.txt").write_text("clip_a 12 0\nclip_b 12\nclip_c 1 0\nclip_d 12 -1\n")
    issues = IssueLog("skip")
    index = load_index("rawframes", tmp_path, list_file="frames.txt", issues=issues)
    assert [(r.video_id, r.num_frames, r.frames_dir) for r in index.records] == [("clip_a", 12, tmp_path / "clip_a")]
    messages = issues.take()
    assert "frames.txt:2: expected 3 field" in messages[0]
    assert "frames.txt:3: num_frames must be >= 2" in messages[1]
    assert "frames.txt:4: label -1 out of range" in messages[2]
