"""The paper's claims, measured on one dataset: ``python -m jna_fast.ablate``.

JNA's abstract claims that (1) sharing information between the spatial and temporal branches beats processing them
apart, (2) attention over time beats plain pooling over time, (3) the attention finds the salient portions of an
action, and (4) the fully-connected fusion, branch selection and spatial attention are "totally infeasible" for
action recognition, which is why the branches share information instead. This command trains and evaluates variants
of the one model, on the same data, splits, budget and seeds. The variants are data: each file
``configs/ablations/<variant>.yaml`` is one, an override of the common configuration (jna_fast/variants.py;
configs/ablations/README.md lists them): ``rgb`` and ``flow`` (one branch alone, TSN's streams), ``tsn`` (both
apart, average consensus), ``attention`` (joint attention without sharing), ``sharing`` (cross-stitch sharing,
average consensus), ``jna`` (the full model), and the abstract's rejected designs, each TSN with one part replaced:
``fc_fusion``, ``branch_selection`` and ``spatial_attention``. ``configs/ablations/index.yaml`` orders them and
lists the comparisons that measure the claims: claim 1 by ``sharing - tsn`` and ``jna - attention``, claim 2 by
``attention - tsn`` and ``jna - sharing``, claim 4 by ``tsn - <design>`` and ``jna - <design>`` for each rejected
design; claim 3 by ``attention_on_salient`` against ``uniform_on_salient`` and ``top_snippet_in_window`` of the
variants with attention, on data with known windows. A new variant is a new file there.

What runs is a study, a preset of the index (``--study``): ``default`` (without --study) runs the variants of claims
1 to 3 at the main run's budget; ``alternatives`` runs ``tsn``, ``jna`` and the three rejected designs at
the main run's budget (the train command's defaults), 5 seeds each. ``--variants`` picks variants by name: alone,
any variants, at the default study's seeds and budget; with --study, some of that study's variants. A new study is
an entry of the index.

Every option of ``python -m jna_fast.train`` sets the common configuration (dataset, backbone, epochs, the synthetic
generator's difficulty: ``--synthetic-window-fraction``, ``--synthetic-decoys``, ...), over the study's budget. Each
run goes to ``OUT/runs/<variant>-s<seed>`` and is evaluated by the TSN test protocol (``--eval-segments``,
``--eval-crops``) when it ends; a rerun skips the runs that have their report and resumes an interrupted one.
``--jobs N`` runs N of them at a time, each in its own process on its share of the cores (default: one on a GPU,
two on a CPU, where two one-thread runs train more clips per second than one two-thread run: docs/design.md §2.6).
Writes ``OUT/ablation.json`` (``{"settings": ..., "runs": [{"variant", "seed", "top1", ...}], "summary": ...}``),
``OUT/ablation.md`` (the table, mean ± sd over seeds; the branch selection rates of the variants that select a
branch), ``OUT/ablation.png`` (bar chart with error bars) and ``OUT/attention/`` (the attention pictures of the
variants that learn one).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import sys
import textwrap
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from .ablation_results import bar_chart, differences, markdown_table, run_record, summarise
from .builders import prepare_dataset
from .cli import check_output_folder, run_command
from .config import Config, build_parser, parse_command_line, with_overrides
from .evaluation import REPORT_NAME, STRIPS_DIR
from .files import output_folder, refuse_links, write_atomically, write_text_atomically
from .train import EVAL_DIR, train
from .variants import (DEFAULT_STUDY, INDEX_NAME, Ablations, one_stream, pictures_attention, read_ablations,
                       scores_attention, varied_paths)

logger = logging.getLogger("jna_fast.ablate")

# --quick: each variant trains briefly and evaluates; minutes in all.
QUICK_SETTINGS = {"synthetic_videos_per_class": 8, "epochs": 1, "size": 32, "num_segments": 2, "test_segments": 2,
                  "flow_length": 2, "batch_size": 4, "progress": False}
STRIPS = 4
RUN_SETTINGS = ("run.out", "run.resume", "run.progress", "run.seed")  # set per run: not common settings
RESULTS_JSON, RESULTS_TABLE, RESULTS_CHART, RUNS_DIR = "ablation.json", "ablation.md", "ablation.png", "runs"
# What an ablation writes into --out: its results, replaced whole (a link at their name replaced, never written
# through), and the folders of the runs and of the strips, refused when they are links.
ABLATION_OUTPUTS = (RESULTS_JSON, RESULTS_TABLE, RESULTS_CHART, RUNS_DIR, STRIPS_DIR)
LOG_FORMAT = "%(asctime)s %(name)s: %(message)s"
HELP_WIDTH = 118


def variant_config(base: Config, ablations: Ablations, variant: str, seed: int, out: Path,
                   quiet: bool = False) -> Config:
    """The configuration of one run: ``base`` with the variant's overrides, the seed and the run's folder (and no
    progress bar when ``quiet``)."""
    overrides = {**ablations.variants[variant], "run.seed": seed, "run.out": str(out), "run.resume": "auto",
                 "run.final_eval": True, **({"run.progress": False} if quiet else {})}
    return with_overrides(base, overrides, f"variant {variant} ({ablations.folder / variant}.yaml)")


def run_variant(cfg: Config) -> dict:
    """Train (resuming if interrupted) and return the final evaluation's report; a finished run is not redone."""
    report_path = Path(cfg.run.out) / EVAL_DIR / REPORT_NAME
    if not report_path.exists():
        train(cfg)
    return json.loads(report_path.read_text(encoding="utf-8"))


