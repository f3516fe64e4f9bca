"""Checkpoints: written atomically and read with clear errors (jna_fast.inference.Predictor turns one back into a
model).

A checkpoint is a ``torch.save`` of a dict with ``format`` (:data:`FORMAT`), ``version``, ``model`` (the state
dict), ``config`` (the resolved TrainConfig as a dict), ``class_names``, ``data`` (what prediction needs to prepare
a video as the training data was: crop size, flip policy, flow algorithm and bound), and, in ``last.pt``, what
resuming needs
(``optimizer``, ``epoch``, ``batch``, ``step``, ``rng``, ``best_top1``). ``best.pt`` holds the model of the epoch
with the best validation top-1 and its ``metrics``.

Safe to load from anyone: everything in a checkpoint is a tensor or a plain value (numbers, strings, lists,
tuples, dicts; the RNG states too, see jna_fast/runtime.py), so it is read with ``torch.load(weights_only=True)``,
whose unpickler builds only those and refuses any other object before calling anything. A pickle that would run
code (``os.system`` in a ``__reduce__``, say) is refused with CheckpointError and nothing of it runs. A model whose
weights are not finite is never written and never loaded.
"""

from __future__ import annotations

import os
import warnings
import pickle
import zipfile
from pathlib import Path

import torch

from .errors import JnaFastError
from .files import write_atomically

FORMAT = "jna_fast/checkpoint"
# 2: the RNG states are tensors and plain values (version 1 held NumPy objects, which weights_only refuses).
VERSION = 2
LAST_NAME = "last.pt"
BEST_NAME = "best.pt"
REQUIRED_KEYS = ("model", "config", "class_names")


class CheckpointError(JnaFastError, ValueError):
    """A file that is not a usable jna_fast checkpoint (missing, truncated, foreign, unsafe, or made for another
    model), or a model that must not be written (weights that are not finite)."""


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write atomically (jna_fast/files.py: a crash never leaves a torn file). A ``model`` whose weights are not
    finite is refused with CheckpointError, so that a diverged run never replaces a good checkpoint."""
    broken = non_finite_weights(state["model"]) if "model" in state else None
    if broken:
        raise CheckpointError(f"{path}: not written: the model's weights are not finite ({broken}); the file "
                              f"already there is kept")
    write_atomically(path, lambda handle: torch.save({"format": FORMAT, "version": VERSION, **state}, handle))


def non_finite_weights(state_dict: dict) -> str | None:
    """The names of the floating-point tensors of ``state_dict`` that hold NaN or inf (the first three), or None
    when every one is finite."""
    floating = {name: tensor for name, tensor in state_dict.items() if tensor.is_floating_point()}
    if not floating:
        return None
    # A NaN or inf anywhere makes a tensor's sum NaN or inf; summed in float64 no finite weights overflow, and
    # one reduction per tensor with a single device sync is far cheaper than an elementwise isfinite.
    sums = torch.stack([tensor.detach().sum(dtype=torch.float64) for tensor in floating.values()])
    finite = torch.isfinite(sums)
    if bool(finite.all()):
        return None
    broken = [name for name, ok in zip(floating, finite.tolist()) if not ok]
    return ", ".join(broken[:3]) + (f" and {len(broken) - 3} more" if len(broken) > 3 else "")


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """The checkpoint's dict; CheckpointError names the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        # weights_only=True: only tensors and plain values are built; anything else is refused before it runs.
        with warnings.catch_warnings():
            # torch warns about a foreign file's pickle protocol before refusing it; the refusal says enough.
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # The weights-only unpickler met an object it does not build (or an opcode it does not run).
        raise CheckpointError(f"{path}: refused: it holds something other than tensors and plain values, which "
                              f"could run code when loaded ({_unpickler_reason(error)}); nothing of it was run. "
                              f"jna_fast never writes such a file (a last.pt of jna_fast before checkpoint version 2 "
                              f"held NumPy RNG state: start afresh with --resume never)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or not written by torch.save): "
                              f"{type(error).__name__}: {str(error)[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        kind = type(state).__name__ if not isinstance(state, dict) else f"dict with keys {sorted(state)[:6]}"
        raise CheckpointError(f"{path}: not a jna_fast checkpoint ({kind}); for a torchvision ImageNet weight file "
                              f"use --weights / JNA.load_backbone_weights")
    if state.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state['version']} is newer than this jna_fast "
                              f"understands ({VERSION}); upgrade jna_fast")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path}: incomplete jna_fast checkpoint: missing {missing}")
    return state


def _unpickler_reason(error: pickle.UnpicklingError) -> str:
    """The line of the weights-only unpickler's message that says what it refused (the rest is torch's advice to
    load with weights_only=False, which jna_fast never does)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reasons = [line for line in lines if "GLOBAL" in line or line.startswith("Unsupported")]
    return (reasons or lines or [type(error).__name__])[0][:300]


def load_model_state(model, state_dict: dict, path) -> None:
    """Load every weight or none: a mismatch raises CheckpointError naming the keys, and the model is untouched
    (shapes are checked before anything is copied)."""
    state_dict = _unwrapped(state_dict)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [f"{key}: file {tuple(state_dict[key].shape)} vs model {tuple(value.shape)}"
                  for key, value in expected.items() if key in state_dict and state_dict[key].shape != value.shape]
    if missing or unexpected or mismatched:
        raise CheckpointError(f"{path}: its weights do not fit the model: missing {missing[:5]}, unexpected "
                              f"{unexpected[:5]}, shape mismatches {mismatched[:5]}")
    broken = non_finite_weights(state_dict)
    if broken:
        raise CheckpointError(f"{path}: its weights are not finite ({broken}): the run that wrote it diverged")
    model.load_state_dict(state_dict)


def _unwrapped(state_dict: dict) -> dict:
    """A state dict saved from a DDP- or torch.compile-wrapped model has prefixed keys; strip them."""
    prefixes = ("module.", "_orig_mod.")
    cleaned = {}
    for key, value in state_dict.items():
        while key.startswith(prefixes):
            key = key.split(".", 1)[1]
        cleaned[key] = value
    return cleaned
