"""The paper's three claims, measured on one dataset: ``python -m jna_fast.ablate``.

JNA's abstract claims that (1) sharing information between the spatial and temporal branches beats processing them
apart, (2) attention over time beats plain pooling over time, and (3) the attention finds the salient portions of
an action. This command trains and evaluates variants of the one model, on the same data, splits, budget and seeds.
The variants are data: each file ``configs/ablations/<variant>.yaml`` is one, an override of the common
configuration (jna_fast/variants.py; configs/ablations/README.md lists them): ``rgb`` and ``flow`` (one branch alone,
TSN's streams), ``tsn`` (both apart, average consensus), ``attention`` (joint attention without sharing),
``sharing`` (cross-stitch sharing, average consensus) and ``jna`` (the full model). ``configs/ablations/index.yaml``
orders them and lists the comparisons that measure the claims: claim 1 by ``sharing - tsn`` and ``jna -
attention``, claim 2 by ``attention - tsn`` and ``jna - sharing``; claim 3 by ``attention_on_salient`` against
``uniform_on_salient`` and ``top_snippet_in_window`` of the variants with attention, on data with known windows.
A new variant is a new file there; ``--variants`` picks some by name.

Every option of ``python -m jna_fast.train`` sets the common configuration (dataset, backbone, epochs, the synthetic
generator's difficulty: ``--synthetic-window-fraction``, ``--synthetic-decoys``, ...). Each run goes to
``OUT/runs/<variant>-s<seed>`` and is evaluated by the TSN test protocol (``--eval-segments``, ``--eval-crops``)
when it ends; a rerun skips the runs that have their report and resumes an interrupted one. ``--jobs N`` runs N of
them at a time, each in its own process on its share of the cores (default: one on a GPU, two on a CPU, where two
one-thread runs train more clips per second than one two-thread run: docs/design.md §2.6). Writes
``OUT/ablation.json`` (``{"settings": ..., "runs": [{"variant", "seed", "top1", ...}], "summary": ...}``),
``OUT/ablation.md`` (the table, mean ± sd over seeds), ``OUT/ablation.png`` (bar chart with error bars) and
``OUT/attention/`` (strips of the attention of the variants that have one).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from .builders import prepare_dataset
from .cli import check_output_folder, run_command
from .config import Config, build_parser, parse_command_line, with_overrides
from .evaluation import REPORT_NAME, STRIPS_DIR
from .files import output_folder, refuse_links, write_atomically, write_text_atomically
from .train import EVAL_DIR, train
from .variants import Ablations, Comparison, one_stream, read_ablations, scores_attention, varied_paths
from .visualize import pyplot, save_figure

logger = logging.getLogger("jna_fast.ablate")

# Seeds of the default run: the two-stream variants carry the claims and get more seeds than the one-stream
# references.
DEFAULT_SEEDS, DEFAULT_ONE_STREAM_SEEDS = 5, 3
METRICS = ("top1", "top5", "mean_class_accuracy", "top1_rgb", "top1_flow", "attention_on_salient",
           "uniform_on_salient", "top_snippet_in_window")
# The default budget: the default ablation's 26 runs fit a CPU session (docs/design.md §2.6); the main run trains 12
# epochs on 40 videos per class.
ABLATION_DEFAULTS = {"epochs": 5, "synthetic_videos_per_class": 32}
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


def run_record(variant: str, seed: int, report: dict, attention: bool) -> dict:
    """The run's figures; a variant that averages its snippets has no attention to score (its "most attended
    snippet" would be an arbitrary tie), so its localisation figures are None."""
    record = {"variant": variant, "seed": seed}
    record.update({name: report.get(name) for name in METRICS})
    if "families" in report:
        record["families"] = report["families"]
    if not attention:
        record["attention_on_salient"] = record["top_snippet_in_window"] = None
        for family in record.get("families", {}).values():
            family["attention_on_salient"] = family["top_snippet_in_window"] = None
    return record


FAMILY_METRICS = ("top1", "top1_rgb", "top1_flow", "attention_on_salient", "top_snippet_in_window")


