"""Hostile configuration files: whatever their shape (alias bombs anywhere, deep nesting, huge documents, values of
the wrong type), `--config FILE` is refused quickly, in little memory, with one error line naming the file."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from jna_fast.config import parse_args, read_config_file, save_config
from jna_fast.plain_yaml import MAX_BYTES, MAX_DEPTH

ROOT = Path(__file__).resolve().parents[1]
SECONDS_LIMIT, MEGABYTES_LIMIT = 2.0, 300


def anchored_levels(width: int = 9, depth: int = 9) -> list[str]:
    """The billion laughs: level 0 is ``width`` strings, each next level ``width`` aliases of the one before, so the
    last stands for width**depth strings."""
    first = "&l0 [" + ", ".join(['"lol"'] * width) + "]"
    return [first] + [f"&l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]" for level in range(1, depth)]


def bomb_at_top_level(option: str) -> str:
    levels = anchored_levels()
    named = "".join(f"level{index}: {level}\n" for index, level in enumerate(levels))
    return named + f"{option}: *l{len(levels) - 1}\n"


def bomb_in_value(option: str) -> str:
    return f"{option}: [{', '.join(anchored_levels())}]\n"


def bomb_nested(option: str) -> str:
    return f"{option}:\n  inner:\n    deeper: [{', '.join(anchored_levels())}]\n"


HOSTILE_FILES = {
    "bomb-top-epochs": bomb_at_top_level("epochs"),
    "bomb-value-epochs": bomb_in_value("epochs"),
    "bomb-value-out": bomb_in_value("out"),
    "bomb-value-root": bomb_in_value("root"),
    "bomb-value-weights": bomb_at_top_level("weights"),
    "bomb-value-share-after": bomb_in_value("share_after"),
    "bomb-nested-frames-root": bomb_nested("frames_root"),
    "bomb-as-key": f"? [{', '.join(anchored_levels())}]\n: 1\n",
    "deep-nesting": "epochs: " + "[" * 15000 + "]" * 15000 + "\n",
    "too-large": "# " + "x" * MAX_BYTES + "\nepochs: 3\n",
    "wide-list-for-a-path": "out: [" + ", ".join(["1"] * (MAX_BYTES // 4)) + "]\n",
    "huge-integer": "epochs: " + "9" * 5000 + "\n",
    "list-for-a-number": "epochs: [1, 2]\n",
    "mapping-for-a-path": "out: {a: b}\n",
    "yes-for-a-path": "out: yes\n",
    "repeated-key": "epochs: 3\nepochs: 4\n",
    "not-utf8": "epochs: 3\n# \udcff\n",
}

# Run in a fresh process, so that its peak memory (ru_maxrss) counts only what reading the files costs beyond the
# imports: each file goes through the real command line, its stderr captured.
MEASURE = textwrap.dedent("""
    import contextlib, io, json, resource, sys, time
    from jna_fast.train import main

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    start_mb, results = peak_mb(), {}
    for path in sys.argv[1:]:
        stderr, began = io.StringIO(), time.perf_counter()
        with contextlib.redirect_stderr(stderr):
            try:
                status = main(["--config", path])
            except SystemExit as exit_:
                status = exit_.code
        results[path] = {"status": status, "seconds": time.perf_counter() - began, "stderr": stderr.getvalue()}
    print(json.dumps({"results": results, "grown_mb": peak_mb() - start_mb}))
""")


def test_hostile_config_files_are_refused_quickly_in_little_memory(tmp_path):
    paths = []
    for name, text in HOSTILE_FILES.items():
        path = tmp_path / f"{name}.yaml"
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        paths.append(str(path))
    done = subprocess.run([sys.executable, "-c", MEASURE, *paths], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    measured = json.loads(done.stdout.splitlines()[-1])
    assert measured["grown_mb"] < MEGABYTES_LIMIT, measured["grown_mb"]
    for path, result in measured["results"].items():
        errors = [line for line in result["stderr"].splitlines() if "error:" in line]
        assert result["status"] == 2 and len(errors) == 1, (path, result["stderr"][-1000:])
        assert f"--config {path}" in errors[0] and len(errors[0]) < 600, errors[0]
        assert result["seconds"] < SECONDS_LIMIT, (path, result["seconds"])


@pytest.mark.parametrize("text, message", [
    (bomb_in_value("epochs"), "not accepted (line 1, column 10): an anchor or alias"),
    ("epochs: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5), f"nesting deeper than {MAX_DEPTH} levels"),
    ("# " + "x" * MAX_BYTES, f"larger than {MAX_BYTES // 1024} KiB"),
    ("epochs: 3\nepochs: 4\n", "not accepted (line 2, column 1): key 'epochs' given twice"),
    ("epochs: 3\nbatch-size: 4\nbatch_size: 5\n", "option batch_size is given twice"),
    ("out: [a, b]\n", "option run.out expects str, got ['a', 'b']"),
    ("out: no\n", "option run.out expects str, got False"),
    ("epochs: {a: 1}\n", "option optim.epochs expects int, got {'a': 1}"),
    ("share_after: [[3], 4]\n", "option model.sharing.after expects a list of int, got [[3], 4]"),
    ("compile: [1]\n", "option run.compile expects bool, got [1]"),
    ("lr: " + "9" * 4000 + "\n", "option optim.lr expects float, got 9999"),
])
def test_what_a_config_file_may_not_hold_is_named(tmp_path, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        read_config_file(path)
    assert str(error.value).startswith(f"--config {path}: ") and message in str(error.value), str(error.value)
    assert "\n" not in str(error.value) and len(str(error.value)) < 400


def test_a_folder_as_config_file_is_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--config", str(tmp_path)])
    assert exit_.value.code == 2 and f"error: --config {tmp_path}: Is a directory" in capsys.readouterr().err


def test_a_long_wrong_value_is_shown_cut(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("backbone: " + "v" * 10000 + "\nout: [" + ", ".join(["p"] * 5000) + "]\n")
    with pytest.raises(ValueError, match=r"option model.backbone.name must be one of .*, got 'vvv+\.\.\.vvv+'$") as error:
        read_config_file(path)
    assert len(str(error.value)) < 300


def test_plain_files_still_load(tmp_path):
    # a byte-order mark (an editor on Windows), comments, both spellings of a key, a list in either form
    path = tmp_path / "run.yaml"
    path.write_bytes("\ufeff# mine\nbatch-size: 4\nshare_after: [3]\nsynthetic_window_fraction: 0.2, 0.4\n"
                     "out: 2024-01-01\n".encode("utf-8"))
    values = read_config_file(path)
    assert values["optim.batch_size"] == 4 and values["model.sharing.after"] == (3,)
    assert values["run.out"] == "2024-01-01" and values["data.synthetic.window_fraction"] == (0.2, 0.4)
    # every recipe, and a saved configuration, are small plain documents
    for recipe in sorted((ROOT / "configs").glob("*.yaml")):
        assert read_config_file(recipe)["data.dataset"] in ("ucf101", "hmdb51")
    cfg = parse_args(["--batch-size", "3"])
    save_config(cfg, tmp_path / "config.yaml")
    assert "&" not in (tmp_path / "config.yaml").read_text() and yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert parse_args(["--config", str(tmp_path / "config.yaml")]) == cfg
