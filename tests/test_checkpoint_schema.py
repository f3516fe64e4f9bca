"""Checkpoints whose contents are not what jna_fast writes: each entry is checked against the declared schema when
the file is read, and a bad one is refused with one line naming the file and the entry (predict, export, evaluate,
a resuming train, Predictor.from_checkpoint), never a traceback from deep inside the code that would use it; an
optimiser state or random states that pass the schema but do not fit are refused naming the file too."""

import random

import pytest
import torch

from jna_fast.checkpoint import CheckpointError, entry_in_use, load_optimizer_state, save_checkpoint
from jna_fast.export import main as export
from jna_fast.evaluate import main as evaluate
from jna_fast.inference import Predictor
from jna_fast.predict import main as predict
from jna_fast.runtime import restore_rng_state, rng_state
from jna_fast.train import main as train


REMOVED = object()


def nested_set(state, path, value):
    """``state`` with the entry at ``path`` (keys, outermost first) set to ``value``, or removed (REMOVED)."""
    *outer, last = path
    for key in outer:
        state = state[key]
    if value is REMOVED:
        del state[last]
    else:
        state[last] = value


# entry changed: (its keys, its new value, what the error line says)
BAD_ENTRIES = {
    "weight-as-list": (("model", "fc_rgb.bias"), [0.0, 0.0, 0.0], "model['fc_rgb.bias']: expected a tensor, got list"),
    "model-none": (("model",), None, "model: expected a dict of weight names to tensors, got None"),
    "weight-name-int": (("model", 3), torch.zeros(1), "model: key 3: expected a string, got int"),
    "class-names-int": (("class_names",), 3, "class_names: expected a non-empty list of strings, got int"),
    "class-names-empty": (("class_names",), [], "class_names: expected a non-empty list of strings, got an empty list"),
    "class-name-int": (("class_names",), ["a", 2, "c"], "class_names[1]: expected a string, got int"),
    "class-names-missing": (("class_names",), REMOVED, "class_names: missing"),
    "data-empty": (("data",), {}, "data.size: missing"),
    "data-size-zero": (("data", "size"), 0, "data.size: must be an integer >= 32, got 0"),
    "data-size-text": (("data", "size"), "64", "data.size: expected an integer, got str"),
    "data-flip-text": (("data", "flip"), "yes", "data.flip: expected true or false, got str"),
    "data-flow-algorithm": (("data", "flow_algorithm"), "magic", "data.flow_algorithm: expected one of"),
    "data-flow-bound": (("data", "flow_bound"), -1.0, "data.flow_bound: must be a finite number > 0, got -1.0"),
    "data-precision": (("data", "precision"), "fp8", "data.precision: expected one of"),
    "config-none": (("config",), None, "config: expected a dict of training options, got None"),
    "config-size-zero": (("config", "data", "size"), 0, "config: option data.size must be an integer >= 32, got 0"),
    "config-unknown-option": (("config", "colour"), "red", "config: unknown option 'colour'"),
    "config-bad-combination": (("config", "model", "sharing"), {"name": "cross_stitch"},
                               "config: --model.streams rgb: the sharing part cross_stitch needs both streams"),
    "config-future-version": (("config", "schema_version"), 3, "config: schema_version must be an integer 1..2"),
    "version-text": (("version",), "2", "version: expected an integer, got str"),
    "optimizer-list": (("optimizer",), [], "optimizer: expected an optimizer state dict, got an empty list"),
    "optimizer-groups": (("optimizer",), {"state": {}, "param_groups": [{"params": ["w"]}]},
                         "optimizer.param_groups[0].params[0]: expected an integer, got str"),
    "epoch-negative": (("epoch",), -1, "epoch: must be an integer >= 0, got -1"),
    "best-top1-nan": (("best_top1",), float("nan"), "best_top1: must be a finite number >= -1 and <= 1, got nan"),
    "rng-torch-float": (("rng",), {**rng_state(), "torch": torch.zeros(3)},
                        "rng.torch: expected a 1-D uint8 tensor, got a float32 tensor of shape (3,)"),
    "rng-numpy-empty": (("rng",), {**rng_state(), "numpy": {}}, "rng.numpy.bit_generator: missing"),
}


