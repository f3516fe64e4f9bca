"""Links planted where the commands write: a symbolic link at the name of a file or folder that a command writes
under its output folder is either replaced whole (the files written atomically, what it leads to untouched) or
refused with one line naming it (a file appended to, a folder written into), and the file or folder it leads to is
never changed. The names come from each command's own list of what it writes (RUN_OUTPUTS, EVALUATION_OUTPUTS,
LONG_VIDEO_OUTPUTS, ABLATION_OUTPUTS, SUMMARY_NAME) or from what a clean run wrote, and every file a full run
writes must be on its command's list, so that a new output cannot escape these tests. Hard links and links at a
temporary file's name are refused by the writing functions themselves (jna_fast/files.py)."""

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pytest

from jna_fast.ablate import ABLATION_OUTPUTS, RUNS_DIR
from jna_fast.ablate import main as ablate
from jna_fast.data import make_synthetic
from jna_fast.data.synthetic import FAMILIES, encode_video
from jna_fast.demo import dataset_examples
from jna_fast.evaluate import main as evaluate
from jna_fast.evaluation import EVALUATION_OUTPUTS, STRIPS_DIR
from jna_fast.export import main as export
from jna_fast.files import (LinkRefusedError, append_line, output_folder, temporary_path, write_atomically,
                            write_text_atomically)
from jna_fast.flow import SUMMARY_NAME
from jna_fast.flow.__main__ import main as flow
from jna_fast.inference import Predictor
from jna_fast.predict import LONG_VIDEO_OUTPUTS
from jna_fast.predict import main as predict
from jna_fast.train import EVAL_DIR, RUN_OUTPUTS, TENSORBOARD_DIR
from jna_fast.train import main as train

NOTES = "the user's own notes, outside every output folder\n"
# One RGB branch, 32 px, one epoch of two steps, the final evaluation on 2 snippets of 1 crop.
TINY = ["--streams", "rgb", "--share-after", "", "--consensus", "average", "--size", "32", "--num-segments", "2",
        "--test-segments", "2", "--batch-size", "4", "--epochs", "1", "--data-backend", "pyav", "--flow", "online",
        "--no-progress", "--eval-segments", "2", "--eval-crops", "1"]


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic(root, num_classes=3, videos_per_class=4, frames=16, size=48, seed=1, families=FAMILIES)
    (root / "frames").mkdir()  # where the synthetic set's rawframes go: none, its flow is computed (--flow online)
    return root


@pytest.fixture
def outside(tmp_path):
    """A folder of the user's, outside every output folder, holding one file: where the planted links lead."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "notes.txt").write_text(NOTES)
    return folder


def plant(path: Path, outside: Path, kind: str) -> Path:
    """``path`` made a symbolic link to the file outside (``kind`` "file") or to the folder outside ("folder")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(outside / "notes.txt" if kind == "file" else outside, target_is_directory=kind == "folder")
    return path


def assert_untouched(outside: Path) -> None:
    assert [path.name for path in outside.iterdir()] == ["notes.txt"]
    assert (outside / "notes.txt").read_text() == NOTES


