"""Pictures: of a long-video prediction (jna_fast.inference.predict_long_video), and of an evaluation (the
confusion matrix, the attention strips). matplotlib is imported only when a picture is drawn (:func:`pyplot`).

Long videos:

- :func:`write_predictions_json`: ``predictions.json``, the prediction's JSON form;
- :func:`write_timeline`: a PNG of the top classes' probabilities over time, window by window, with the attention
  each window put on its snippets drawn underneath (needs matplotlib, imported only here);
- :func:`write_annotated_video`: an MP4 copy of the video with the label and score of the current window drawn on
  every frame, written in a second streaming pass over the video (the windows must all be scored before the
  first frame can be labelled by the window centred nearest to it), so memory stays flat here too.

Evaluation: :func:`plot_confusion`, and :func:`attention_strip_figure` (each snippet's RGB frame, flow magnitude and
attention weight, and its spatial attention map drawn over the frame for a model whose spatial pooling gives maps)
as a file (:func:`plot_attention_strip`) or an image array (:func:`attention_strip_image`), from the pictures
:func:`snippet_pictures` takes out of a batch.

Every file is written atomically (jna_fast/files.py): a failure leaves what was there before, and a link at its
name is replaced, never written through.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import torch

from ._optional import require
from .io.errors import DataError
from .data.transforms import IMAGENET_MEAN, IMAGENET_STD
from .files import write_atomically
from .metrics import confusion_matrix, predicted_classes

TIMELINE_CLASSES = 5
# The spatial attention overlay's full colour: this many times the uniform map's weight (and above).
SPATIAL_SCALE = 4.0


def write_predictions_json(prediction, path) -> None:
    """``prediction.to_dict()`` as indented JSON."""
    text = json.dumps(prediction.to_dict(), indent=1).encode("utf-8")
    write_atomically(path, lambda handle: handle.write(text))


def timeline_classes(prediction, count: int = TIMELINE_CLASSES) -> list[int]:
    """The classes a timeline shows: the ``count`` best by the video-level mean (ties: lower index first)."""
    mean = np.mean([w.scores for w in prediction.windows], axis=0)
    return sorted(range(len(mean)), key=lambda c: (-mean[c], c))[:count]


def write_timeline(prediction, path, classes: int = TIMELINE_CLASSES) -> None:
    """The timeline PNG of ``prediction`` (a LongVideoPrediction) at ``path``: above, the probability of the
    ``classes`` best classes in each window, placed at the window's centre; below, one row per window with a dot
    per snippet at its start time, coloured by its attention relative to uniform (1 = the mean weight)."""
    plt = pyplot()
    fps, windows = prediction.fps, prediction.windows
    centres = np.array([(w.start + w.end) / 2 for w in windows])
    figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(9, 5.5),
                                         gridspec_kw={"height_ratios": [2, 1.3]})
    for c in timeline_classes(prediction, classes):
        top.plot(centres, [w.scores[c] for w in windows], marker="o", markersize=3,
                 label=prediction.class_names[c])
    top.set_ylim(0, 1)
    top.set_ylabel("probability")
    top.legend(fontsize=7, loc="upper right", ncol=2)
    top.grid(alpha=0.3)
    top.set_title(f"{Path(prediction.video).name}: {len(windows)} windows of {prediction.window:g} s every "
                  f"{prediction.stride:g} s; video: {prediction.classes[0]} ({prediction.probabilities[0]:.0%}, "
                  f"mean of the windows)", fontsize=8)
    times = [t / fps for w in windows for t in w.snippet_starts]
    rows = [w.index for w in windows for _ in w.snippet_starts]
    relative = [a * len(w.attention) for w in windows for a in w.attention]
    # Smaller dots as windows multiply, so a long video's rows stay apart.
    dots = bottom.scatter(times, rows, c=relative, cmap="viridis", s=max(1.0, min(10.0, 400 / len(windows))),
                          marker="s", vmin=0,
                          vmax=max(2.0, max(relative)))
    bottom.set_ylabel("window")
    bottom.set_xlabel("time (s)")
    bottom.invert_yaxis()
    bottom.set_xlim(0, prediction.duration)
    colourbar = figure.colorbar(dots, ax=[top, bottom], location="right", fraction=0.03, pad=0.02)
    colourbar.set_label("snippet attention / uniform", fontsize=7)
    save_figure(figure, path, dpi=110)


def frame_windows(prediction) -> np.ndarray:
    """For each frame of the video, the index of the window whose centre is nearest to it (ties: the earlier)."""
    centres = np.array([w.first_frame + w.num_frames / 2 for w in prediction.windows])
    if len(centres) == 1:
        return np.zeros(prediction.num_frames, dtype=np.int64)
    frames = np.arange(prediction.num_frames) + 0.5  # a frame's centre, as a window's centre is counted
    after = np.clip(np.searchsorted(centres, frames), 1, len(centres) - 1)
    before = after - 1
    return np.where(np.abs(frames - centres[before]) <= np.abs(centres[after] - frames), before, after)


def _label(image: np.ndarray, lines: list[str]) -> np.ndarray:
    """``image`` (RGB uint8) with ``lines`` written top-left in white on a dark band, sized to its width."""
    import cv2

    height, width = image.shape[:2]
    scale = max(0.3, width / 640)
    thickness = max(1, round(scale * 1.5))
    line_height = int(22 * scale) + 4
    band = image[: line_height * len(lines) + 4]
    band[:] = (band * 0.4).astype(np.uint8)  # darken, so the text reads on any background
    for row, text in enumerate(lines):
        cv2.putText(image, text, (4, line_height * (row + 1)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                    thickness, cv2.LINE_AA)
    return image


def write_annotated_video(prediction, video_path, path, codec: str | None = None) -> int:
    """An MP4 copy of ``video_path`` at ``path``, each frame labelled with the top class and score of its window
    (:func:`frame_windows`) and the time; decoded and encoded one frame at a time. Returns the frames written
    (the video's, all of them). ``codec``: libx264 when this FFmpeg has it, else mpeg4."""
    import av

    from .io.video import VideoStream


    windows = prediction.windows
    chosen = frame_windows(prediction)
    if codec is None:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    written = 0

    def encode(handle) -> None:
        nonlocal written
        with VideoStream(video_path) as video, av.open(handle, "w", format="mp4") as container:
            stream = container.add_stream(codec, rate=video.rate)
            # 4:2:0 chroma needs even sides: odd ones get one black row or column.
            stream.height, stream.width = video.height + video.height % 2, video.width + video.width % 2
            stream.pix_fmt = "yuv420p"
            for index, rgb in enumerate(video):
                if index >= len(chosen):
                    raise DataError(f"{video_path}: more frames than when it was scored ({prediction.num_frames}); "
                                    f"the file changed in between")
                window = windows[int(chosen[index])]
                image = np.zeros((stream.height, stream.width, 3), np.uint8)
                image[: rgb.shape[0], : rgb.shape[1]] = rgb
                _label(image, [f"{window.classes[0]} {window.probabilities[0]:.0%}",
                               f"{index / prediction.fps:.1f}s"])
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
                written += 1
            for packet in stream.encode():
                container.mux(packet)
        if written != prediction.num_frames:
            raise DataError(f"{video_path}: {written} frames decoded, {prediction.num_frames} when it was scored; "
                            f"the file changed in between")

    write_atomically(path, encode)
    return written


# --- evaluation: the confusion matrix and the attention strips -------------------------------------------------
def snippet_pictures(batch, row: int, spatial_attention: torch.Tensor | None = None) -> dict:
    """uint8 RGB frames [T, S, S, 3] and flow magnitudes [T, S, S] (first flow field of each stack) of one view, and
    the view's spatial attention maps [T, H, W] float32 when the model gives them (``spatial_attention``: the
    output's ``[B*V, T, H, W]``, or None)."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    pictures = {}
    if batch.rgb is not None:
        rgb = batch.rgb[row].detach().float().cpu() * std + mean
        pictures["rgb"] = (rgb.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if batch.flow is not None:
        flow = batch.flow[row].detach().float().cpu()
        pictures["flow_magnitude"] = flow[:, 0:2].norm(dim=1).numpy()
    if spatial_attention is not None:
        pictures["spatial_attention"] = spatial_attention[row].detach().float().cpu().numpy()
    return pictures


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (an error names the extra when it is missing)."""
    require("jna_fast's plots", "matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path, dpi: int) -> None:
    """Write a matplotlib ``figure`` to ``path`` as a PNG, atomically (a link at ``path`` is replaced, never
    written through), and close it."""
    try:
        write_atomically(path, lambda handle: figure.savefig(handle, format="png", dpi=dpi))
    finally:
        pyplot().close(figure)


def plot_confusion(predictions, class_names: list[str], path: Path) -> None:
    """The confusion matrix of ``predictions`` (jna_fast.evaluation.Predictions) as a PNG."""
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
    save_figure(figure, path, dpi=110)


def plot_attention_strip(video_id: str, pictures: dict, attention, starts, mask, window: tuple[int, int] | None,
                         label: str | None, prediction: str, path: Path) -> None:
    """Write :func:`attention_strip_figure` to ``path``."""
    figure = attention_strip_figure(video_id, pictures, attention, starts, mask, window, label, prediction)
    save_figure(figure, path, dpi=100)


def attention_strip_image(video_id: str, pictures: dict, attention, starts, mask, window: tuple[int, int] | None,
                          label: str | None, prediction: str):
    """:func:`attention_strip_figure` as a uint8 RGB array [H, W, 3] (for a user interface; no file)."""
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
    matplotlib figure; the caller closes it); with ``pictures["spatial_attention"]``, each snippet's spatial map
    drawn over its first picture (:func:`_overlay_spatial_attention`). ``label`` None: the true class is unknown (a
    user's video)."""
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
            if row == 0 and "spatial_attention" in pictures:
                _overlay_spatial_attention(ax, pictures["spatial_attention"][t], pictures[name][t].shape[:2])
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
    if "spatial_attention" in pictures:
        title += f"\noverlay: spatial attention, full colour at {SPATIAL_SCALE:g} x the uniform weight"
    figure.suptitle(title, fontsize=8)
    figure.tight_layout()
    return figure


def _overlay_spatial_attention(ax, weights, size: tuple[int, int]) -> None:
    """Draw a snippet's spatial attention map ``weights`` [H, W] over its picture of ``size`` pixels, stretched to
    cover it (each cell over the pixels its feature map position sees), coloured by its weight relative to the
    uniform map's (1: the weight the global average gives every position) on one scale for every snippet, full
    colour from :data:`SPATIAL_SCALE` times the uniform weight up."""
    weights = np.asarray(weights, dtype=np.float32)
    relative = weights * weights.size
    height, width = size
    ax.imshow(relative, cmap="inferno", alpha=0.45, vmin=0, vmax=SPATIAL_SCALE,
              extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="bilinear")
