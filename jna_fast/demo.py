"""A browser demo of a trained checkpoint: ``python -m jna_fast.demo CHECKPOINT [--port 7860] [--host 127.0.0.1]``.

Upload a video (or pick one of the bundled synthetic examples, offered when the checkpoint was trained on the
synthetic set) and the page shows the top-5 classes with their probabilities and the attention strip: each
snippet's RGB frame, its flow magnitude and its attention weight (and, for a checkpoint whose spatial pooling is
``attention``, its spatial attention map drawn over the frame; for one whose fusion is ``branch_selection``, the
branch gate's weights in the message); for a video longer than two windows
(``--window``, 2 s), the timeline of ``python -m jna_fast.predict --window``: each window's class probabilities
over time and the attention on its snippets. The video goes through the same inference code
as ``python -m jna_fast.predict`` and ``Predictor.predict`` (``jna_fast.inference``), so the page shows what they print.

Needs gradio (``pip install 'jna_fast[demo]'``); importing this module does not.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ._optional import require
from .builders import cache_root
from .cli import REPORTED_ERRORS, add_debug_option, describe, number_in, run_command, torch_device
from .data.datasets import dataset_spec
from .inference import TEST_CROPS, TEST_SEGMENTS, Predictor, check_window_seconds
from .visualize import attention_strip_image, write_timeline

logger = logging.getLogger("jna_fast.demo")

DEFAULT_PORT = 7860
DEFAULT_HOST = "127.0.0.1"
TOP_K = 5
EXAMPLE_CLASSES = 4          # examples offered: one clip of each of the checkpoint's first classes


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
        if prediction.branch_gate is not None:
            message += (f"; branch gate: RGB {prediction.branch_gate[0]:.2f}, flow {prediction.branch_gate[1]:.2f} "
                        f"(the scores are those of the branch weighed more)")
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


# --- examples ----------------------------------------------------------------------------------------------------
def dataset_examples(predictor: Predictor, cache: str | os.PathLike,
                     count: int = EXAMPLE_CLASSES) -> list[tuple[str, Path]]:
    """(class name, video file) of example clips of the first ``count`` classes of a checkpoint, as the dataset
    kind it was trained on offers them (its spec's ``example_videos``: one fresh clip of each class of the
    synthetic set, made on first use into ``cache`` and reused afterwards); [] for a kind that has none."""
    cfg = predictor.config
    return dataset_spec(cfg.data.dataset).example_videos(cfg.data, predictor.class_names, Path(cache), count)


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
        strip = gr.Image(label="Attention strip: each snippet's RGB frame, flow magnitude and attention weight (and "
                               "its spatial attention over the frame, for a model that has it)",
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
    examples = dataset_examples(predictor, cache)
    title = f"{Path(args.checkpoint).name}, {len(predictor.class_names)} classes"
    demo = Demo(predictor, segments=args.segments, window=args.window, stride=args.stride)
    page = build_interface(demo, examples, title)
    page.launch(server_name=args.host, server_port=args.port, allowed_paths=[str(cache)], show_error=False)


if __name__ == "__main__":
    sys.exit(main())