def run(main, argv: list[str]) -> tuple[int, str]:
    """A command's exit status and what it wrote on stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main(argv)
    assert "Traceback" not in err.getvalue(), err.getvalue()
    return status, err.getvalue()


def refused_or_replaced(names, quick_run, full_run, tmp_path: Path, outside: Path) -> Path:
    """Plant each of ``names`` (paths relative to an output folder) in turn in a fresh output folder, as a link to
    the file outside and then to the folder outside, and call ``quick_run(out)``: the command on input that is
    missing, so that it stops before it writes. It refuses the link (one error line naming it), or must leave it as
    it is. Then ``full_run(out)`` with a link to the file outside at every name not refused: it must succeed and
    replace each of them with a file of its own. What the links lead to is never changed. Returns the full run's
    output folder."""
    refused = set()
    for index, name in enumerate(names):
        for kind in ("file", "folder"):
            out = tmp_path / f"quick-{index}-{kind}" / "out"
            link = plant(out / name, outside, kind)
            status, err = quick_run(out)
            assert status == 2, err
            assert_untouched(outside)
            if f"error: {link}: " in err:
                refused.add((name, kind))
            else:
                assert link.is_symlink(), f"{name}: a run that failed before writing replaced it"
    out = tmp_path / "full" / "out"
    planted = [plant(out / name, outside, "file") for name in names if (name, "file") not in refused]
    status, err = full_run(out)
    assert status == 0, err[-3000:]
    assert_untouched(outside)
    assert [path for path in planted if path.is_symlink() or not path.is_file()] == []
    return out


def written(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


@pytest.mark.slow
def test_train(synthetic_root, tmp_path, outside):
    events = f"{TENSORBOARD_DIR}/events.out.tfevents.0.planted"  # TensorBoard names its files itself
    names = [*RUN_OUTPUTS, *(f"{EVAL_DIR}/{name}" for name in EVALUATION_OUTPUTS), events]

    def quick_run(out):
        return run(train, ["--out", str(out), "--resume", "never", "--dataset", "ucf101", "--root",
                           str(tmp_path / "missing")])

    def full_run(out):
        return run(train, ["--out", str(out), "--resume", "never", "--root", str(synthetic_root), *TINY])

    out = refused_or_replaced(names, quick_run, full_run, tmp_path, outside)
    assert written(out) <= set(RUN_OUTPUTS) and written(out / EVAL_DIR) <= set(EVALUATION_OUTPUTS)
    assert all(name.startswith("events.out.tfevents.") for name in written(out / TENSORBOARD_DIR))
    assert (out / "metrics.jsonl").read_text().count("\n") == 1


@pytest.mark.slow
def test_evaluate(tiny_checkpoint, synthetic_root, tmp_path, outside):
    checkpoint = str(tiny_checkpoint)  # an RGB model of 3 classes, evaluated on the 3 classes of the synthetic set
    data = ["--root", str(synthetic_root), "--flow", "online", "--segments", "2", "--crops", "1", "--no-progress"]
    clean = tmp_path / "clean"
    assert run(evaluate, [checkpoint, "--out", str(clean), "--visualize", "2", *data])[0] == 0
    strips = [f"{STRIPS_DIR}/{name}" for name in sorted(written(clean / STRIPS_DIR))]
    assert written(clean) == set(EVALUATION_OUTPUTS) and len(strips) == 2

    def quick_run(out):
        return run(evaluate, [checkpoint, "--out", str(out), "--visualize", "2", "--dataset",
                              "ucf101", "--root", str(tmp_path / "missing"), "--no-progress"])

    def full_run(out):
        return run(evaluate, [checkpoint, "--out", str(out), "--visualize", "2", *data])

    refused_or_replaced([*EVALUATION_OUTPUTS, *strips], quick_run, full_run, tmp_path, outside)


@pytest.mark.slow
def test_predict(tiny_checkpoint, tmp_path, outside):
    videos = [tmp_path / "videos" / "first.avi", tmp_path / "videos" / "second.avi"]
    arguments = [str(tiny_checkpoint), *map(str, videos), "--window", "0.4", "--segments", "2", "--crops", "1"]

    def quick_run(out):  # the videos are not there yet
        return run(predict, [*arguments, "--out", str(out)])

    def full_run(out):
        videos[0].parent.mkdir(exist_ok=True)
        for video in videos:
            encode_video(np.random.default_rng(0).integers(0, 255, (12, 32, 40, 3), dtype=np.uint8), video)
        return run(predict, [*arguments, "--out", str(out)])

    # Several videos: a folder each, named after it.
    names = ["first", *(f"first/{name}" for name in LONG_VIDEO_OUTPUTS)]
    out = refused_or_replaced(names, quick_run, full_run, tmp_path, outside)
    assert written(out) == {"first", "second"}
    assert written(out / "first") == set(LONG_VIDEO_OUTPUTS) == written(out / "second")


@pytest.mark.slow
def test_ablate(synthetic_root, tmp_path, outside):
    runs = [f"{RUNS_DIR}/rgb-s0"]  # each run's folder, named after its variant and seed
    common = ["--variants", "rgb", "--seeds", "1", "--jobs", "1", *TINY, "--no-tensorboard"]

    def quick_run(out):
        return run(ablate, ["--out", str(out), *common, "--dataset", "ucf101", "--root", str(tmp_path / "missing")])

    def full_run(out):
        return run(ablate, ["--out", str(out), *common, "--root", str(synthetic_root)])

    out = refused_or_replaced([*ABLATION_OUTPUTS, *runs], quick_run, full_run, tmp_path, outside)
    assert written(out) <= set(ABLATION_OUTPUTS) and written(out / RUNS_DIR) == {"rgb-s0"}


@pytest.mark.slow
def test_export(tiny_checkpoint, tmp_path, outside):
    def export_to(checkpoint):
        return lambda out: run(export, [str(checkpoint), "--out", str(out / "model.pt2")])

    out = refused_or_replaced(["model.pt2"], export_to(tmp_path / "missing.pt"), export_to(tiny_checkpoint),
                              tmp_path, outside)
    assert written(out) == {"model.pt2"}


def test_flow_extract(tmp_path, outside):
    videos = tmp_path / "videos"

    def extract(out):
        return run(flow, ["extract", "--videos", str(videos), "--out", str(out), "--algorithm", "dis",
                          "--workers", "1", "--no-progress"])

    def full_run(out):
        videos.mkdir(exist_ok=True)
        encode_video(np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8), videos / "clip.avi")
        return extract(out)

    # A video's own folder that is a link fails that video (tests/test_flow.py); here, what the run writes itself.
    out = refused_or_replaced([SUMMARY_NAME], extract, full_run, tmp_path, outside)
    assert written(out) == {SUMMARY_NAME, "clip"}


def test_demo_examples(synthetic_checkpoint, tmp_path, outside):
    """The demo writes only its synthetic examples, into its cache: a link at an example's name is replaced, one as
    their folder refused (names from a clean run: the folder is named after the examples' parameters)."""
    model = Predictor.from_checkpoint(synthetic_checkpoint)
    (name, clean), = dataset_examples(model, tmp_path / "clean", count=1)
    folder, example = clean.parent.name, clean.name
    assert written(tmp_path / "clean") == {folder} and written(clean.parent) == {example}
    with pytest.raises(LinkRefusedError, match=str(plant(tmp_path / "refused" / folder, outside, "folder"))):
        dataset_examples(model, tmp_path / "refused", count=1)
    planted = plant(tmp_path / "replaced" / folder / example, outside, "file")
    assert dataset_examples(model, tmp_path / "replaced", count=1) == [(name, planted)]
    assert planted.is_file() and not planted.is_symlink() and planted.read_bytes() == clean.read_bytes()
    assert_untouched(outside)


# --- the writing functions themselves -------------------------------------------------------------------------------
def test_an_append_never_goes_through_a_link(tmp_path, outside):
    log = tmp_path / "metrics.jsonl"
    append_line(log, "one")
    append_line(log, "two")
    assert log.read_text() == "one\ntwo\n"
    symbolic, hard = plant(tmp_path / "symbolic.jsonl", outside, "file"), tmp_path / "hard.jsonl"
    os.link(outside / "notes.txt", hard)  # a second name of the user's file: appending would change it too
    with pytest.raises(LinkRefusedError, match=f"^{symbolic}: a symbolic link, not written through"):
        append_line(symbolic, "three")
    with pytest.raises(LinkRefusedError, match=f"^{hard}: a file with 2 names"):
        append_line(hard, "three")
    assert_untouched(outside)


def test_an_atomic_write_replaces_a_link_and_refuses_one_at_its_temporary(tmp_path, outside):
    target = plant(tmp_path / "report.json", outside, "file")
    write_text_atomically(target, "{}")
    assert not target.is_symlink() and target.read_text() == "{}"
    os.link(outside / "notes.txt", tmp_path / "hard.json")
    write_text_atomically(tmp_path / "hard.json", "{}")  # replaced: the user's file keeps its content
    temporary = plant(temporary_path(tmp_path / "best.pt"), outside, "file")
    with pytest.raises(LinkRefusedError, match=f"^{temporary}: a symbolic link"):
        write_atomically(tmp_path / "best.pt", lambda handle: handle.write(b"weights"))
    assert temporary.is_symlink() and not (tmp_path / "best.pt").exists()  # the link is not ours to remove
    assert_untouched(outside)


def test_an_output_folder_that_is_a_link_is_refused(tmp_path, outside):
    assert output_folder(tmp_path / "out", "runs", "rgb-s0") == tmp_path / "out" / "runs" / "rgb-s0"
    assert (tmp_path / "out" / "runs" / "rgb-s0").is_dir()
    link = plant(tmp_path / "out" / "attention", outside, "folder")
    with pytest.raises(LinkRefusedError, match=f"^{link}: a symbolic link"):
        output_folder(tmp_path / "out", "attention")
    assert_untouched(outside)
