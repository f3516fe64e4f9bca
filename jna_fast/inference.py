"""Prediction on one video file, as ``JNA.from_checkpoint(path).predict(video)`` and ``python -m jna_fast.predict``.

The video is decoded and its flow computed on the fly (jna_fast/flow/online.py) with the algorithm and bound of
the training data (saved in the checkpoint), then sampled and cropped exactly as the evaluation does (TSN: T evenly
spaced snippets, 1/3/10 crops), through the same loader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .evaluate import DEFAULT_TEST_SEGMENTS
from .metrics import ranked_classes


@dataclass
class VideoPrediction:
    """The top-k classes of one video, and the attention the model put on each of its snippets."""

    video: str
    classes: list[str]                 # the top-k class names, most probable first
    class_indices: list[int]
    probabilities: list[float]         # softmax of the fused scores, averaged over the views
    snippet_starts: list[int]          # 0-based first frame of each snippet
    attention: list[float]             # the attention weight of each snippet (sums to 1)

    def __str__(self) -> str:
        lines = [f"{self.video}:"]
        lines += [f"  {p:6.1%}  {name}" for name, p in zip(self.classes, self.probabilities)]
        peak = max(range(len(self.attention)), key=self.attention.__getitem__)
        lines.append(f"  most attended snippet: frame {self.snippet_starts[peak]} "
                     f"(weight {self.attention[peak]:.2f} of {len(self.attention)} snippets)")
        return "\n".join(lines)


@dataclass
class VideoAnalysis:
    """A prediction with what the attention strip shows: the pictures of each real snippet of the first view."""

    prediction: VideoPrediction
    pictures: dict                     # "rgb": uint8 [T, S, S, 3], "flow_magnitude": [T, S, S] (per stream present)


def predict_video(model, video_path, *, top_k: int = 5, segments: int = DEFAULT_TEST_SEGMENTS, crops: int = 1,
                  device: str | torch.device | None = None) -> VideoPrediction:
    """Classify one video with a model loaded by ``JNA.from_checkpoint`` (it carries the class names and the data
    settings of its training)."""
    return _run(model, video_path, top_k=top_k, segments=segments, crops=crops, device=device,
                keep_pictures=False).prediction


def analyse_video(model, video_path, *, top_k: int = 5, segments: int = DEFAULT_TEST_SEGMENTS, crops: int = 1,
                  device: str | torch.device | None = None) -> VideoAnalysis:
    """:func:`predict_video`'s prediction, from the same computation, with the snippets' pictures for the
    attention strip (``jna_fast.evaluate.attention_strip_figure``)."""
    return _run(model, video_path, top_k=top_k, segments=segments, crops=crops, device=device, keep_pictures=True)


@torch.no_grad()
def _run(model, video_path, *, top_k: int, segments: int, crops: int, device, keep_pictures: bool) -> VideoAnalysis:
    from .data import build_loader
    from .evaluate import snippet_pictures
    from .experiment import autocast_context

    settings = getattr(model, "data_settings", None)
    if settings is None or getattr(model, "class_names", None) is None:
        raise ValueError("predict needs a model loaded with JNA.from_checkpoint(path): it uses the class names "
                         "and the data settings (crop size, flow algorithm, flips) saved with the weights")
    video_path = Path(video_path)
    if not video_path.is_file():
        raise FileNotFoundError(f"{video_path}: no such video file")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    loader = build_loader("video", video_path, subset="test", flow_source="online",
                          flow_algorithm=settings["flow_algorithm"], flow_bound=settings["flow_bound"],
                          num_segments=segments, flow_length=model.flow_length, size=settings["size"], batch_size=1,
                          backend="pyav", device="cpu", num_crops=crops, flip=settings["flip"], on_error="raise",
                          prefetch=0)
    model.eval()
    batch = next(iter(loader)).to(device)
    with autocast_context(settings.get("precision", "fp32"), device):
        out = model(batch.rgb, batch.flow, batch.view_mask())
    probabilities = batch.mean_over_views(out.logits.float().softmax(-1))[0].cpu()
    if not bool(probabilities.isfinite().all()):
        raise ValueError(f"{video_path}: the model's scores are not finite (NaN or inf), so there is no "
                         f"prediction to show")
    attention = batch.mean_over_views(out.attention.float())[0].cpu()
    real = batch.mask[0].cpu().bool()
    top = ranked_classes(probabilities.view(1, -1), top_k)[0].tolist()
    prediction = VideoPrediction(
        video=str(video_path), classes=[model.class_names[i] for i in top],
        class_indices=top, probabilities=probabilities[top].tolist(),
        snippet_starts=batch.indices[0].cpu()[real].tolist(), attention=attention[real].tolist())
    # The clip's first view (with one crop, the centre crop), its padding snippets left out.
    pictures = ({name: value[real.numpy()] for name, value in snippet_pictures(batch, 0).items()}
                if keep_pictures else {})
    return VideoAnalysis(prediction, pictures)
