"""What a run writes into its ``--out``: the folder held while it trains, the links refused before it starts,
metrics.jsonl (and TensorBoard), and what each checkpoint holds."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

from ..checkpoint import BEST_NAME, LAST_NAME, load_checkpoint
from ..config import CONFIG_NAME, Config
from ..evaluation import STRIPS_DIR
from ..files import LOCK_NAME, append_line, exclusive_folder, refuse_links, remove_stale_temporaries
from ..runtime import Distributed
from .resume import check_resumable, resolve_resume

logger = logging.getLogger("jna_fast.train")

METRICS_NAME, TENSORBOARD_DIR, EVAL_DIR = "metrics.jsonl", "tensorboard", "eval"
# What a run writes into --out: the checkpoints and config.yaml are replaced whole (a link at their name replaced,
# never written through); metrics.jsonl is appended to and the folders are written into, so a link there (or among
# TensorBoard's event files, whose names it makes itself) is refused before the run starts.
RUN_OUTPUTS = (LAST_NAME, BEST_NAME, CONFIG_NAME, METRICS_NAME, TENSORBOARD_DIR, EVAL_DIR, LOCK_NAME)


def open_run_folder(cfg: Config, out: Path, held: contextlib.ExitStack) -> dict | None:
    """On the main process: make ``out`` and hold it (until ``held`` closes), remove the temporary files of a
    killed run, and read and check the checkpoint to resume; returns ``{"path", "state"}`` of that checkpoint, or
    None when the run starts afresh."""
    out.mkdir(parents=True, exist_ok=True)
    held.enter_context(exclusive_folder(out, "a training run"))
    for leftover in remove_stale_temporaries(out, (LAST_NAME, BEST_NAME, CONFIG_NAME)):
        logger.info("removed %s, left by a process that no longer runs", leftover)
    refuse_planted_links(out)
    resume_from = resolve_resume(cfg)
    if resume_from is None:
        return None
    state = load_checkpoint(resume_from)
    check_resumable(cfg, state, resume_from)
    return {"path": str(resume_from), "state": state}


def refuse_planted_links(out: Path) -> None:
    """Stop at once, not hours later, when what the run appends to or writes into is a link (RUN_OUTPUTS)."""
    events = out / TENSORBOARD_DIR
    planted = [out / METRICS_NAME, events, out / EVAL_DIR, out / EVAL_DIR / STRIPS_DIR]
    if events.is_dir() and not events.is_symlink():
        planted += events.iterdir()
    refuse_links(planted)


def checkpoint_state(model, cfg: Config, class_names: list[str], data: dict, **extra) -> dict:
    """What every checkpoint holds (the model, the configuration, the class names, the data settings), and
    ``extra``: the training state for last.pt, the epoch and its metrics for best.pt."""
    return {"model": model.state_dict(), "config": cfg.to_dict(), "class_names": class_names, "data": data,
            **extra}


def kept_checkpoint(out: Path, env: Distributed) -> str:
    """What a stopped run keeps: only the main process writes the checkpoints, and only it may see them."""
    if not env.is_main:
        return "the main process's --out keeps the last checkpoint it wrote"
    if (out / LAST_NAME).exists():
        return f"{out / LAST_NAME} keeps the last checkpoint written"
    return "no checkpoint was written yet"


class MetricsLog:
    """metrics.jsonl, and TensorBoard when it is installed (or asked for)."""

    def __init__(self, cfg: Config, out: Path, enabled: bool):
        self.path = out / METRICS_NAME
        self.writer = None
        if not enabled or cfg.run.tensorboard is False:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            if cfg.run.tensorboard:
                raise ImportError(f"--tensorboard needs tensorboard: pip install 'jna_fast[tensorboard]' "
                                  f"({error})") from error
            return
        self.writer = SummaryWriter(str(out / TENSORBOARD_DIR))

    def scalars(self, values: dict, step: int) -> None:
        if self.writer is not None:
            for name, value in values.items():
                if isinstance(value, (int, float)) and value is not None:
                    self.writer.add_scalar(name, value, step)

    def record(self, values: dict) -> None:
        append_line(self.path, json.dumps(values))
        self.scalars({k: v for k, v in values.items() if k not in ("epoch", "step")}, values["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