# The entries a user found to crash the commands with a traceback (the commands share the reading, so that these
# stand for every entry).
COMMAND_CASES = ("weight-as-list", "model-none", "class-names-int", "data-empty", "data-size-zero")


def bad_checkpoint(case, source, folder):
    """A copy of ``source`` with the bad entry of ``case``, and what its error line must say."""
    path, value, message = BAD_ENTRIES[case]
    state = torch.load(source, weights_only=True)
    nested_set(state, path, value)
    crafted = folder / "run" / "best.pt"
    crafted.parent.mkdir()
    torch.save(state, crafted)
    return crafted, message


def one_error_line(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("case", sorted(BAD_ENTRIES))
def test_from_checkpoint_names_the_file_and_the_entry(case, tiny_checkpoint, tmp_path):
    crafted, message = bad_checkpoint(case, tiny_checkpoint, tmp_path)
    with pytest.raises(CheckpointError) as error:
        Predictor.from_checkpoint(crafted)
    assert str(error.value).startswith(f"{crafted}: ") and message in str(error.value)


@pytest.mark.parametrize("case", COMMAND_CASES)
@pytest.mark.parametrize("command", ["predict", "export", "evaluate"])
def test_commands_refuse_it_in_one_line(case, command, tiny_checkpoint, tmp_path, capsys):
    crafted, message = bad_checkpoint(case, tiny_checkpoint, tmp_path)
    out = tmp_path / "out"
    arguments = {"predict": [str(crafted), str(tmp_path / "video.avi")],
                 "export": [str(crafted), "--out", str(out / "model.onnx")],
                 "evaluate": [str(crafted), "--out", str(out), "--no-progress"]}[command]
    assert {"predict": predict, "export": export, "evaluate": evaluate}[command](arguments) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {crafted}: ") and message in line
    assert not out.exists()  # refused before anything was written


def test_a_resumed_run_refuses_a_bad_training_state(tiny_checkpoint, tmp_path, capsys):
    state = torch.load(tiny_checkpoint, weights_only=True)
    state.update(optimizer="adamw", epoch=0, batch=0, step=0, rng=rng_state())
    out = tmp_path / "run"
    save_checkpoint(out / "last.pt", state)
    # --resume auto reads out/last.pt before the data is looked at: the missing data folder is never reached.
    assert train(["--out", str(out), "--dataset", "ucf101", "--root", str(tmp_path / "missing")]) == 2
    assert one_error_line(capsys) == (f"error: {out / 'last.pt'}: optimizer: expected an optimizer state dict, "
                                      f"got str")


def adamw():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()  # its state now holds the moments of each parameter
    return optimizer


def test_an_optimizer_state_that_does_not_fit_is_refused_naming_the_file():
    state = adamw().state_dict()
    state["state"][0]["exp_avg"] = torch.zeros(5, 5)
    with pytest.raises(CheckpointError, match=r"^run/last.pt: optimizer.state: exp_avg of shape \(5, 5\) for a "
                                              r"parameter of shape \(2, 3\)$"):
        load_optimizer_state(adamw(), state, "run/last.pt")
    state = adamw().state_dict()
    state["param_groups"].append(dict(state["param_groups"][0]))
    with pytest.raises(CheckpointError, match="^run/last.pt: optimizer: ValueError: .*different number of "
                                              "parameter groups"):
        load_optimizer_state(adamw(), state, "run/last.pt")


def test_random_states_that_do_not_fit_are_refused_naming_the_file():
    state = rng_state()
    version, words, gauss = state["python"]
    state["python"] = (version, words[:10], gauss)  # the schema's types, but not a generator's 625 words
    before = random.getstate()
    with pytest.raises(CheckpointError, match="^run/last.pt: rng: ValueError: "):
        with entry_in_use("run/last.pt", "rng"):
            restore_rng_state(state)
    assert random.getstate() == before


def test_a_good_checkpoint_still_loads(tiny_checkpoint):
    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    assert predictor.class_names == ["a", "b", "c"] and predictor.data_settings["size"] == 32
