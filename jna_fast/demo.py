"""A browser demo of a trained checkpoint: ``python -m jna_fast.demo CHECKPOINT [--port 7860] [--host 127.0.0.1]``.

Upload a video (or pick one of the bundled synthetic examples, offered when the checkpoint was trained on the
synthetic set) and the page shows the top-5 classes with their probabilities and the attention strip: each
snippet's RGB frame, its flow magnitude and its attention weight; for a video longer than two windows
(``--window``, 2 s), the timeline of ``python -m jna_fast.predict --window``: each window's class probabilities
over time and the attention on its snippets. The video goes through the same inference code
as ``python -m jna_fast.predict`` and ``Predictor.predict`` (``jna_fast.inference``), so the page shows what they print.

Needs gradio (``pip install 'jna_fast[demo]'``); importing this module does not.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ._optional import require
from .builders import cache_root
from .cli import REPORTED_ERRORS, add_debug_option, describe, number_in, run_command, torch_device
from .data.synthetic import (CLASS_CATALOGUE, GENERATOR_VERSION, encode_video, make_synthetic, plan_video,
                             render_video, video_name)
from .files import output_folder, write_atomically
from .inference import TEST_CROPS, TEST_SEGMENTS, Predictor, check_window_seconds
from .visualize import attention_strip_image, write_timeline

logger = logging.getLogger("jna_fast.demo")

DEFAULT_PORT = 7860
DEFAULT_HOST = "127.0.0.1"
TOP_K = 5
EXAMPLE_CLASSES = 4          # synthetic examples offered: one clip of each of the checkpoint's first classes
# Groups count from 1 in every synthetic dataset, so group 0's clips were in no checkpoint's training or test set.
EXAMPLE_GROUP, EXAMPLE_CLIP = 0, 1


@dataclass
class DemoResult:
    """What the page shows for one video; on an error, only ``message`` (an ``error: ...`` line)."""

    message: str
    top: dict[str, float] | None = None         # the top-k class names -> probabilities, most probable first
    strip: "object | None" = None               # the attention strip, uint8 RGB [H, W, 3] (numpy)
    prediction: "object | None" = None          # the jna_fast.inference.VideoPrediction
    timeline: str | None = None                 # PNG of the sliding-window timeline, for a long video


class Demo:
    """The demo's computation, without any user interface: a video file in, :class:`DemoResult` out."""

    def __init__(self, predictor: Predictor, *, segments: int = TEST_SEGMENTS, crops: int = TEST_CROPS,
                 top_k: int = TOP_K, window: float = 2.0, stride: float = 1.0):
        self.predictor, self.segments, self.crops, self.top_k = predictor, segments, crops, top_k
        self.window, self.stride = window, stride
        self._timelines = None  # a folder of this process's own, made on the first long video

    def timeline(self, video) -> str | None:
        """The timeline PNG of ``video`` when it lasts more than two windows (else None): the sliding windows of
        ``python -m jna_fast.predict --window``, drawn by the same code."""
        from .io.video import VideoStream, probe_video  # the video extra (PyAV)

        with VideoStream(video) as stream:  # opened for its frame rate only, not decoded
            fps = stream.fps
        if probe_video(Path(video)).num_frames / fps <= 2 * self.window:
            return None
        prediction = self.predictor.predict_long_video(video, window=self.window, stride=self.stride,
                                        top_k=self.top_k, segments=self.segments, crops=self.crops)
        if self._timelines is None:
            self._timelines = Path(tempfile.mkdtemp(prefix="jna_fast_demo_"))
        path = self._timelines / f"timeline_{len(list(self._timelines.iterdir()))}.png"
        write_timeline(prediction, path)
        return str(path)

    def classify(self, video: str | os.PathLike | None) -> DemoResult:
        """Classify ``video`` as ``Predictor.predict`` does and draw its attention strip. Bad input (a corrupt or
        missing file, a video too short) gives a result whose message says so; anything else is a bug and raises."""
        if video is None:
            return DemoResult("Upload a video or pick an example.")
        try:
            analysis = self.predictor.analyse(video, top_k=self.top_k, segments=self.segments, crops=self.crops)
        except REPORTED_ERRORS as error:
            logger.warning("%s", describe(error))
            # The page names the file as its user knows it, not by the server's copy of the upload.
            return DemoResult(f"error: {describe(error).replace(str(video), Path(video).name)}")
        prediction = analysis.prediction
        strip = attention_strip_image(
            Path(video).name, analysis.pictures, prediction.attention, prediction.snippet_starts,
            [True] * len(prediction.attention), None, None, prediction.classes[0])
        peak = max(range(len(prediction.attention)), key=prediction.attention.__getitem__)
        message = (f"**{prediction.classes[0]}** ({prediction.probabilities[0]:.1%}); most attended snippet: frame "
                   f"{prediction.snippet_starts[peak]} (weight {prediction.attention[peak]:.2f} of "
                   f"{len(prediction.attention)} snippets)")
        try:
            timeline = self.timeline(video)
        except REPORTED_ERRORS as error:
            logger.warning("%s", describe(error))
            return DemoResult(f"error: {describe(error).replace(str(video), Path(video).name)}")
        return DemoResult(message, dict(zip(prediction.classes, prediction.probabilities)), strip, prediction,
                          timeline)

    def outputs(self, video: str | None) -> tuple:
        """The values of the page's output components, in the order :func:`build_interface` lists them
        (``outputs = [...]`` there): the top classes, the attention strip, the message, the timeline."""
        result = self.classify(video)
        return result.top, result.strip, result.message, result.timeline


