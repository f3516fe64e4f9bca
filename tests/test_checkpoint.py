"""Checkpoints from strangers: a pickle that would run code is refused by every entry point before any of it runs;
a normal checkpoint (RNG states included) loads with weights_only=True; weights that are not finite are never
written over a good file, nor loaded; the temporary files of a killed writer are removed by the next run."""

import os
import pickle
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from jna_fast.inference import Predictor
from jna_fast.checkpoint import FORMAT, VERSION, CheckpointError, load_checkpoint, save_checkpoint
from jna_fast.files import remove_stale_temporaries
from jna_fast.runtime import restore_rng_state, rng_state


class RunsCode:
    """A pickle payload: unpickling it calls os.system, which creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def crafted_checkpoint(path, marker, *, legacy_pickle=False):
    """A file that looks like a jna_fast checkpoint and runs a command when unpickled."""
    state = {"format": FORMAT, "version": VERSION, "model": {}, "config": {}, "class_names": ["a"],
             "optimizer": {}, "epoch": 0, "batch": 0, "step": 0, "rng": RunsCode(marker)}
    if legacy_pickle:
        path.write_bytes(pickle.dumps(state))
    else:
        torch.save(state, path)
    return path


def from_checkpoint(path, out, capsys):
    with pytest.raises(CheckpointError) as error:
        Predictor.from_checkpoint(path)
    return str(error.value)


def evaluate(path, out, capsys):
    from jna_fast.evaluate import main

    assert main([str(path), "--out", str(out / "eval"), "--no-progress"]) == 2
    return capsys.readouterr().err


def predict(path, out, capsys):
    from jna_fast.predict import main

    assert main([str(path), str(out / "video.avi")]) == 2
    return capsys.readouterr().err


def train_resume(path, out, capsys):
    from jna_fast.train import main

    # last.pt in --out is resumed by default (--resume auto); the data folder must not even be made.
    (out / "last.pt").write_bytes(path.read_bytes())
    assert main(["--out", str(out), "--root", str(out / "data"), "--synthetic-classes", "2",
                 "--synthetic-videos-per-class", "3", "--size", "32", "--no-progress", "--no-tensorboard"]) == 2
    assert not (out / "data").exists()
    return capsys.readouterr().err


@pytest.mark.parametrize("legacy_pickle", [False, True], ids=["torch.save", "plain-pickle"])
@pytest.mark.parametrize("entry_point", [from_checkpoint, evaluate, predict, train_resume])
def test_a_checkpoint_that_runs_code_is_refused_before_it_runs(tmp_path, capsys, entry_point, legacy_pickle):
    marker = tmp_path / "code-ran"
    path = crafted_checkpoint(tmp_path / "shared.pt", marker, legacy_pickle=legacy_pickle)
    message = entry_point(path, tmp_path, capsys)
    assert not marker.exists(), "the checkpoint's payload ran"
    refused = path if entry_point is not train_resume else tmp_path / "last.pt"
    assert f"{refused}: refused" in message, message
    if not legacy_pickle:
        assert "system" in message, message  # it names what it refused
    if entry_point is not from_checkpoint:
        assert message.startswith(f"error: {refused}: refused") and message.count("\n") == 1, message


def test_a_checkpoint_with_its_rng_state_loads_with_weights_only(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.randn()  # the NumPy state then holds a cached Gaussian too
    save_checkpoint(tmp_path / "last.pt", {"model": {"w": torch.ones(2)}, "config": {}, "class_names": ["a"],
                                           "rng": rng_state()})
    expected = (random.random(), np.random.randn(4).tolist(), torch.rand(3).tolist())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    state = torch.load(tmp_path / "last.pt", weights_only=True)  # what jna_fast itself does
    assert state["version"] == VERSION
    restore_rng_state(load_checkpoint(tmp_path / "last.pt")["rng"])
    assert (random.random(), np.random.randn(4).tolist(), torch.rand(3).tolist()) == expected


def test_non_finite_weights_are_never_written_over_a_good_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(3)}, "config": {}, "class_names": ["a"]})
    good = path.read_bytes()
    for bad in (float("nan"), float("inf")):
        with pytest.raises(CheckpointError, match=f"{path}: not written: the model's weights are not finite \\(w\\)"):
            save_checkpoint(path, {"model": {"w": torch.tensor([1.0, bad, 2.0])}, "config": {}, "class_names": ["a"]})
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_a_checkpoint_with_non_finite_weights_is_not_loaded(tiny_checkpoint, tmp_path):
    state = torch.load(tiny_checkpoint, weights_only=True)
    state["model"]["fusion.fc_rgb.weight"] = torch.full_like(state["model"]["fusion.fc_rgb.weight"], float("nan"))
    broken = tmp_path / "diverged.pt"
    torch.save(state, broken)  # as a run without the guard wrote it
    with pytest.raises(CheckpointError, match=f"{broken}: its weights are not finite \\(fusion.fc_rgb.weight\\)"):
        Predictor.from_checkpoint(broken)


def test_stale_temporary_files_of_dead_processes_are_removed(tmp_path):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # its process id now belongs to no process
    dead, alive = finished.pid, os.getpid()
    stale = [tmp_path / f".last.pt.tmp-{dead}", tmp_path / f".best.pt.tmp-{dead}"]
    kept = [tmp_path / f".last.pt.tmp-{alive}",  # a live writer's
            tmp_path / f".notes.txt.tmp-{dead}", tmp_path / f"last.pt.tmp-{dead}",  # not our naming or target
            tmp_path / ".last.pt.tmp-x1", tmp_path / "last.pt"]
    for path in stale + kept:
        path.write_bytes(b"x")
    assert sorted(remove_stale_temporaries(tmp_path, ["last.pt", "best.pt"])) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(kept)


def test_the_next_training_run_removes_a_killed_runs_temporary_checkpoint(tmp_path, capsys):
    from jna_fast.train import main

    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    leftover = tmp_path / f".last.pt.tmp-{finished.pid}"
    foreign = tmp_path / "notes.txt"
    leftover.write_bytes(b"torn")
    foreign.write_text("mine")
    # The run fails on its missing data, after cleaning its --out.
    assert main(["--out", str(tmp_path), "--dataset", "ucf101", "--root", str(tmp_path / "missing")]) == 2
    assert not leftover.exists() and foreign.read_text() == "mine"
    assert "dataset root not found" in capsys.readouterr().err


def test_a_second_trainer_on_a_folder_in_use_stops_before_writing(tmp_path, capsys):
    from jna_fast.train import main

    # Another process holds the folder (as an orphaned worker of a killed ablation did, still training into it).
    holder = subprocess.Popen([sys.executable, "-c", "import time\n"
                               "from jna_fast.files import exclusive_folder\n"
                               f"with exclusive_folder({str(tmp_path)!r}):\n"
                               "    print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        leftover = tmp_path / f".last.pt.tmp-{holder.pid}"  # the live writer's temporary: not ours to remove
        leftover.write_bytes(b"being written")
        assert main(["--out", str(tmp_path), "--dataset", "ucf101", "--root", str(tmp_path / "missing")]) == 2
        assert f"{tmp_path} is in use: another process is writing a training run" in capsys.readouterr().err
        assert sorted(path.name for path in tmp_path.iterdir()) == [".last.pt.tmp-%d" % holder.pid, ".lock"]
    finally:
        holder.kill()
        holder.wait()
    # The lock dies with its process, however it ends: the folder is free again.
    assert main(["--out", str(tmp_path), "--dataset", "ucf101", "--root", str(tmp_path / "missing")]) == 2
    assert "dataset root not found" in capsys.readouterr().err


def test_a_lock_file_planted_as_a_symlink_is_refused_and_its_target_untouched(tmp_path, capsys):
    from jna_fast.train import main

    # A run folder from elsewhere whose .lock points at a file of the user's: taking the lock must not open (and
    # so truncate or create) what the link points to.
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    out = tmp_path / "downloaded_run"
    out.mkdir()
    (out / ".lock").symlink_to(precious)
    assert main(["--out", str(out), "--dataset", "ucf101", "--root", str(tmp_path / "missing")]) == 2
    assert str(out / ".lock") in capsys.readouterr().err
    assert precious.read_text() == "keep me" and sorted(p.name for p in out.iterdir()) == [".lock"]
