"""Evaluate a checkpoint by the TSN test protocol: ``python -m jna_fast.evaluate CHECKPOINT --out DIR``.

T = 25 evenly spaced snippets per video (``--segments``), 1, 3 or 10 crops (``--crops``; 10 = the 4 corners and
the centre, and their mirror images with flow x negated, where the dataset allows flips), the scores (logits)
averaged over the views of a video. The dataset and split default to those saved in the checkpoint.

Writes into DIR:

- ``report.json``: ``top1``, ``top5``, ``mean_class_accuracy`` of the fused scores, the same for each branch alone
  (``top1_rgb``, ``top1_flow``, ...), ``per_class`` accuracy, and, on data with known discriminative windows (the
  synthetic set), ``attention_on_salient``, ``uniform_on_salient`` and ``top_snippet_in_window`` (see
  jna_fast/metrics.py), all of them also per class family (``families``); ``skipped``: the videos left out as bad
  data (``--on-error skip``, the default), each with its ``video`` and ``reason``, and ``skipped_list_lines``;
- ``predictions.jsonl``: per video its label, prediction, and the fused, RGB and flow scores (so that models and
  streams can be fused later) and its attention;
- ``confusion.png``: the confusion matrix;
- with ``--visualize N``: ``attention/<video>.png`` for N videos: the sampled RGB frames and the flow magnitude
  of each snippet with its attention weight, the true window marked where known.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from .cli import add_debug_option, number_in, run_command, torch_device
from .experiment import SalientWindows, autocast_context
from .metrics import (confusion_matrix, localisation, mean_class_accuracy, per_class_accuracy, predicted_classes,
                      topk_correct)

logger = logging.getLogger("jna_fast.evaluate")

DEFAULT_TEST_SEGMENTS = 25
REPORT_NAME = "report.json"


@dataclass
class Predictions:
    """What a model said about each video of a loader, its views averaged."""

    video_ids: list[str]
    labels: torch.Tensor                       # int64 [N]
    scores: torch.Tensor                       # float32 [N, K] fused logits
    scores_rgb: torch.Tensor | None            # float32 [N, K], None for a model without that branch
    scores_flow: torch.Tensor | None
    attention: torch.Tensor                    # float32 [N, T]
    indices: torch.Tensor                      # int64 [N, T] snippet start frames
    mask: torch.Tensor                         # bool [N, T]
    snippets: dict[str, dict] = field(default_factory=dict)  # video_id -> images kept for visualisation

    @classmethod
    def concatenate(cls, parts: list["Predictions"]) -> "Predictions":
        def cat(name):
            values = [getattr(part, name) for part in parts]
            return None if values[0] is None else torch.cat(values)

        snippets = {}
        for part in parts:
            snippets.update(part.snippets)
        return cls([video for part in parts for video in part.video_ids], cat("labels"), cat("scores"),
                   cat("scores_rgb"), cat("scores_flow"), cat("attention"), cat("indices"), cat("mask"), snippets)


def _per_clip(batch, per_view: torch.Tensor | None, kept: torch.Tensor) -> torch.Tensor | None:
    """[B*V, ...] per view -> [clips kept, ...] averaged over each clip's views, float32 on the CPU."""
    if per_view is None:
        return None
    return batch.mean_over_views(per_view.detach().float()).cpu()[kept]


@torch.no_grad()
def collect(model, loader, device: torch.device, precision: str = "fp32", keep_snippets: int = 0,
            progress: bool = False) -> Predictions:
    """Run ``model`` over ``loader`` (this rank's shard; gathered from every rank under torchrun). Rows that stand
    in for skipped clips (``batch.replaced``) are left out, so each clip counts once. Keeps the pictures of
    ``keep_snippets`` videos, spread over the classes."""
    model.eval()
    parts, kept_pictures, pictured = [], 0, {}
    for batch in tqdm(loader, desc="evaluate", unit="batch", disable=not progress, dynamic_ncols=True):
        batch = batch.to(device, non_blocking=True)
        with autocast_context(precision, device):
            out = model(batch.rgb, batch.flow, batch.view_mask())
        kept = ~batch.replaced.cpu()
        video_ids = [video for video, keep in zip(batch.video_ids, kept.tolist()) if keep]
        part = Predictions(
            video_ids=video_ids, labels=batch.label.cpu()[kept], scores=_per_clip(batch, out.logits, kept),
            scores_rgb=_per_clip(batch, out.logits_rgb, kept), scores_flow=_per_clip(batch, out.logits_flow, kept),
            attention=_per_clip(batch, out.attention, kept), indices=batch.indices.cpu()[kept],
            mask=batch.mask.cpu()[kept].bool())
        # Pictures of the first videos of each class in turn, so that the strips show several classes.
        per_class = math.ceil(keep_snippets / out.logits.shape[1])
        for row in (row for row, keep in enumerate(kept.tolist()) if keep):
            label = int(batch.label[row])
            if kept_pictures < keep_snippets and pictured.get(label, 0) < per_class:
                part.snippets[batch.video_ids[row]] = snippet_pictures(batch, row * batch.num_views)
                pictured[label] = pictured.get(label, 0) + 1
                kept_pictures += 1
        parts.append(part)
    predictions = Predictions.concatenate(parts)
    if dist.is_initialized():
        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, predictions)
        predictions = Predictions.concatenate(gathered)
    return predictions


