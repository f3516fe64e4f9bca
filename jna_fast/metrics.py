"""Classification and attention-localisation metrics, on plain tensors (shared by training and evaluation).

Localisation, on data whose discriminative window is known (the synthetic set records it): a snippet is inside the
window ``[start, end)`` when its start frame is. Per clip:

- ``attention_on_salient``: the attention mass on snippets inside the window;
- ``uniform_on_salient``: the mass a uniform attention over the real snippets would put there (the chance level);
- ``top_snippet_in_window``: 1 when the most-attended snippet is inside the window, else 0.

The parts that stand for the abstract's rejected designs (docs/design.md §2.8), per clip:

- :func:`branch_selection`: which branch the ``branch_selection`` fusion's gate selected;
- :func:`spatial_peak`: the largest weight of the spatial attention's maps, against the uniform map's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .models.parts.fusion_branch_selection import selects_rgb


def snippets_in_window(indices: torch.Tensor, mask: torch.Tensor | None,
                       windows: Sequence[tuple[int, int]]) -> torch.Tensor:
    """bool [B, T]: the real snippets whose start frame ``indices[b, t]`` lies in clip b's ``[start, end)``."""
    bounds = torch.tensor(windows, dtype=indices.dtype, device=indices.device).view(-1, 2)
    inside = (indices >= bounds[:, :1]) & (indices < bounds[:, 1:])
    return inside if mask is None else inside & mask.to(torch.bool)


def localisation(attention: torch.Tensor, indices: torch.Tensor, mask: torch.Tensor | None,
                 windows: Sequence[tuple[int, int]]) -> dict[str, torch.Tensor]:
    """Per clip (float [B] each): ``attention_on_salient``, ``uniform_on_salient``, ``top_snippet_in_window``."""
    attention = attention.float()
    inside = snippets_in_window(indices, mask, windows).float()
    real = torch.ones_like(attention) if mask is None else mask.float()
    top = attention.masked_fill(real == 0, float("-inf")).argmax(1, keepdim=True)
    return {
        "attention_on_salient": (attention * inside).sum(1),
        "uniform_on_salient": inside.sum(1) / real.sum(1).clamp_min(1),
        "top_snippet_in_window": inside.gather(1, top).squeeze(1),
    }


def branch_selection(gate: torch.Tensor) -> torch.Tensor:
    """float [B, 2]: one-hot of the branch (RGB, flow) that the gate weights ``[B, 2]`` select at evaluation."""
    rgb = selects_rgb(gate).float()
    return torch.stack([rgb, 1 - rgb], 1)


def spatial_peak(maps: torch.Tensor, mask: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Per clip (float [B] each), from spatial attention maps ``[B, T, H, W]``: ``spatial_peak``, the largest weight
    of a snippet's map averaged over the real snippets (1: all of it on one position), and
    ``spatial_peak_uniform``, that of the uniform map (1 / (H W): the global average's)."""
    peaks = maps.float().flatten(2).amax(-1)
    real = torch.ones_like(peaks) if mask is None else mask.to(peaks.device).float()
    positions = maps.shape[2] * maps.shape[3]
    return {"spatial_peak": (peaks * real).sum(1) / real.sum(1).clamp_min(1),
            "spatial_peak_uniform": torch.full_like(peaks[:, 0], 1 / positions)}


def ranked_classes(scores: torch.Tensor, k: int) -> torch.Tensor:
    """int64 [N, k]: the k classes of highest score per row, best first; equal scores rank by class index, lower
    first (torch.argmax's rule; topk leaves ties in no set order). k is capped at the number of classes. The one
    tie rule of every prediction, top-k accuracy and confusion matrix."""
    return torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :min(k, scores.shape[1])]


def predicted_classes(scores: torch.Tensor) -> torch.Tensor:
    """int64 [N]: the predicted class per row, ties to the lower class index (see ranked_classes)."""
    return scores.argmax(1)


def topk_correct(scores: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """bool [N]: the label is among the k best-ranked classes (ranked_classes: ties to the lower index)."""
    return (ranked_classes(scores, k) == labels.view(-1, 1)).any(1)


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int64 [K, K]: row = true class, column = predicted class."""
    flat = labels.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_class_accuracy(confusion: torch.Tensor) -> torch.Tensor:
    """float [K]: recall of each class; NaN for a class with no test clip."""
    totals = confusion.sum(1).double()
    return torch.where(totals > 0, confusion.diag().double() / totals.clamp_min(1), torch.nan)


def mean_class_accuracy(confusion: torch.Tensor) -> float:
    """The mean of the per-class accuracies over the classes that have test clips (UCF101/HMDB51 practice)."""
    per_class = per_class_accuracy(confusion)
    present = ~per_class.isnan()
    return float(per_class[present].mean()) if present.any() else float("nan")