# --- synthetic examples ---------------------------------------------------------------------------------------------
def synthetic_examples(predictor: Predictor, cache: str | os.PathLike,
                       count: int = EXAMPLE_CLASSES) -> list[tuple[str, Path]]:
    """(class name, video file) of one fresh synthetic clip for each of the first ``count`` classes of a checkpoint
    trained on the synthetic set, rendered and encoded on first use into ``cache`` (reused afterwards); [] for a
    checkpoint trained on other data."""
    cfg, names = predictor.config, predictor.class_names
    catalogue = {spec.name: spec for spec in CLASS_CATALOGUE}
    if cfg.data.dataset != "synthetic" or not names or any(name not in catalogue for name in names):
        return []
    specs = [catalogue[name] for name in names]
    # The training set's frames and size are make_synthetic's defaults (the training command keeps them).
    defaults = {name: parameter.default for name, parameter in inspect.signature(make_synthetic).parameters.items()}
    frames, size = defaults["frames"], defaults["size"]
    options = {"seed": cfg.data.synthetic.seed, "window_fraction": tuple(cfg.data.synthetic.window_fraction),
               "decoys": cfg.data.synthetic.decoys}
    # The folder is named after everything a clip depends on (decoys come from the other classes), so a cached
    # clip is never one drawn with other parameters or by another version of the generator.
    key = json.dumps({"generator_version": GENERATOR_VERSION, "frames": frames, "size": size, "classes": names,
                      **options}, sort_keys=True)
    folder = output_folder(cache, f"g{GENERATOR_VERSION}-{hashlib.sha1(key.encode()).hexdigest()[:12]}")
    examples = []
    for class_index, spec in enumerate(specs[:count]):
        path = folder / video_name(spec.name, EXAMPLE_GROUP, EXAMPLE_CLIP)
        if path.is_symlink() or not path.is_file():  # a link there is replaced, never shown nor written through
            plan = plan_video(spec, class_index, EXAMPLE_GROUP, EXAMPLE_CLIP, frames=frames, height=size,
                              width=size, decoy_classes=tuple(specs), **options)
            # Atomically: a demo stopped midway leaves no half-written example behind.
            write_atomically(path, lambda handle: encode_video(render_video(plan), handle))
        examples.append((spec.name, path))
    return examples


# --- the page -------------------------------------------------------------------------------------------------------
def build_interface(demo: Demo, examples: list[tuple[str, Path]], title: str):
    """The gradio page (a ``gr.Blocks``): a file upload and the examples on the left, the results on the right."""
    import gradio as gr

    with gr.Blocks(title="jna_fast demo") as page:
        gr.Markdown(f"## jna_fast: {title}\nUpload a video; the model shows its top-{demo.top_k} classes and how "
                    f"much attention it gave each of the {demo.segments} snippets it sampled.")
        with gr.Row():
            with gr.Column(scale=1):
                video = gr.File(label="Video", file_count="single", type="filepath", elem_id="video")
                if examples:
                    gr.Examples([[str(path)] for _, path in examples], inputs=[video],
                                example_labels=[name for name, _ in examples],
                                label="Synthetic examples (fresh clips of the checkpoint's classes)",
                                elem_id="examples")
            with gr.Column(scale=1):
                top = gr.Label(num_top_classes=demo.top_k, label=f"Top-{demo.top_k}", elem_id="top-classes")
                message = gr.Markdown("Upload a video or pick an example.", elem_id="message")
        strip = gr.Image(label="Attention strip: each snippet's RGB frame, flow magnitude and attention weight",
                         type="numpy", interactive=False, elem_id="strip")
        timeline = gr.Image(label=f"Timeline (videos over {2 * demo.window:g} s): class probabilities of "
                                  f"{demo.window:g} s windows every {demo.stride:g} s, and each snippet's attention",
                            type="filepath", interactive=False, elem_id="timeline")
        # The order of Demo.outputs' values.
        outputs = [top, strip, message, timeline]
        video.change(demo.outputs, inputs=video, outputs=outputs)
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jna_fast.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="best.pt or last.pt written by python -m jna_fast.train")
    parser.add_argument("--port", type=number_in(int, minimum=1, maximum=65535), default=DEFAULT_PORT,
                        help=f"default {DEFAULT_PORT}")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}: this machine only)")
    parser.add_argument("--segments", type=number_in(int, minimum=1), default=TEST_SEGMENTS,
                        help=f"snippets per video ({TEST_SEGMENTS})")
    parser.add_argument("--device", type=torch_device, default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--window", type=lambda v: check_window_seconds("--window", v), default=2.0,
                        help="seconds per window of a long video's timeline (2.0); videos over two windows get one")
    parser.add_argument("--stride", type=lambda v: check_window_seconds("--stride", v), default=1.0,
                        help="seconds between the timeline's windows (1.0)")
    parser.add_argument("--examples-cache", default=None,
                        help="where the synthetic examples are written (default: $JNA_FAST_CACHE/demo, "
                        "JNA_FAST_CACHE defaulting to ~/.cache/jna_fast)")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    return run_command(lambda: serve(args), args.debug)


def serve(args: argparse.Namespace) -> None:
    # No usage reports from the server to gradio's site: the demo talks to its browser only.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    require("the demo", "gradio")
    predictor = Predictor.from_checkpoint(args.checkpoint, device=args.device)
    cache = Path(args.examples_cache) if args.examples_cache else cache_root() / "demo"
    examples = synthetic_examples(predictor, cache)
    title = f"{Path(args.checkpoint).name}, {len(predictor.class_names)} classes"
    demo = Demo(predictor, segments=args.segments, window=args.window, stride=args.stride)
    page = build_interface(demo, examples, title)
    page.launch(server_name=args.host, server_port=args.port, allowed_paths=[str(cache)], show_error=False)


if __name__ == "__main__":
    sys.exit(main())
