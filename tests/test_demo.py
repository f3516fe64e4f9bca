"""The demo's computation without a browser (jna_fast.demo.Demo, dataset_examples) and its command's error when
gradio is missing. The page itself is driven in a real browser by tests/test_demo_browser.py."""

import subprocess
import sys

import numpy as np
import pytest

from jna_fast.data.synthetic import encode_video, plan_video, render_video
from jna_fast.demo import Demo, main, dataset_examples
from jna_fast.inference import Predictor, predict_long_video
from jna_fast.visualize import attention_strip_image, write_timeline

plt = pytest.importorskip("matplotlib.pyplot")

SEGMENTS = 5


def synthetic_clip(path, class_name="SlideLeft"):
    """A small clip of a synthetic class (16 frames, 48 px)."""
    from jna_fast.data.synthetic import CLASS_CATALOGUE

    spec = next(spec for spec in CLASS_CATALOGUE if spec.name == class_name)
    encode_video(render_video(plan_video(spec, 0, 1, 1, frames=16, height=48, width=48, seed=3)), path)
    return path


@pytest.fixture(scope="module")
def model(synthetic_checkpoint):
    return Predictor.from_checkpoint(synthetic_checkpoint)


def test_the_demo_shows_what_predict_says_and_the_attention_strip(model, tmp_path):
    clip = synthetic_clip(tmp_path / "clip.avi")
    expected = model.predict(clip, segments=SEGMENTS)
    result = Demo(model, segments=SEGMENTS).classify(clip)
    assert list(result.top) == expected.classes == result.prediction.classes
    assert list(result.top.values()) == pytest.approx(expected.probabilities, abs=1e-6)
    assert result.prediction.attention == pytest.approx(expected.attention, abs=1e-6)
    assert result.message.startswith(f"**{expected.classes[0]}**")
    # The strip: one column per snippet (RGB frame, flow magnitude, weight bar), drawn as an RGB image.
    assert result.strip.dtype == np.uint8 and result.strip.ndim == 3 and result.strip.shape[2] == 3
    assert result.strip.shape[0] > 100 and result.strip.shape[1] > 100 and result.strip.std() > 0
    top, strip, message, timeline = Demo(model, segments=SEGMENTS).outputs(clip)
    assert top == result.top and np.array_equal(strip, result.strip) and message == result.message
    assert timeline is None and result.timeline is None  # 16 frames at 25 fps: shorter than two windows


def test_the_demo_shows_the_spatial_maps_and_the_branch_gate_where_the_checkpoint_has_them(tmp_path):
    from conftest import make_checkpoint
    from jna_fast.data.synthetic import DEFAULT_FAMILIES, catalogue

    checkpoint = make_checkpoint(tmp_path, ["--dataset", "synthetic", "--synthetic-classes", "3", "--no-flip",
                                            "--size", "64", "--share-after", "", "--consensus", "average",
                                            "--model.spatial_pooling.name", "attention",
                                            "--model.fusion.name", "branch_selection"],
                                 [spec.name for spec in catalogue(DEFAULT_FAMILIES)[:3]])
    predictor = Predictor.from_checkpoint(checkpoint)
    clip = synthetic_clip(tmp_path / "clip.avi")
    analysis = predictor.analyse(clip, segments=SEGMENTS)
    assert analysis.pictures["spatial_attention"].shape == (SEGMENTS, 2, 2)  # 64 px: 2 x 2 positions
    assert analysis.prediction.branch_gate == pytest.approx([0.5, 0.5])  # the gate starts even
    result = Demo(predictor, segments=SEGMENTS).classify(clip)
    assert "branch gate: RGB 0.50, flow 0.50" in result.message
    without_maps = {name: value for name, value in analysis.pictures.items() if name != "spatial_attention"}
    plain = attention_strip_image("clip.avi", without_maps, analysis.prediction.attention,
                                  analysis.prediction.snippet_starts, [True] * SEGMENTS, None, None,
                                  analysis.prediction.classes[0])
    assert result.strip.shape[2] == 3 and not np.array_equal(result.strip, plain)  # the maps drawn over the frames


