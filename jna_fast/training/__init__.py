"""The trainer behind ``python -m jna_fast.train`` (jna_fast/train.py is the command), in small steps
(docs/design.md §10):

- ``fit.py``: :func:`train` (hold ``--out``, then set up, fit, evaluate), the epoch loop, validation and best.pt,
  the final evaluation;
- ``session.py``: setting up: the data, the model on its device, the optimiser, a resumed run's state, held by a
  :class:`Trainer`;
- ``epoch.py``: one epoch's steps, its running figures and its record; ``step.py``: one optimiser step and what
  happens when it is not finite;
- ``optimizer.py``: the parameter groups and the learning-rate schedule;
- ``resume.py``: which checkpoint to resume and whether its options allow it; ``outputs.py``: what a run writes into
  ``--out`` (the folder held, metrics.jsonl, the checkpoints' contents).
"""

from .fit import FINAL_EVAL_STRIPS, finished_training, train, validate
from .optimizer import learning_rate, make_optimizer, parameter_groups, set_learning_rates, warmup_shares
from .outputs import (EVAL_DIR, METRICS_NAME, RUN_OUTPUTS, TENSORBOARD_DIR, MetricsLog, checkpoint_state,
                      open_run_folder)
from .resume import RESUME_KEYS, Progress, check_resumable, resolve_resume
from .session import Trainer, set_up
from .step import EpochRun, TrainingDiverged, non_finite_step

__all__ = ["EVAL_DIR", "EpochRun", "FINAL_EVAL_STRIPS", "METRICS_NAME", "MetricsLog", "Progress", "RESUME_KEYS",
           "RUN_OUTPUTS", "TENSORBOARD_DIR", "Trainer", "TrainingDiverged", "check_resumable", "checkpoint_state",
           "finished_training", "learning_rate", "make_optimizer", "non_finite_step", "open_run_folder",
           "parameter_groups", "resolve_resume", "set_learning_rates", "set_up", "train", "validate", "warmup_shares"]
