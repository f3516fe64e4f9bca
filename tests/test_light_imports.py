"""What loads without the video stack: the configuration, export and inference import neither PyAV nor OpenCV
(the decoding stack loads when a video is read), and the dataset kinds' specs answer without it."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_config_export_and_inference_import_neither_pyav_nor_opencv():
    result = run_python("import jna_fast.inference, jna_fast.export, jna_fast.config, sys; "
                        "assert 'av' not in sys.modules and 'cv2' not in sys.modules, "
                        "[m for m in ('av', 'cv2') if m in sys.modules]")
    assert result.returncode == 0, result.stderr


def test_dataset_specs_answer_without_the_video_stack():
    result = run_python(
        "import sys\n"
        "from jna_fast.config import parse_args\n"
        "from jna_fast import builders\n"
        "cfg = parse_args(['--synthetic-classes', '4'])\n"
        "root, frames = builders.dataset_roots(cfg)\n"
        "assert root.name.startswith('g3-c4-') and frames == root / 'frames'\n"
        "assert builders.dataset_roots(parse_args(['--flow', 'online']))[1] is None\n"
        "assert builders.default_short_side(cfg) == 96\n"
        "ucf = parse_args(['--dataset', 'ucf101', '--root', 'x'])\n"
        "assert builders.flip_allowed(ucf) and builders.salient_windows(ucf) is None\n"
        "assert builders.default_short_side(ucf) == 256 and builders.dataset_ready(ucf)\n"
        "assert 'av' not in sys.modules and 'cv2' not in sys.modules\n")
    assert result.returncode == 0, result.stderr


def test_the_synthetic_set_is_indexed_by_its_own_kind(tmp_path):
    from jna_fast.data import load_index, make_synthetic

    make_synthetic(tmp_path, num_classes=2, videos_per_class=2, clips_per_group=1, frames=8, size=32)
    index = load_index("synthetic", tmp_path, split=1, subset="test")
    assert index.class_names == ["SlideRight", "RedSquare"] and len(index.records) == 2