def snippet_pictures(batch, row: int) -> dict:
    """uint8 RGB frames [T, S, S, 3] and flow magnitudes [T, S, S] (first flow field of each stack) of one view."""
    from .data import IMAGENET_MEAN, IMAGENET_STD

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    pictures = {}
    if batch.rgb is not None:
        rgb = batch.rgb[row].detach().float().cpu() * std + mean
        pictures["rgb"] = (rgb.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if batch.flow is not None:
        flow = batch.flow[row].detach().float().cpu()
        pictures["flow_magnitude"] = flow[:, 0:2].norm(dim=1).numpy()
    return pictures


def _accuracies(scores: torch.Tensor | None, labels: torch.Tensor, suffix: str = "") -> dict:
    if scores is None:
        return {f"top1{suffix}": None, f"top5{suffix}": None, f"mean_class_accuracy{suffix}": None}
    confusion = confusion_matrix(predicted_classes(scores), labels, scores.shape[1])
    return {f"top1{suffix}": float(topk_correct(scores, labels, 1).float().mean()),
            f"top5{suffix}": float(topk_correct(scores, labels, 5).float().mean()),
            f"mean_class_accuracy{suffix}": mean_class_accuracy(confusion)}


def _localisation(predictions: Predictions, windows: SalientWindows, rows: torch.Tensor) -> dict:
    scores = localisation(predictions.attention[rows], predictions.indices[rows], predictions.mask[rows],
                          [windows.windows[predictions.video_ids[int(row)]] for row in rows])
    return {name: float(values.mean()) for name, values in scores.items()}


def summarize(predictions: Predictions, class_names: list[str], windows: SalientWindows | None) -> dict:
    """The report: accuracies (fused and per branch), per class, and the attention's localisation."""
    labels = predictions.labels
    report = {"clips": len(labels)}
    for suffix, scores in (("", predictions.scores), ("_rgb", predictions.scores_rgb),
                           ("_flow", predictions.scores_flow)):
        report.update(_accuracies(scores, labels, suffix))
    confusion = confusion_matrix(predicted_classes(predictions.scores), labels, len(class_names))
    report["per_class"] = {name: (None if value != value else value) for name, value in
                           zip(class_names, per_class_accuracy(confusion).tolist())}
    if windows is None:
        return report
    everything = torch.arange(len(labels))
    report.update(_localisation(predictions, windows, everything))
    families = {}
    for family in sorted(set(windows.families[video] for video in predictions.video_ids)):
        rows = torch.tensor([row for row, video in enumerate(predictions.video_ids)
                             if windows.families[video] == family])
        entry = {"clips": len(rows)}
        for suffix, scores in (("", predictions.scores), ("_rgb", predictions.scores_rgb),
                               ("_flow", predictions.scores_flow)):
            entry[f"top1{suffix}"] = (None if scores is None
                                      else float(topk_correct(scores[rows], labels[rows], 1).float().mean()))
        entry.update(_localisation(predictions, windows, rows))
        families[family] = entry
    report["families"] = families
    return report


# --- files ---------------------------------------------------------------------------------------------------
def write_predictions(predictions: Predictions, class_names: list[str], path: Path) -> None:
    def row(tensor, index):
        return None if tensor is None else [round(v, 5) for v in tensor[index].tolist()]

    predicted = predicted_classes(predictions.scores).tolist()
    with open(path, "w", encoding="utf-8") as handle:
        for index, video in enumerate(predictions.video_ids):
            real = predictions.mask[index]
            handle.write(json.dumps({
                "video": video, "label": int(predictions.labels[index]),
                "class": class_names[int(predictions.labels[index])],
                "prediction": predicted[index],
                "scores": row(predictions.scores, index), "scores_rgb": row(predictions.scores_rgb, index),
                "scores_flow": row(predictions.scores_flow, index),
                "snippet_starts": predictions.indices[index][real].tolist(),
                "attention": [round(v, 5) for v in predictions.attention[index][real].tolist()],
            }) + "\n")


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (an error names the extra when it is missing)."""
    from ._optional import require

    require("jna_fast's plots", "matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(predictions: Predictions, class_names: list[str], path: Path) -> None:
    plt = pyplot()

    confusion = confusion_matrix(predicted_classes(predictions.scores), predictions.labels, len(class_names)).numpy()
    size = max(4.0, 0.35 * len(class_names) + 2)
    figure, axes = plt.subplots(figsize=(size + 1, size))
    image = axes.imshow(confusion, cmap="Blues")
    axes.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=7)
    axes.set_yticks(range(len(class_names)), class_names, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if len(class_names) <= 20:
        for (row, column), count in zip(((r, c) for r in range(len(class_names)) for c in range(len(class_names))),
                                        confusion.flatten()):
            if count:
                axes.text(column, row, str(count), ha="center", va="center", fontsize=7,
                          color="white" if count > confusion.max() / 2 else "black")
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_attention_strip(video_id: str, pictures: dict, attention, starts, mask, window: tuple[int, int] | None,
                         label: str | None, prediction: str, path: Path) -> None:
    """Write :func:`attention_strip_figure` to ``path``."""
    plt = pyplot()
    figure = attention_strip_figure(video_id, pictures, attention, starts, mask, window, label, prediction)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def attention_strip_image(video_id: str, pictures: dict, attention, starts, mask, window: tuple[int, int] | None,
                          label: str | None, prediction: str):
    """:func:`attention_strip_figure` as a uint8 RGB array [H, W, 3] (for a user interface; no file)."""
    import numpy as np

    plt = pyplot()
    figure = attention_strip_figure(video_id, pictures, attention, starts, mask, window, label, prediction)
    figure.set_dpi(100)
    figure.canvas.draw()
    image = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return image


def attention_strip_figure(video_id: str, pictures: dict, attention, starts, mask, window: tuple[int, int] | None,
                           label: str | None, prediction: str):
    """One column per real snippet: its RGB frame over its flow magnitude, its attention weight as a bar (a
    matplotlib figure; the caller closes it). ``label`` None: the true class is unknown (a user's video)."""
    import numpy as np

    plt = pyplot()

    columns = [t for t in range(len(attention)) if bool(mask[t])]
    rows = [name for name in ("rgb", "flow_magnitude") if name in pictures]
    figure, axes = plt.subplots(len(rows) + 1, len(columns), figsize=(1.1 * len(columns) + 0.5, 1.2 * len(rows) + 1.6),
                                squeeze=False, gridspec_kw={"height_ratios": [1] * len(rows) + [0.8]})
    peak = max(float(max(attention[t] for t in columns)), 1e-6)
    flow_scale = max(float(np.max(pictures["flow_magnitude"])), 1e-6) if "flow_magnitude" in pictures else 1.0
    for column, t in enumerate(columns):
        inside = window is not None and window[0] <= int(starts[t]) < window[1]
        for row, name in enumerate(rows):
            ax = axes[row][column]
            if name == "rgb":
                ax.imshow(pictures["rgb"][t])
            else:
                ax.imshow(pictures["flow_magnitude"][t], cmap="magma", vmin=0, vmax=flow_scale)
            ax.set_xticks([])
            ax.set_yticks([])
            if inside:
                for spine in ax.spines.values():
                    spine.set_edgecolor("limegreen")
                    spine.set_linewidth(2.5)
        bar = axes[len(rows)][column]
        bar.bar([0], [float(attention[t])], color="limegreen" if inside else "tab:blue")
        bar.set_ylim(0, peak * 1.05)
        bar.set_xticks([])
        bar.set_yticks([])
        bar.set_xlabel(f"{int(starts[t])}\n{float(attention[t]):.2f}", fontsize=6)
    title = f"{video_id}: {'' if label is None else f'true {label}, '}predicted {prediction}"
    if window is not None:
        title += f"; green = snippet starts in the window [{window[0]}, {window[1]})"
    figure.suptitle(title, fontsize=8)
    figure.tight_layout()
    return figure


def write_outputs(predictions: Predictions, class_names: list[str], windows: SalientWindows | None, out: Path,
                  extra: dict | None = None) -> dict:
    """report.json, predictions.jsonl, confusion.png, and the attention strips of the kept videos."""
    out.mkdir(parents=True, exist_ok=True)
    report = {**(extra or {}), **summarize(predictions, class_names, windows)}
    (out / REPORT_NAME).write_text(json.dumps(report, indent=1), encoding="utf-8")
    write_predictions(predictions, class_names, out / "predictions.jsonl")
    plot_confusion(predictions, class_names, out / "confusion.png")
    if predictions.snippets:
        strips = out / "attention"
        strips.mkdir(exist_ok=True)
        predicted = predicted_classes(predictions.scores).tolist()
        for video, pictures in predictions.snippets.items():
            index = predictions.video_ids.index(video)
            plot_attention_strip(
                video, pictures, predictions.attention[index], predictions.indices[index], predictions.mask[index],
                None if windows is None else windows.windows.get(video),
                class_names[int(predictions.labels[index])], class_names[predicted[index]],
                strips / (video.replace("/", "__") + ".png"))
    return report


# --- the command ---------------------------------------------------------------------------------------------
def skipped_videos(loader) -> list[dict]:
    """The videos the loader skipped as bad data in its last epoch, from every rank: ``{"video", "reason"}``."""
    skipped = loader.last_epoch_skipped
    if dist.is_initialized():
        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, skipped)
        skipped = [entry for part in gathered for entry in part]
    return sorted(skipped, key=lambda entry: entry["video"])


def evaluate_checkpoint(checkpoint, out, *, segments: int = DEFAULT_TEST_SEGMENTS, crops: int = 1,
                        visualize: int = 0, batch_size: int | None = None, device: str | None = None,
                        overrides: dict | None = None, progress: bool = True) -> dict:
    """Evaluate ``checkpoint`` by the TSN protocol and write the outputs into ``out``; returns the report."""
    from .checkpoint import model_from_checkpoint
    from .config import config_from_dict
    from .experiment import build_loader_for, resolve_loader_device
    from .runtime import setup_distributed

    model, cfg, class_names = model_from_checkpoint(checkpoint)
    if overrides:
        cfg = config_from_dict({**cfg.to_dict(), **overrides}, "evaluate options")
    env = setup_distributed(device)
    if env.is_main:
        Path(out).mkdir(parents=True, exist_ok=True)  # an unwritable --out fails now, not after the evaluation
    model = model.to(env.device)
    backend, loader_device = resolve_loader_device(cfg, env.device)
    loader = build_loader_for(cfg, "test", num_segments=segments, device=loader_device, backend=backend,
                              num_classes=len(class_names), num_crops=crops,
                              batch_size=batch_size or max(1, cfg.batch_size // max(1, crops)))
    predictions = collect(model, loader, env.device, cfg.precision, keep_snippets=visualize,
                          progress=progress and env.is_main)
    skipped = skipped_videos(loader)
    if not env.is_main:
        return {}
    settings = {"checkpoint": str(checkpoint), "dataset": cfg.dataset, "split": cfg.split, "segments": segments,
                "crops": crops, "views_per_video": loader.num_views, "skipped": skipped,
                "skipped_list_lines": loader.list_issues}
    return write_outputs(predictions, class_names, SalientWindows.of(cfg), Path(out), settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jna_fast.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint written by python -m jna_fast.train (best.pt, last.pt)")
    parser.add_argument("--out", required=True, help="folder for report.json and the rest")
    parser.add_argument("--segments", type=number_in(int, minimum=1), default=DEFAULT_TEST_SEGMENTS,
                        help="snippets per video (25)")
    parser.add_argument("--crops", type=int, choices=(1, 3, 10), default=1, help="views per video (1)")
    parser.add_argument("--visualize", type=number_in(int, minimum=0), default=0, metavar="N",
                        help="attention strips for N videos")
    parser.add_argument("--batch-size", type=number_in(int, minimum=1),
                        help="videos per batch (default: the training batch / crops)")
    parser.add_argument("--dataset", help="dataset kind (default: the checkpoint's)")
    parser.add_argument("--root", help="dataset root (default: the checkpoint's)")
    parser.add_argument("--frames-root", help="rawframes folder (default: the checkpoint's)")
    parser.add_argument("--split", type=int, help="split (default: the checkpoint's)")
    parser.add_argument("--val-list", help="list file of the videos to evaluate (videos/rawframes kinds)")
    parser.add_argument("--data-backend", choices=("auto", "dali", "pyav"))
    parser.add_argument("--flow", choices=("rawframes", "online"), help="where flow comes from (default: the "
                        "checkpoint's)")
    # cuda:N is left out: under torchrun each process takes the GPU of its LOCAL_RANK.
    parser.add_argument("--device", type=torch_device, choices=("cpu", "cuda"), help="default: CUDA when available")
    parser.add_argument("--no-progress", action="store_true")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # The dataset options are TrainConfig options: the configuration checks their values (config.py).
    overrides = {name: getattr(args, name) for name in ("dataset", "root", "frames_root", "split", "val_list",
                                                         "data_backend", "flow") if getattr(args, name) is not None}

    def evaluate_and_print() -> None:
        report = evaluate_checkpoint(args.checkpoint, args.out, segments=args.segments, crops=args.crops,
                                     visualize=args.visualize, batch_size=args.batch_size, device=args.device,
                                     overrides=overrides, progress=not args.no_progress)
        if report:
            shown = {key: value for key, value in report.items()
                     if isinstance(value, (int, float)) and value is not None}
            print(json.dumps(shown, indent=1))

    return run_command(evaluate_and_print, args.debug)


if __name__ == "__main__":
    sys.exit(main())