def ablate(base: Config, out: Path, variants: list[str], seeds: list[int], one_stream_seeds: int | None = None,
           jobs: int = 1, ablations: Ablations | None = None) -> dict:
    """Train and evaluate every variant (of ``ablations``, default: configs/ablations/) with every seed (the
    one-stream variants with the first ``one_stream_seeds`` only; None: all of them), ``jobs`` runs at a time (each
    in its own process, with ``cores / jobs`` threads). The runs and their configurations are the same whatever
    ``jobs`` is; a run's thread count changes the order of its floating-point sums, so its figures can differ
    between ``jobs`` values."""
    ablations = read_ablations() if ablations is None else ablations
    check_output_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    refuse_links([out / STRIPS_DIR])  # now, not when the runs are done
    # Every variant's configuration is checked before any run starts.
    resolved = {variant: with_overrides(base, ablations.variants[variant], f"variant {variant}")
                for variant in ablations.pick(variants)}
    planned = [(variant, seed) for position, seed in enumerate(seeds) for variant in variants
               if not (one_stream(resolved[variant]) and one_stream_seeds is not None
                       and position >= one_stream_seeds)]
    # Each run's folder is its --out: one that is a link would lead the run out of the ablation's. Progress bars
    # of parallel runs would write over each other: each run logs its epochs.
    configs = {(variant, seed): variant_config(base, ablations, variant, seed,
                                               output_folder(out, RUNS_DIR, f"{variant}-s{seed}"), quiet=jobs > 1)
               for variant, seed in planned}
    # A kind made on first use (the synthetic set) is made once, before parallel runs would race to make it.
    prepare_dataset(base, progress=base.run.progress)
    reports = {}

    def record(key, report: dict) -> None:
        reports[key] = run_record(*key, report, scores_attention(resolved[key[0]]))
        write_results(out, base, [reports[k] for k in planned if k in reports], ablations, variants)

    run_all(configs, jobs, record, out)
    copy_strips(out, [variant for variant in variants if pictures_attention(resolved[variant])], seeds[0])
    return write_results(out, base, [reports[key] for key in planned], ablations, variants)


def run_all(configs: dict, jobs: int, record, out: Path) -> None:
    """Run each planned run (``configs``: (variant, seed) -> its configuration, in the planned order), ``jobs`` at
    a time; ``record(key, report)`` takes each run's report as it ends."""
    if jobs == 1:
        for key, cfg in configs.items():
            logger.info("ablation run %s, seed %d -> %s", *key, cfg.run.out)
            record(key, run_variant(cfg))
        return
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker,
                             initargs=(threads, os.getpid())) as pool:
        logger.info("%d ablation runs, %d at a time with %d threads each, in %s", len(configs), jobs, threads,
                    out / "runs")
        futures = {pool.submit(run_variant, cfg): key for key, cfg in configs.items()}
        for done, future in enumerate(as_completed(futures), 1):
            report = future.result()
            record(futures[future], report)
            logger.info("ablation run %s, seed %d done (%d of %d): top-1 %.3f", *futures[future], done,
                        len(configs), report["top1"])


def copy_strips(out: Path, variants: list[str], seed: int) -> None:
    """The first STRIPS attention pictures of each variant's run with ``seed`` (its evaluation's strips, and the
    spatial maps of a spatial pooling that learns an attention) into ``OUT/attention``."""
    for variant in variants:
        source = out / RUNS_DIR / f"{variant}-s{seed}" / EVAL_DIR / STRIPS_DIR
        if source.is_dir():
            for strip in sorted(source.glob("*.png"))[:STRIPS]:
                picture = strip.read_bytes()
                write_atomically(output_folder(out, STRIPS_DIR) / f"{variant}-{strip.name}",
                                 lambda handle: handle.write(picture))


def default_jobs() -> int:
    """One run at a time on a GPU (they would share it); on a CPU two runs side by side, each on half the cores,
    train more clips per second than one run on all of them (docs/design.md §2.6)."""
    if torch.cuda.is_available():
        return 1
    return min(2, os.cpu_count() or 1)


def _start_worker(threads: int, parent: int) -> None:
    """A parallel run's process: its share of the cores, the parent's log format, and an end with the parent."""
    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True, name="exit-with-ablation").start()


