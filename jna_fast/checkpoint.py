"""Checkpoints: written atomically, read with clear errors, and turned back into a model.

A checkpoint is a ``torch.save`` of a dict with ``format`` (:data:`FORMAT`), ``version``, ``model`` (the state
dict), ``config`` (the resolved TrainConfig as a dict), ``class_names``, ``data`` (what prediction needs to prepare
a video as the training data was: crop size, flip policy, flow algorithm and bound), and, in ``last.pt``, what
resuming needs
(``optimizer``, ``epoch``, ``batch``, ``step``, ``rng``, ``best_top1``). ``best.pt`` holds the model of the epoch
with the best validation top-1 and its ``metrics``.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

FORMAT = "jna_fast/checkpoint"
VERSION = 1
LAST_NAME = "last.pt"
BEST_NAME = "best.pt"
REQUIRED_KEYS = ("model", "config", "class_names")


class CheckpointError(ValueError):
    """A file that is not a usable jna_fast checkpoint (missing, truncated, foreign, or made for another model)."""


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write to a temporary file in the same folder, fsync, then rename: a crash never leaves a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            torch.save({"format": FORMAT, "version": VERSION, **state}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """The checkpoint's dict; CheckpointError names the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        # weights_only=False: the state holds RNG states and the optimizer's; load only files you trust.
        state = torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError) as error:
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


def model_from_checkpoint(path: str | os.PathLike, map_location="cpu"):
    """(model in eval mode, TrainConfig, class names) from a checkpoint; a model whose weights do not fit the
    saved configuration is an error, never a half-loaded model."""
    from .config import config_from_dict
    from .experiment import build_model

    state = load_checkpoint(path, map_location)
    try:
        cfg = config_from_dict(state["config"], f"{path}: saved configuration")
    except ValueError as error:
        raise CheckpointError(str(error)) from None
    model = build_model(cfg, len(state["class_names"]))
    load_model_state(model, state["model"], path)
    model.config, model.class_names = cfg, list(state["class_names"])
    model.data_settings = state.get("data")
    return model.eval(), cfg, model.class_names


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
