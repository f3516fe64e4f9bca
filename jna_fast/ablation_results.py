"""The ablation's figures (``python -m jna_fast.ablate``): each run's record from its evaluation's report, the mean
and sd over the seeds per variant and class family, the claims' differences paired by seed, and the table and chart
that show them."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from .variants import Comparison
from .visualize import pyplot, save_figure

# How often a fusion that selects one branch per clip (branch_selection) selected each: None for the others.
SELECTION_METRICS = {"selected_rgb": "RGB", "selected_flow": "flow"}
METRICS = ("top1", "top5", "mean_class_accuracy", "top1_rgb", "top1_flow", "attention_on_salient",
           "uniform_on_salient", "top_snippet_in_window", *SELECTION_METRICS)
FAMILY_METRICS = ("top1", "top1_rgb", "top1_flow", "attention_on_salient", "top_snippet_in_window",
                  *SELECTION_METRICS)


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
    lines += _selection_table(summary, families)
    if comparisons:
        columns = ["top1", *(f"top1_{family}" for family in families)]
        lines += ["", "Differences of top-1, paired by seed (mean ± sd over the seeds):", "",
                  "| comparison | what it measures | seeds | all | " + " | ".join(families) + " |",
                  "|" + "---|" * (len(columns) + 3)]
        for row in comparisons:
            lines.append(f"| {row['comparison']} | {row['meaning']} | {row['seeds']} | " + " | ".join(
                f"{row[c]['mean']:+.3f} ± {row[c]['sd']:.3f}" if c in row else "-" for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _selection_table(summary: dict, families: list[str]) -> list[str]:
    """The lines of the table of how often each branch was selected, overall and per family, for the variants whose
    fusion selects one branch per clip (none without such a variant)."""
    selecting = [variant for variant, entry in summary.items() if any(name in entry for name in SELECTION_METRICS)]
    if not selecting:
        return []
    lines = ["", "Branch selected at test, share of the clips (mean ± sd over seeds):", "",
             "| " + " | ".join(["variant", "branch", "all", *families]) + " |", "|" + "---|" * (len(families) + 3)]
    for variant in selecting:
        entry = summary[variant]
        for name, branch in SELECTION_METRICS.items():
            cells = [_cell(entry, name), *(_cell(entry.get("families", {}).get(family, {}), name)
                                           for family in families)]
            lines.append("| " + " | ".join([variant, branch, *cells]) + " |")
    return lines


def bar_chart(summary: dict, path: Path) -> None:
    plt = pyplot()

    variants = list(summary)
    figure, (accuracy, attention) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    means = [summary[v]["top1"]["mean"] for v in variants]
    sds = [summary[v]["top1"]["sd"] for v in variants]
    accuracy.bar(variants, means, yerr=sds, capsize=4, color="tab:blue")
    accuracy.set_ylim(0, 1)
    accuracy.set_ylabel("test top-1 (mean ± sd over seeds)")
    accuracy.set_title("claims 1, 2 and 4: accuracy")
    accuracy.tick_params(axis="x", labelrotation=20, labelsize=8)  # nine variants' names side by side
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