def test_a_long_video_gets_the_timeline_of_predict_window(model, tmp_path):
    from jna_fast.data.synthetic import CLASS_CATALOGUE

    specs = [spec for spec in CLASS_CATALOGUE if spec.name in ("SlideLeft", "SlideRight")]
    frames = np.concatenate([render_video(plan_video(spec, 0, 1, 1, frames=25, height=48, width=48, seed=3))
                             for spec in specs * 2])
    video = tmp_path / "long.avi"
    encode_video(frames, video)  # 100 frames: 4 s at 25 fps, over two 1.5 s windows
    demo = Demo(model, segments=SEGMENTS, window=1.5, stride=0.5)
    result = demo.classify(video)
    expected = predict_long_video(model, video, window=1.5, stride=0.5, segments=SEGMENTS)
    # 38-frame windows every 12 frames while they fit (0..60), then one ending on the last frame.
    assert [w.first_frame for w in expected.windows] == [0, 12, 24, 36, 48, 60, 62]
    write_timeline(expected, tmp_path / "expected.png")
    image = plt.imread(result.timeline)
    assert image.ndim == 3 and image.shape[0] > 200 and image.std() > 0
    assert np.array_equal(image, plt.imread(tmp_path / "expected.png"))  # predict --window's timeline, drawn alike
    # Another long video gets a timeline file of its own.
    assert demo.classify(video).timeline != result.timeline


def test_a_corrupt_or_missing_video_is_a_message_not_an_exception(model, tmp_path):
    demo = Demo(model, segments=SEGMENTS)
    corrupt = tmp_path / "corrupt.avi"
    corrupt.write_bytes(synthetic_clip(tmp_path / "good.avi").read_bytes()[:300])  # a truncated upload
    result = demo.classify(corrupt)
    assert result.message.startswith("error: corrupt.avi: ") and "\n" not in result.message, result.message
    assert str(tmp_path) not in result.message  # the upload's name, not the server's path
    assert result.top is None and result.strip is None and result.prediction is None
    assert demo.outputs(corrupt) == (None, None, result.message, None)
    missing = tmp_path / "missing.avi"
    assert demo.classify(missing).message == "error: missing.avi: no such video file"
    assert demo.classify(None).message == "Upload a video or pick an example."


def test_dataset_examples_are_made_once_for_the_checkpoints_classes(model, tiny_checkpoint, tmp_path):
    examples = dataset_examples(model, tmp_path / "cache")
    assert [name for name, _ in examples] == model.class_names  # 3 classes: fewer than the 4 offered at most
    made = {path: path.stat().st_mtime_ns for _, path in examples}
    assert all(path.stat().st_size > 0 and path.parent.parent == tmp_path / "cache" for path in made)
    assert not [path for path in (tmp_path / "cache").rglob("*") if path.name.startswith(".")]  # no temporaries
    again = dataset_examples(model, tmp_path / "cache")
    assert again == examples and all(path.stat().st_mtime_ns == made[path] for _, path in again)
    # Classes a, b, c of a checkpoint trained on other data: no examples, only the upload.
    assert dataset_examples(Predictor.from_checkpoint(tiny_checkpoint), tmp_path / "other") == []


def test_a_synthetic_example_is_a_clip_of_its_class_the_demo_reads(model, tmp_path):
    (name, path), *_ = dataset_examples(model, tmp_path / "cache", count=1)
    result = Demo(model, segments=SEGMENTS).classify(path)
    assert result.top is not None and len(result.prediction.attention) == SEGMENTS, result.message


def test_without_gradio_the_command_says_how_to_install_it(tiny_checkpoint, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio now raises ImportError
    assert main([str(tiny_checkpoint)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "pip install 'jna_fast[demo]'" in lines[0], lines[0]


def test_jna_fast_and_its_demo_module_import_without_gradio():
    code = ("import sys; sys.modules['gradio'] = None\n"
            "import jna_fast, jna_fast.demo, jna_fast.predict\n"
            "from jna_fast import JNA\n"
            "assert 'gradio' not in [name for name, module in sys.modules.items() if module is not None]\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
