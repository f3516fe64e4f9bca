"""Evaluation: a model's predictions over a loader (:func:`collect`), the report they make (:func:`summarize`:
accuracies, per class, the attention's localisation, and what the parts of the abstract's rejected designs add:
the branch selection's rates, the spatial attention's peak) and its files (:func:`write_outputs`); and a checkpoint
evaluated end to end by the TSN test protocol (:func:`evaluate_checkpoint`), as ``python -m jna_fast.evaluate`` and
the final evaluation of a training run do. The pictures are jna_fast/visualize.py's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from .builders import build_loader_for, resolve_loader_device, salient_windows
from .config import Config, with_overrides
from .data.synthetic import SalientWindows
from .files import output_folder, refuse_links, write_text_atomically
from .inference import TEST_CROPS, TEST_SEGMENTS, Predictor
from .metrics import (branch_selection, confusion_matrix, localisation, mean_class_accuracy, per_class_accuracy,
                      predicted_classes, spatial_peak, topk_correct)
from .runtime import Distributed, autocast_context, setup_distributed
from .visualize import plot_attention_strip, plot_confusion, snippet_pictures

REPORT_NAME = "report.json"
PREDICTIONS_NAME = "predictions.jsonl"
CONFUSION_NAME = "confusion.png"
STRIPS_DIR = "attention"
# What an evaluation writes into its folder: files replaced whole (a link at their name replaced, never written
# through), and the folder of the attention strips (refused when it is a link).
EVALUATION_OUTPUTS = (REPORT_NAME, PREDICTIONS_NAME, CONFUSION_NAME, STRIPS_DIR)


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
    # float32 [N, 2]: the share of the clip's views whose gate selected the RGB, the flow branch (a model whose
    # fusion is branch_selection; else None)
    branch_selection: torch.Tensor | None = None
    # float32 [N] each: metrics.spatial_peak of a model whose spatial pooling gives maps (else None)
    spatial_peak: torch.Tensor | None = None
    spatial_peak_uniform: torch.Tensor | None = None
    snippets: dict[str, dict] = field(default_factory=dict)  # video_id -> images kept for visualisation

    @classmethod
    def concatenate(cls, parts: list["Predictions"]) -> "Predictions":
        def cat(name):
            values = [getattr(part, name) for part in parts]
            return None if values[0] is None else torch.cat(values)

        snippets = {}
        for part in parts:
            snippets.update(part.snippets)
        tensors = {spec.name: cat(spec.name) for spec in fields(cls)
                   if spec.name not in ("video_ids", "snippets")}
        return cls([video for part in parts for video in part.video_ids], snippets=snippets, **tensors)


def _part_outputs(batch, out, kept: torch.Tensor) -> dict:
    """The per-clip figures of the outputs a model's parts give beyond the contract (Part.outputs()): the branch
    its gate selected, the peak of its spatial maps; {} for a model without them."""
    figures = {}
    if out.branch_gate is not None:
        figures["branch_selection"] = _per_clip(batch, branch_selection(out.branch_gate), kept)
    if out.spatial_attention is not None:
        for name, values in spatial_peak(out.spatial_attention, batch.view_mask()).items():
            figures[name] = _per_clip(batch, values, kept)
    return figures


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
            mask=batch.mask.cpu()[kept].bool(), **_part_outputs(batch, out, kept))
        # Pictures of the first videos of each class in turn, so that the strips show several classes.
        per_class = math.ceil(keep_snippets / out.logits.shape[1])
        for row in (row for row, keep in enumerate(kept.tolist()) if keep):
            label = int(batch.label[row])
            if kept_pictures < keep_snippets and pictured.get(label, 0) < per_class:
                part.snippets[batch.video_ids[row]] = snippet_pictures(batch, row * batch.num_views,
                                                                       out.spatial_attention)
                pictured[label] = pictured.get(label, 0) + 1
                kept_pictures += 1
        parts.append(part)
    predictions = Predictions.concatenate(parts)
    if dist.is_initialized():
        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, predictions)
        predictions = Predictions.concatenate(gathered)
    return predictions


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


def _part_figures(predictions: Predictions, rows: torch.Tensor) -> dict:
    """Over the clips ``rows``: the share of them (of their views) for which the gate selected each branch
    (``selected_rgb``, ``selected_flow``) and the spatial maps' mean peak (``spatial_peak``, against the uniform
    map's ``spatial_peak_uniform``), for a model whose parts give them; {} otherwise."""
    figures = {}
    if predictions.branch_selection is not None:
        shares = predictions.branch_selection[rows].mean(0).tolist()
        figures.update(selected_rgb=shares[0], selected_flow=shares[1])
    for name in ("spatial_peak", "spatial_peak_uniform"):
        if getattr(predictions, name) is not None:
            figures[name] = float(getattr(predictions, name)[rows].mean())
    return figures


def summarize(predictions: Predictions, class_names: list[str], windows: SalientWindows | None) -> dict:
    """The report: accuracies (fused and per branch), per class, the figures of the parts that give more
    (:func:`_part_figures`) and the attention's localisation."""
    labels = predictions.labels
    report = {"clips": len(labels)}
    for suffix, scores in (("", predictions.scores), ("_rgb", predictions.scores_rgb),
                           ("_flow", predictions.scores_flow)):
        report.update(_accuracies(scores, labels, suffix))
    confusion = confusion_matrix(predicted_classes(predictions.scores), labels, len(class_names))
    report["per_class"] = {name: (None if value != value else value) for name, value in
                           zip(class_names, per_class_accuracy(confusion).tolist())}
    everything = torch.arange(len(labels))
    report.update(_part_figures(predictions, everything))
    if windows is None:
        return report
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
        entry.update(_part_figures(predictions, rows))
        families[family] = entry
    report["families"] = families
    return report


