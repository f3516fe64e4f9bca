"""What the loader costs the training step when they share the machine: clips/s of the trainer's own step
(``jna_fast.training.train_step``: forward, loss, backward, clipping, the finite check and the update, as
``python -m jna_fast.train`` runs it) fed by the loader as training feeds it, its prefetching thread working beside
the step, against the same step fed an epoch's batches collected beforehand; the two alternate --repeats times in
one run, after an untimed epoch that fills the memory cache. Then the loader alone: batches per second and the CPU
time per batch of every thread of the process.

Every option of ``python -m jna_fast.train`` sets the run (default: the synthetic recipe with this machine's
defaults); the run's folder is a temporary one.

    python benchmarks/train_loop.py
    python benchmarks/train_loop.py --precision fp32 --repeats 5 --json train_loop.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from jna_fast.config import parse_args
from jna_fast.runtime import precision_reason, setup_distributed
from jna_fast.training.session import set_up
from jna_fast.training.step import EpochRun, train_step


def timed_steps(trainer, batches) -> float:
    """Clips per second of the trainer's step over ``batches``."""
    run = EpochRun(torch.zeros(3, dtype=torch.float64, device=trainer.env.device), 0)
    began = time.perf_counter()
    for batch in batches:
        train_step(trainer, batch.to(trainer.env.device, non_blocking=True), run, epoch=0)
    seconds = time.perf_counter() - began
    return float(run.sums[0]) / seconds


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def loader_alone(loader) -> dict:
    """The loader with no step: batches per second and CPU seconds per batch (all threads)."""
    began, cpu, count = time.perf_counter(), cpu_seconds(), 0
    for _ in loader.batches(start_batch=0):
        count += 1
    return {"batches_per_s": count / (time.perf_counter() - began),
            "cpu_ms_per_batch": 1000 * (cpu_seconds() - cpu) / count}


def measure(trainer, repeats: int) -> dict:
    loader = trainer.data.train_loader
    timed_steps(trainer, loader.batches(start_batch=0))  # fills the memory cache, warms the step
    fed, preloaded = [], []
    for _ in range(repeats):
        fed.append(timed_steps(trainer, loader.batches(start_batch=0)))
        batches = list(loader.batches(start_batch=0))
        preloaded.append(timed_steps(trainer, batches))
    return {"fed_by_loader_clips_per_s": fed, "preloaded_clips_per_s": preloaded,
            # paired by repeat: adjacent passes share the machine's state, which drifts between repeats
            "fed_over_preloaded": statistics.median(a / b for a, b in zip(fed, preloaded)),
            "loader_alone": loader_alone(loader), "batch_size": trainer.cfg.optim.batch_size,
            "threads": torch.get_num_threads()}


def report(result: dict, trainer) -> None:
    cfg = trainer.cfg
    loader = trainer.data.train_loader
    cache = "on" if loader.memory is not None else "off"
    print(f"{cfg.data.dataset}, {cfg.model.backbone.name}, B={cfg.optim.batch_size} T={cfg.data.num_segments} "
          f"{cfg.data.size}px, {cfg.optim.optimizer}, precision "
          f"{precision_reason(cfg.run.precision, trainer.env.device)}, data {trainer.data.backend} (memory cache "
          f"{cache}, prefetch {loader.prefetch}), {result['threads']} threads, {len(loader)} steps per pass")
    for name, key in (("step fed by the loader", "fed_by_loader_clips_per_s"),
                      ("step on preloaded batches", "preloaded_clips_per_s")):
        runs = ", ".join(f"{value:.2f}" for value in result[key])
        print(f"{name:<26} median {statistics.median(result[key]):6.2f} clips/s  ({runs})")
    print(f"fed / preloaded (median of the repeats' ratios): {result['fed_over_preloaded']:.3f}")
    alone = result["loader_alone"]
    print(f"loader alone: {alone['batches_per_s'] * result['batch_size']:.1f} clips/s, "
          f"{alone['cpu_ms_per_batch']:.1f} ms of CPU per batch")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Other options are python -m jna_fast.train's.")
    parser.add_argument("--repeats", type=int, default=3, help="passes of each kind, alternated (default 3)")
    parser.add_argument("--json", help="also write the results to this file")
    args, train_argv = parser.parse_known_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    with tempfile.TemporaryDirectory(prefix="jna_fast_train_loop_") as folder:
        out = Path(folder)
        cfg = parse_args(train_argv + ["--out", str(out), "--no-progress", "--no-tensorboard"])
        trainer = set_up(cfg, setup_distributed(), out, None)
        result = measure(trainer, args.repeats)
    report(result, trainer)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "train_options": train_argv,
                       "config": cfg.to_dict(), **result}, handle, indent=1)


if __name__ == "__main__":
    main()