def _exit_when_orphaned(parent: int, every: float = 1.0) -> None:
    """End this process once ``parent`` has ended. A pool's worker finishes its current run when the ablation is
    killed (SIGTERM, SIGKILL: no chance to stop it), training on for minutes into a run folder that a rerun would
    then want; the run's files are written atomically, so ending it at any moment tears nothing."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def write_results(out: Path, base: Config, runs: list[dict], ablations: Ablations, variants: list[str]) -> dict:
    """The results of ``runs`` (those of ``variants`` done so far) into ``out``."""
    # What every variant shares: the variants differ in what their files set, the runs in their seed.
    varied = (*RUN_SETTINGS, *varied_paths(ablations, variants))
    settings = {path: list(value) if isinstance(value, tuple) else value for path, value in base.flat_values().items()
                if not any(path == name or path.startswith(name + ".") for name in varied)}
    summary = summarise(runs, ablations.names())
    comparisons = differences(runs, ablations.comparisons)
    results = {"settings": settings, "runs": runs, "summary": summary, "differences": comparisons}
    for name, text in ((RESULTS_JSON, json.dumps(results, indent=1)),
                       (RESULTS_TABLE, markdown_table(summary, settings, comparisons))):
        write_text_atomically(out / name, text)
    bar_chart(summary, out / RESULTS_CHART)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jna_fast.ablate", add_help=False)
    parser.add_argument("--study", default=None)
    parser.add_argument("--variants", default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--one-stream-seeds", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="runs/ablation")
    parser.add_argument("-h", "--help", action="store_true")
    own, rest = parser.parse_known_args(argv)
    ablations = read_ablations()
    if own.help:
        print_help(ablations)
        return 0
    try:
        study = ablations.plan(own.study, None if own.variants is None else
                               [name for name in own.variants.split(",") if name])
    except ValueError as error:
        parser.error(str(error))
    for flag, value in (("--seeds", own.seeds), ("--one-stream-seeds", own.one_stream_seeds), ("--jobs", own.jobs)):
        if value is not None and value < 1:
            parser.error(f"{flag} must be >= 1, got {value}")
    seeds = study.seeds if own.seeds is None else own.seeds
    one_stream_seeds = study.one_stream_seeds if own.one_stream_seeds is None else own.one_stream_seeds
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    # The study's budget is a defaults layer: what the command line or --config FILE sets wins over it.
    defaults = {**study.budget, **(QUICK_SETTINGS if own.quick else {})}
    base, debug = parse_command_line(rest, prog="python -m jna_fast.ablate", defaults=defaults)

    def ablate_and_print() -> None:
        jobs = own.jobs if own.jobs is not None else default_jobs()
        results = ablate(base, Path(own.out), list(study.variants), list(range(seeds)), one_stream_seeds, jobs,
                         ablations)
        print(markdown_table(results["summary"], results["settings"], results["differences"]))

    return run_command(ablate_and_print, debug)


def print_help(ablations: Ablations) -> None:
    """The command's help: what it does, its own options with the index's studies and variants, then the common
    configuration's options."""
    print(__doc__)
    default = ablations.studies[DEFAULT_STUDY]
    studies = [f"{study.name}: {study.about}; {', '.join(study.variants)}; {study.seeds} seeds"
               f"{'' if study.one_stream_seeds is None else f' ({study.one_stream_seeds} one-stream)'}; budget "
               f"{', '.join(f'{path} {value}' for path, value in study.budget.items()) or 'the train defaults'}"
               for study in ablations.studies.values()]
    options = {
        "--study NAME": [f"a preset of {ablations.folder / INDEX_NAME} (without it: {DEFAULT_STUDY}):", *studies],
        "--variants LIST": ["comma-separated, of " + ", ".join(ablations.names()) + "; with --study, some of the "
                            "study's variants; alone, any, at the default study's seeds and budget",
                            *(f"{name} {why}" for name, why in ablations.unavailable.items())],
        "--seeds N": [f"seeds per variant (default: the study's, {default.seeds} in {DEFAULT_STUDY})"],
        "--one-stream-seeds N": ["seeds of the one-stream variants, rgb and flow: the first of --seeds (default: "
                                 f"the study's, {default.one_stream_seeds} in {DEFAULT_STUDY})"],
        "--jobs N": ["runs at a time (default: 1 with a GPU, 2 on a CPU of 2 or more cores)"],
        "--quick": ["a tiny setting (minutes)"],
        "--out DIR": ["default runs/ablation"],
    }
    print("ablation options:")
    for flag, paragraphs in options.items():
        for number, paragraph in enumerate(paragraphs):
            print(textwrap.fill(paragraph, HELP_WIDTH, initial_indent=f"  {flag if number == 0 else '':<21}",
                                subsequent_indent=" " * 23))
    print("\ncommon configuration (python -m jna_fast.train), over the study's budget:")
    build_parser("python -m jna_fast.ablate", "").print_help()


if __name__ == "__main__":
    sys.exit(main())
