"""Resuming a run: which checkpoint, whether its options allow it, and where its run stood."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..checkpoint import LAST_NAME, CheckpointError, entry_in_use, load_model_state, load_optimizer_state
from ..config import CONFIG_NAME, Config, config_from_dict, resumable_paths
from ..runtime import restore_rng_state

RESUME_KEYS = ("optimizer", "epoch", "batch", "step", "rng")


@dataclass
class Progress:
    """Where a run stands: the epoch and the batch within it to continue at, the optimiser steps taken so far, and
    the best validation top-1 (best.pt's)."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    best_top1: float = -1.0


def resolve_resume(cfg: Config) -> Path | None:
    if cfg.run.resume == "never":
        return None
    if cfg.run.resume == "auto":
        candidate = Path(cfg.run.out) / LAST_NAME
        return candidate if candidate.exists() else None
    path = Path(cfg.run.resume)
    if not path.exists():
        raise FileNotFoundError(f"--resume {cfg.run.resume}: no such checkpoint")
    return path


def check_resumable(cfg: Config, state: dict, path: Path) -> None:
    """Refuse to continue a checkpoint made with other (non-resumable) options, naming them, or one that holds no
    training state."""
    missing = [key for key in RESUME_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path}: holds no training state to resume (missing {missing}); resume from a "
                              f"{LAST_NAME}, or pass the file to --weights / python -m jna_fast.evaluate")
    saved = config_from_dict(state["config"], f"{path}: saved configuration")
    differences = saved.differences(cfg, ignored=frozenset(resumable_paths()))
    if differences:
        listed = "; ".join(f"--{name}: {old!r} in the checkpoint, {new!r} now"
                           for name, (old, new) in differences.items())
        resumable = ", ".join(resumable_paths())
        raise CheckpointError(
            f"{path} was written by a run with other options ({listed}). Resume with the same options (they are "
            f"in {Path(cfg.run.out) / CONFIG_NAME}), or start afresh with --resume never (it overwrites "
            f"{cfg.run.out}'s checkpoints) or another --out. Options that may change on resume: {resumable}.")


def resume_training(model, optimizer, resumed: dict, path: Path) -> Progress:
    """Load the model, the optimiser and the RNG state of a last.pt (checked by :func:`check_resumable`); returns
    where its run stood."""
    load_model_state(model, resumed["model"], path)
    load_optimizer_state(optimizer, resumed["optimizer"], path)
    with entry_in_use(path, "rng"):
        restore_rng_state(resumed["rng"])
    return Progress(resumed["epoch"], resumed["batch"], resumed["step"], resumed.get("best_top1", -1.0))