# --- files ---------------------------------------------------------------------------------------------------
def write_predictions(predictions: Predictions, class_names: list[str], path: Path) -> None:
    def row(tensor, index):
        return None if tensor is None else [round(v, 5) for v in tensor[index].tolist()]

    predicted = predicted_classes(predictions.scores).tolist()
    lines = []
    for index, video in enumerate(predictions.video_ids):
        real = predictions.mask[index]
        lines.append(json.dumps({
            "video": video, "label": int(predictions.labels[index]),
            "class": class_names[int(predictions.labels[index])],
            "prediction": predicted[index],
            "scores": row(predictions.scores, index), "scores_rgb": row(predictions.scores_rgb, index),
            "scores_flow": row(predictions.scores_flow, index),
            "snippet_starts": predictions.indices[index][real].tolist(),
            "attention": [round(v, 5) for v in predictions.attention[index][real].tolist()],
            **({} if predictions.branch_selection is None
               else {"selected_rgb": round(float(predictions.branch_selection[index, 0]), 5)}),
        }) + "\n")
    write_text_atomically(path, "".join(lines))


def write_outputs(predictions: Predictions, class_names: list[str], windows: SalientWindows | None, out: Path,
                  extra: dict | None = None) -> dict:
    """report.json, predictions.jsonl, confusion.png, and the attention strips of the kept videos
    (:data:`EVALUATION_OUTPUTS`)."""
    out.mkdir(parents=True, exist_ok=True)
    report = {**(extra or {}), **summarize(predictions, class_names, windows)}
    write_text_atomically(out / REPORT_NAME, json.dumps(report, indent=1))
    write_predictions(predictions, class_names, out / PREDICTIONS_NAME)
    plot_confusion(predictions, class_names, out / CONFUSION_NAME)
    if predictions.snippets:
        strips = output_folder(out, STRIPS_DIR)
        predicted = predicted_classes(predictions.scores).tolist()
        for video, pictures in predictions.snippets.items():
            index = predictions.video_ids.index(video)
            plot_attention_strip(
                video, pictures, predictions.attention[index], predictions.indices[index], predictions.mask[index],
                None if windows is None else windows.windows.get(video),
                class_names[int(predictions.labels[index])], class_names[predicted[index]],
                strips / (video.replace("/", "__") + ".png"))
    return report


# --- a checkpoint, end to end ----------------------------------------------------------------------------------
def skipped_videos(loader) -> list[dict]:
    """The videos the loader skipped as bad data in its last epoch, from every rank: ``{"video", "reason"}``."""
    skipped = loader.last_epoch_skipped
    if dist.is_initialized():
        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, skipped)
        skipped = [entry for part in gathered for entry in part]
    return sorted(skipped, key=lambda entry: entry["video"])


def evaluate_checkpoint(checkpoint, out, *, segments: int = TEST_SEGMENTS, crops: int = TEST_CROPS,
                        visualize: int = 0, batch_size: int | None = None, device: str | None = None,
                        overrides: dict | None = None, progress: bool = True) -> dict:
    """Evaluate ``checkpoint`` by the TSN protocol and write the outputs into ``out``; returns the report."""
    trained = Predictor.from_checkpoint(checkpoint)
    cfg = trained.config
    if overrides:
        cfg = with_overrides(cfg, overrides, "evaluate options")
    protocol = EvaluationProtocol(segments, crops, visualize, batch_size, progress)
    return evaluate_model(trained.model, cfg, trained.class_names, out, protocol, setup_distributed(device),
                          str(checkpoint))


@dataclass(frozen=True)
class EvaluationProtocol:
    """How :func:`evaluate_model` evaluates: snippets and crops per video, attention strips, videos per batch
    (None: the training batch / crops), a progress bar."""

    segments: int = TEST_SEGMENTS
    crops: int = TEST_CROPS
    visualize: int = 0
    batch_size: int | None = None
    progress: bool = True


def evaluate_model(model, cfg: Config, class_names: list[str], out, protocol: EvaluationProtocol,
                   env: Distributed, checkpoint: str) -> dict:
    """Evaluate ``model`` (configured by ``cfg``; the same on every rank) by the TSN protocol on ``cfg``'s test
    split, each rank its shard, and write the outputs into ``out`` from the main process, naming ``checkpoint`` as
    the model's file; returns the report (on the main process; {} on the others). Training's final evaluation
    passes the model it holds, so that no rank reads a file another rank writes."""
    if env.is_main:
        # An unwritable --out, or a link as the strips' folder, fails now, not after the evaluation.
        Path(out).mkdir(parents=True, exist_ok=True)
        refuse_links([Path(out) / STRIPS_DIR] if protocol.visualize else [])
    model = model.to(env.device)
    backend, loader_device = resolve_loader_device(cfg, env.device)
    crops = protocol.crops
    loader = build_loader_for(cfg, "test", num_segments=protocol.segments, device=loader_device, backend=backend,
                              num_classes=len(class_names), num_crops=crops,
                              batch_size=protocol.batch_size or max(1, cfg.optim.batch_size // max(1, crops)))
    predictions = collect(model, loader, env.device, cfg.run.precision, keep_snippets=protocol.visualize,
                          progress=protocol.progress and env.is_main)
    skipped = skipped_videos(loader)
    if not env.is_main:
        return {}
    settings = {"checkpoint": checkpoint, "dataset": cfg.data.dataset, "split": cfg.data.split, "segments": protocol.segments,
                "crops": crops, "views_per_video": loader.num_views, "skipped": skipped,
                "skipped_list_lines": loader.list_issues}
    return write_outputs(predictions, class_names, salient_windows(cfg), Path(out), settings)
