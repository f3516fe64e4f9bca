"""The error policy of every command: a missing input, an --out that cannot be written, an option out of range give
one ``error:`` line naming the file or option and exit status 2, without a traceback unless --debug or
JNA_FAST_DEBUG=1 asks for one."""

import pytest
import torch

from jna_fast.ablate import main as ablate
from jna_fast.data.synthetic import main as synthetic
from jna_fast.evaluate import main as evaluate
from jna_fast.export import main as export
from jna_fast.flow.__main__ import main as flow
from jna_fast.predict import main as predict
from jna_fast.train import main as train


@pytest.fixture
def not_a_folder(tmp_path):
    """A path under a regular file: no one, root included, can make a folder there (chmod does not stop root)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return blocker / "out"


NOT_A_FOLDER = "a-file is not a folder, so"  # what the check of an output place says of the fixture's path


def one_error_line(capsys, *expected):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(text in lines[0] for text in expected), lines[0]
    return lines[0]


def test_train(tmp_path, not_a_folder, capsys):
    missing = tmp_path / "no-such-dataset"
    assert train(["--dataset", "ucf101", "--root", str(missing), "--out", str(tmp_path / "run")]) == 2
    one_error_line(capsys, str(missing), "not found")
    assert train(["--dataset", "ucf101", "--root", str(missing), "--out", str(not_a_folder)]) == 2
    one_error_line(capsys, f"--out {not_a_folder}: ", NOT_A_FOLDER)


def test_evaluate(tiny_checkpoint, tmp_path, not_a_folder, capsys):
    missing = tmp_path / "no-such-dataset"
    assert evaluate([str(tiny_checkpoint), "--out", str(tmp_path / "eval"), "--root", str(missing)]) == 2
    one_error_line(capsys, str(missing), "not found")
    assert evaluate([str(tiny_checkpoint), "--out", str(not_a_folder)]) == 2
    one_error_line(capsys, f"--out {not_a_folder}: ", NOT_A_FOLDER)


def test_evaluate_refuses_an_option_its_dataset_does_not_use(tiny_checkpoint, tmp_path, capsys):
    # the checkpoint was trained on the synthetic set, which has no list files; nor has UCF101
    out = tmp_path / "eval"
    assert evaluate([str(tiny_checkpoint), "--out", str(out), "--val-list", "mine.txt"]) == 2
    one_error_line(capsys, "option data.val_list applies to --dataset videos/rawframes; synthetic")
    assert evaluate([str(tiny_checkpoint), "--out", str(out), "--dataset", "ucf101", "--val-list", "mine.txt"]) == 2
    one_error_line(capsys, "option data.val_list applies to --dataset videos/rawframes; ucf101")
    assert not out.exists()


def test_predict(tiny_checkpoint, tmp_path, capsys):
    missing = tmp_path / "missing.avi"
    assert predict([str(tiny_checkpoint), str(missing)]) == 2
    one_error_line(capsys, str(missing), "no such video file")


def test_ablate(tmp_path, not_a_folder, capsys):
    missing = tmp_path / "no-such-dataset"
    assert ablate(["--out", str(tmp_path / "ablation"), "--variants", "tsn", "--seeds", "1", "--dataset", "ucf101",
                   "--root", str(missing)]) == 2
    one_error_line(capsys, str(missing), "not found")
    assert ablate(["--out", str(not_a_folder), "--variants", "tsn", "--seeds", "1"]) == 2
    one_error_line(capsys, f"--out {not_a_folder}: ", NOT_A_FOLDER)


def test_flow_extract(tmp_path, not_a_folder, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    missing = tmp_path / "missing-list.txt"
    assert flow(["extract", "--videos", str(videos), "--out", str(tmp_path / "frames"), "--list", str(missing)]) == 2
    one_error_line(capsys, str(missing))
    assert flow(["extract", "--videos", str(videos), "--out", str(not_a_folder), "--algorithm", "dis"]) == 2
    one_error_line(capsys, f"--out {not_a_folder}: ", NOT_A_FOLDER)


def command_lines(tmp_path, out: str) -> dict:
    """Each command writing to ``out``, with inputs that would fail later (no such checkpoint, dataset, videos)."""
    missing = str(tmp_path / "missing")
    return {
        "train": (train, ["--dataset", "ucf101", "--root", missing, "--out", out]),
        "evaluate": (evaluate, [missing + ".pt", "--out", out]),
        "predict": (predict, [missing + ".pt", missing + ".avi", "--window", "1", "--out", out]),
        "ablate": (ablate, ["--variants", "tsn", "--seeds", "1", "--dataset", "ucf101", "--root", missing,
                            "--out", out]),
        "flow extract": (flow, ["extract", "--videos", missing, "--algorithm", "dis", "--out", out]),
    }


@pytest.mark.parametrize("name", ["train", "evaluate", "predict", "ablate", "flow extract"])
def test_an_output_folder_is_checked_before_the_work(tmp_path, not_a_folder, capsys, name):
    # the error names --out, not the missing input that the work would have met first
    a_file = not_a_folder.parent
    command, argv = command_lines(tmp_path, str(a_file))[name]
    assert command(argv) == 2
    one_error_line(capsys, f"--out {a_file}: exists and is not a folder")
    command, argv = command_lines(tmp_path, str(not_a_folder))[name]
    assert command(argv) == 2
    one_error_line(capsys, f"--out {not_a_folder}: {a_file} is not a folder, so {not_a_folder} cannot be made")


def test_an_export_file_is_checked_before_the_export(tmp_path, not_a_folder, capsys):
    missing = str(tmp_path / "missing.pt")
    assert export([missing, "--out", str(not_a_folder / "model.pt2")]) == 2
    one_error_line(capsys, f"--out {not_a_folder / 'model.pt2'}: {not_a_folder.parent} is not a folder, so "
                           f"{not_a_folder} cannot be made")
    assert export([missing, "--format", "pt2", "--out", str(tmp_path)]) == 2
    one_error_line(capsys, f"--out {tmp_path}: is a folder; give the file to write")


def test_synthetic_data(not_a_folder, capsys):
    assert synthetic(["--root", str(not_a_folder), "--num-classes", "2", "--videos-per-class", "3"]) == 2
    one_error_line(capsys, str(not_a_folder), "Not a directory")


def test_debug_shows_the_traceback(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "missing.pt"
    assert evaluate([str(missing), "--out", str(tmp_path / "eval"), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "CheckpointError" in err and err.splitlines()[-1].startswith(f"error: {missing}")
    monkeypatch.setenv("JNA_FAST_DEBUG", "1")
    assert predict([str(missing), "video.avi"]) == 2
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("command, option, value", [
    (evaluate, "--segments", "0"), (evaluate, "--segments", "-1"), (evaluate, "--batch-size", "0"),
    (evaluate, "--visualize", "-1"), (evaluate, "--split", "0"),
    (predict, "--top-k", "0"), (predict, "--top-k", "-2"), (predict, "--segments", "0"), (predict, "--device", "tpu"),
    pytest.param(evaluate, "--device", "cuda", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU")),
    pytest.param(predict, "--device", "cuda", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU")),
])
def test_evaluate_and_predict_options_out_of_range(tiny_checkpoint, tmp_path, capsys, command, option, value):
    argv = [str(tiny_checkpoint)] + (["--out", str(tmp_path / "eval")] if command is evaluate else ["video.avi"])
    status = None
    try:
        status = command(argv + [option, value])
    except SystemExit as exit_:  # argparse's usage error
        status = exit_.code
    assert status == 2
    err = capsys.readouterr().err
    assert option.lstrip("-").replace("-", "_") in err.replace("-", "_") and value in err, err
    assert not (tmp_path / "eval").exists()