def _spread(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def _figure(run: dict, name: str, family: str | None):
    return run.get(name) if family is None else run.get("families", {}).get(family, {}).get(name)


def summarise(runs: list[dict], order: list[str]) -> dict:
    """Per variant (in ``order``, the ablation's): mean, sd and n over the seeds of every metric, and of each
    family's figures."""
    summary = {}
    for variant in order:
        rows = [run for run in runs if run["variant"] == variant]
        if not rows:
            continue
        entry = {"seeds": len(rows)}
        for name in METRICS:
            values = [row[name] for row in rows if row.get(name) is not None]
            if values:
                entry[name] = _spread(values)
        families = sorted({family for row in rows for family in row.get("families", {})})
        if families:
            entry["families"] = {}
            for family in families:
                entry["families"][family] = {
                    name: _spread(values) for name in FAMILY_METRICS
                    if (values := [v for row in rows if (v := _figure(row, name, family)) is not None])}
        summary[variant] = entry
    return summary


def differences(runs: list[dict], comparisons: tuple[Comparison, ...]) -> list[dict]:
    """Each comparison's top-1 difference, paired by seed (the same data order and initialisation seed), with its
    mean and sd over the seeds both variants ran, overall and per family."""
    by_key = {(run["variant"], run["seed"]): run for run in runs}
    families = sorted({family for run in runs for family in run.get("families", {})})
    rows = []
    for better, baseline, meaning in ((c.better, c.baseline, c.meaning) for c in comparisons):
        seeds = sorted(seed for variant, seed in by_key if variant == better and (baseline, seed) in by_key)
        if not seeds:
            continue
        row = {"comparison": f"{better} - {baseline}", "meaning": meaning, "seeds": len(seeds)}
        for family in (None, *families):
            values = [_figure(by_key[better, seed], "top1", family) - _figure(by_key[baseline, seed], "top1", family)
                      for seed in seeds if _figure(by_key[better, seed], "top1", family) is not None
                      and _figure(by_key[baseline, seed], "top1", family) is not None]
            if values:
                row["top1" if family is None else f"top1_{family}"] = _spread(values)
        rows.append(row)
    return rows


def _cell(entry: dict, name: str) -> str:
    if name not in entry:
        return "-"
    return f"{entry[name]['mean']:.3f} ± {entry[name]['sd']:.3f}"


def markdown_table(summary: dict, settings: dict, comparisons: list[dict] = ()) -> str:
    header = ("| variant | seeds | top-1 | top-1 RGB | top-1 flow | mean class acc. | attention on window | "
              "uniform on window | top snippet in window |")
    lines = [f"Settings: {json.dumps(settings)}", "", header, "|" + "---|" * 9]
    for variant, entry in summary.items():
        lines.append(f"| {variant} | {entry['seeds']} | " + " | ".join(
            _cell(entry, name) for name in ("top1", "top1_rgb", "top1_flow", "mean_class_accuracy",
                                            "attention_on_salient", "uniform_on_salient",
                                            "top_snippet_in_window")) + " |")
    families = sorted({family for entry in summary.values() for family in entry.get("families", {})})
    if families:
        lines += ["", "Top-1 per family (mean ± sd over seeds):", "",
                  "| variant | " + " | ".join(families) + " |", "|" + "---|" * (len(families) + 1)]
        for variant, entry in summary.items():
            lines.append(f"| {variant} | " + " | ".join(
                _cell(entry.get("families", {}).get(family, {}), "top1") for family in families) + " |")
    if comparisons:
        columns = ["top1", *(f"top1_{family}" for family in families)]
        lines += ["", "Differences of top-1, paired by seed (mean ± sd over the seeds):", "",
                  "| comparison | what it measures | seeds | all | " + " | ".join(families) + " |",
                  "|" + "---|" * (len(columns) + 3)]
        for row in comparisons:
            lines.append(f"| {row['comparison']} | {row['meaning']} | {row['seeds']} | " + " | ".join(
                f"{row[c]['mean']:+.3f} ± {row[c]['sd']:.3f}" if c in row else "-" for c in columns) + " |")
    return "\n".join(lines) + "\n"


def bar_chart(summary: dict, path: Path) -> None:
    plt = pyplot()

    variants = list(summary)
    figure, (accuracy, attention) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    means = [summary[v]["top1"]["mean"] for v in variants]
    sds = [summary[v]["top1"]["sd"] for v in variants]
    accuracy.bar(variants, means, yerr=sds, capsize=4, color="tab:blue")
    accuracy.set_ylim(0, 1)
    accuracy.set_ylabel("test top-1 (mean ± sd over seeds)")
    accuracy.set_title("claims 1 and 2: accuracy")
    with_attention = [v for v in variants if "attention_on_salient" in summary[v]]  # None without attention
    if with_attention:
        positions = range(len(with_attention))
        for offset, name, colour in ((-0.27, "attention_on_salient", "tab:green"),
                                     (0.0, "top_snippet_in_window", "tab:olive"),
                                     (0.27, "uniform_on_salient", "tab:grey")):
            attention.bar([p + offset for p in positions], [summary[v][name]["mean"] for v in with_attention],
                          width=0.27, yerr=[summary[v][name]["sd"] for v in with_attention], capsize=3,
                          color=colour, label=name.replace("_", " "))
        attention.set_xticks(list(positions), with_attention)
        attention.set_ylim(0, 1)
        attention.legend(fontsize=7)
    attention.set_title("claim 3: attention on the salient window")
    figure.tight_layout()
    save_figure(figure, path, dpi=110)


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
        write_results(out, base, [reports[k] for k in planned if k in reports], ablations)

    run_all(configs, jobs, record, out)
    copy_strips(out, [variant for variant in variants if scores_attention(resolved[variant])], seeds[0])
    return write_results(out, base, [reports[key] for key in planned], ablations)


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
    """The first STRIPS attention strips of each variant's run with ``seed`` into ``OUT/attention``."""
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


def write_results(out: Path, base: Config, runs: list[dict], ablations: Ablations) -> dict:
    # What every variant shares: the variants differ in what their files set, the runs in their seed.
    varied = (*RUN_SETTINGS, *varied_paths(ablations))
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
    parser.add_argument("--variants", default=None)
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="seeds per variant (0..N-1)")
    parser.add_argument("--one-stream-seeds", type=int, default=DEFAULT_ONE_STREAM_SEEDS,
                        help="seeds of the one-stream variants, rgb and flow (the first of --seeds)")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="runs/ablation")
    parser.add_argument("-h", "--help", action="store_true")
    own, rest = parser.parse_known_args(argv)
    ablations = read_ablations()
    if own.help:
        print(__doc__)
        print("ablation options:\n  --variants LIST        comma-separated, of " + ", ".join(ablations.names()) +
              f"\n  --seeds N              seeds per two-stream variant (default {DEFAULT_SEEDS})"
              f"\n  --one-stream-seeds N   seeds of the one-stream variants (default {DEFAULT_ONE_STREAM_SEEDS})"
              "\n  --jobs N               runs at a time (default: 1 with a GPU, 2 on a CPU of 2 or more cores)"
              "\n  --quick                a tiny setting (minutes)"
              "\n  --out DIR              default runs/ablation\n\ncommon configuration (python -m jna_fast.train):")
        build_parser("python -m jna_fast.ablate", "").print_help()
        return 0
    variants = ablations.names() if own.variants is None else [name for name in own.variants.split(",") if name]
    try:
        ablations.pick(variants)
    except ValueError as error:
        parser.error(str(error))
    for flag, value in (("--seeds", own.seeds), ("--one-stream-seeds", own.one_stream_seeds), ("--jobs", own.jobs)):
        if value is not None and value < 1:
            parser.error(f"{flag} must be >= 1, got {value}")
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    # The ablation's budget is a defaults layer: what the command line or --config FILE sets wins over it.
    defaults = {**ABLATION_DEFAULTS, **(QUICK_SETTINGS if own.quick else {})}
    base, debug = parse_command_line(rest, prog="python -m jna_fast.ablate", defaults=defaults)

    def ablate_and_print() -> None:
        jobs = own.jobs if own.jobs is not None else default_jobs()
        results = ablate(base, Path(own.out), variants, list(range(own.seeds)), own.one_stream_seeds, jobs,
                         ablations)
        print(markdown_table(results["summary"], results["settings"], results["differences"]))

    return run_command(ablate_and_print, debug)


if __name__ == "__main__":
    sys.exit(main())
