"""The one schema of the training options: CLI (sectioned paths and short aliases), YAML config file, checkpoint
round trip, resume rules, dataset recipes and model parts."""

import subprocess
import sys

import pytest
import yaml

from jna_fast.config import (SCHEMA_VERSION, build_parser, config_from_dict, leaves, parse_args, read_config_file,
                             resumable_paths, save_config, with_overrides)

STITCH_OPTIONS = ("after", "self_weight", "normalise", "shared_fraction", "lr_scale")


def test_defaults_come_from_the_dataset_recipe():
    synthetic = parse_args([])
    assert (synthetic.model.backbone.name, synthetic.data.size, synthetic.data.dataset) == ("resnet18", 64, "synthetic")
    real = parse_args(["--dataset", "ucf101", "--root", "x"])
    assert (real.model.backbone.name, real.data.size, real.optim.epochs) == ("resnet50", 224, 80)
    # the stitch recipe: from scratch a stitch after every stage on half the channels, half mixed; from ImageNet
    # after stages 3 and 4 on every channel, nearly apart (so that the pretrained RGB features are not overwritten)
    assert [getattr(synthetic.model.sharing, name) for name in STITCH_OPTIONS] == [(1, 2, 3, 4), 0.5, True, 0.5, 10.0]
    assert [getattr(real.model.sharing, name) for name in STITCH_OPTIONS] == [(3, 4), 0.9, False, 1.0, 1.0]
    typed = parse_args(["--share-after", "2", "--no-stitch-normalise", "--stitch-self-weight", "1",
                        "--stitch-shared-fraction", "0.25", "--stitch-lr-scale", "2"])
    assert [getattr(typed.model.sharing, name) for name in STITCH_OPTIONS] == [(2,), 1.0, False, 0.25, 2.0]
    assert config_from_dict(typed.to_dict(), "checkpoint") == typed
    assert config_from_dict(synthetic.to_dict(), "checkpoint") == synthetic


def test_sectioned_paths_and_short_aliases_are_one_option():
    by_path = parse_args(["--optim.lr", "0.05", "--model.sharing.after", "2,4", "--model.fusion.weights", "1,2",
                          "--model.temporal_pooling.name", "average", "--data.synthetic.classes", "4"])
    by_alias = parse_args(["--lr", "0.05", "--share-after", "2,4", "--model.fusion.weights", "1,2",
                           "--consensus", "average", "--synthetic-classes", "4"])
    assert by_path == by_alias
    assert by_path.model.fusion.options.weights == (1.0, 2.0) and by_path.model.temporal_pooling.name == "average"
    assert parse_args(["--share-after", ""]).model.sharing.name == "none"
    saved = by_path.to_dict()
    assert saved["schema_version"] == SCHEMA_VERSION and saved["optim"]["lr"] == 0.05
    assert "lr_scale" not in saved["model"]["temporal_pooling"]  # the average pooling has no options


def test_cli_types_and_tuples():
    cfg = parse_args(["--share-after", "2,4", "--lr", "0.05", "--no-flip", "--epochs", "3",
                      "--synthetic-window-fraction", "0.1,0.2"])
    assert cfg.model.sharing.after == (2, 4) and cfg.optim.lr == 0.05 and cfg.data.flip is False
    assert cfg.optim.epochs == 3 and cfg.data.synthetic.window_fraction == (0.1, 0.2)


@pytest.mark.parametrize("content", [
    {"lr": 0.02, "batch-size": 4, "share_after": [3], "backbone": "resnet34"},
    {"optim": {"lr": 0.02, "batch-size": 4}, "model": {"sharing": {"after": [3]}, "backbone": {"name": "resnet34"}}},
])
def test_config_file_flat_or_sectioned_with_cli_override(tmp_path, content):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(content))
    cfg = parse_args(["--config", str(path), "--batch-size", "6"])
    assert cfg.optim.lr == 0.02 and cfg.model.sharing.after == (3,) and cfg.model.backbone.name == "resnet34"
    assert cfg.optim.batch_size == 6  # the command line wins over the file


def test_saved_config_round_trips(tmp_path):
    cfg = parse_args(["--lr", "0.003", "--no-flip", "--streams", "rgb", "--share-after", "", "--consensus",
                      "average"])
    save_config(cfg, tmp_path / "config.yaml")
    assert parse_args(["--config", str(tmp_path / "config.yaml")]) == cfg
    assert config_from_dict(cfg.to_dict(), "checkpoint") == cfg


@pytest.mark.parametrize("content, message", [
    ({"learning_rate": 0.1}, "unknown.*'learning_rate'"),
    ({"lr": "fast"}, "option optim.lr expects float"),
    ({"backbone": "vgg16"}, "option model.backbone.name must be one of"),
    ({"epochs": 2.5}, "option optim.epochs expects int"),
    ({"optim": {"learning_rate": 0.1}}, "unknown option 'optim.learning_rate'"),
    ({"schema_version": 99, "optim": {"lr": 0.1}}, "schema_version must be an integer 1..2"),
])
def test_bad_config_file_names_file_and_option(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(ValueError, match=message) as error:
        read_config_file(path)
    assert str(path) in str(error.value)


def test_invalid_combinations_exit_with_usage(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--dataset", "ucf101"])
    assert "--dataset ucf101 needs --root" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--streams", "rgb"])
    assert "--model.streams rgb: the sharing part cross_stitch needs both streams" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--split", "4"])
    assert "option data.split must be one of 1, 2, 3 for --dataset synthetic, got 4" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--model.fusion.name", "weighted"])
    assert ("--model.fusion.name: invalid choice: 'weighted' (choose from 'late_scores', 'branch_selection', "
            "'fully_connected')" in capsys.readouterr().err)


def test_an_option_of_a_part_not_chosen_is_refused_naming_it(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--share-after", "", "--stitch-self-weight", "0.7"])
    assert ("option model.sharing.self_weight applies to --model.sharing.name cross_stitch, not none"
            in capsys.readouterr().err)
    # an override that chooses another part drops the options of the part it replaces
    variant = with_overrides(parse_args(["--stitch-self-weight", "0.7"]), {"share_after": ()}, "variant tsn")
    assert variant.model.sharing.name == "none" and not hasattr(variant.model.sharing, "self_weight")


def test_differences_ignore_resumable_options():
    base = parse_args([])
    changed = parse_args(["--epochs", "50", "--out", "elsewhere", "--max-steps", "3", "--no-progress",
                          "--data-backend", "pyav"])
    assert base.differences(changed, ignored=frozenset(resumable_paths())) == {}
    other = parse_args(["--backbone", "resnet34", "--lr", "0.1"])
    assert set(base.differences(other)) == {"model.backbone.name", "optim.lr"}


def test_every_option_has_help_and_every_number_a_range():
    for path, leaf in leaves().items():
        assert leaf.spec.metadata["help"], path
        numeric = {leaf.kind} | set(getattr(leaf.kind, "__args__", ()))
        if numeric & {int, float} and leaf.choices is None:
            assert str(leaf.range), f"option {path} declares no range"


OUT_OF_RANGE = {
    "data.split": ["0"], "data.size": ["1", "31", "-64"], "data.start_index": ["-1"],
    "data.synthetic.classes": ["1", "15"], "data.synthetic.videos_per_class": ["2", "0"],
    "data.synthetic.window_fraction": ["0,0.5", "0.3,1.5", "nan,0.5"], "data.synthetic.decoys": ["-1"],
    "data.synthetic.seed": ["-1"], "data.num_segments": ["0"], "eval.val_segments": ["0", "-3"],
    "model.flow_length": ["0"], "model.sharing.after": ["0", "3,5"], "model.dropout": ["-0.1", "1", "nan"],
    "optim.epochs": ["0"], "optim.batch_size": ["0", "-2"], "optim.lr": ["nan", "inf", "0", "-0.1"],
    "optim.momentum": ["nan", "1", "-0.5"], "optim.weight_decay": ["nan", "-1", "inf"],
    "optim.warmup_epochs": ["nan", "-1"], "model.temporal_pooling.lr_scale": ["-1", "inf"],
    "model.temporal_pooling.warmup": ["1.5", "-0.1", "nan"], "model.temporal_pooling.supervision": ["-1", "nan"],
    "optim.clip_grad": ["nan", "-1", "inf"], "optim.max_steps": ["0", "-1"], "run.checkpoint_every": ["-1"],
    "run.log_every": ["0"], "run.seed": ["-1", str(2**32)], "model.sharing.self_weight": ["-0.1", "1.5", "nan"],
    "model.sharing.lr_scale": ["-1", "inf"], "model.sharing.shared_fraction": ["0", "1.5", "nan"],
    "model.sharing.warmup": ["1.5", "-0.1"], "model.fusion.aux_loss_weight": ["-1", "nan"],
}


def _nested(path: str, value) -> dict:
    *sections, name = path.split(".")
    result = {name: value}
    for section in reversed(sections):
        result = {section: result}
    return result


@pytest.mark.parametrize("path, value", [(path, value) for path, values in OUT_OF_RANGE.items() for value in values])
def test_an_option_out_of_range_is_refused_naming_it(path, value, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        parse_args([f"--{path}", value])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert f"option {path}" in error and "must be" in error, error
    # The same check holds for a config file and for the configuration saved in a checkpoint.
    file = tmp_path / "run.yaml"
    file.write_text(yaml.safe_dump(_nested(path, value)))
    with pytest.raises(ValueError, match=f"--config {file}: option {path}"):
        read_config_file(file)
    saved = parse_args([]).to_dict()
    section = saved
    for name in path.split(".")[:-1]:
        section = section[name]
    section[path.rsplit(".", 1)[1]] = value
    with pytest.raises(ValueError, match=f"checkpoint: option {path}"):
        config_from_dict(saved, "checkpoint")


def test_the_edges_of_the_ranges_are_accepted():
    cfg = parse_args(["--checkpoint-every", "0", "--clip-grad", "0", "--max-steps", "1", "--dropout", "0",
                      "--attention-warmup", "1", "--size", "32", "--split", "3", "--synthetic-window-fraction", "1,1",
                      "--weight-decay", "0", "--lr", "1e-9"])
    assert (cfg.run.checkpoint_every, cfg.optim.clip_grad, cfg.optim.max_steps, cfg.data.size) == (0, 0.0, 1, 32)
    help_text = " ".join(build_parser("train", "").format_help().split())
    assert "--optim.batch_size BATCH_SIZE, --batch-size BATCH_SIZE clips per GPU/process (default: 8; >= 1)" in help_text
    assert "(default: 224; synthetic: 64; >= 32)" in help_text


def test_synthetic_families_option(tmp_path, capsys):
    from jna_fast.builders import dataset_roots
    from jna_fast.data.datasets import dataset_spec
    from jna_fast.data.datasets.synthetic import FAMILIES

    def synthetic_parameters(cfg):
        return dataset_spec("synthetic").parameters(cfg.data.synthetic)

    def synthetic_root(cfg):
        return dataset_roots(cfg)[0]

    assert parse_args([]).data.synthetic.families == FAMILIES
    cfg = parse_args(["--synthetic-families", "motion,binding", "--synthetic-classes", "4"])
    assert cfg.data.synthetic.families == ("motion", "binding")
    assert synthetic_parameters(cfg)["families"] == ("motion", "binding")
    # the cache folder names the generator's version and the families: an older generator's cache is never reused
    assert synthetic_root(cfg).name.startswith("g3-") and synthetic_root(cfg).name.endswith("-motion+binding")
    assert synthetic_root(cfg) != synthetic_root(parse_args(["--synthetic-classes", "4"]))
    save_config(cfg, tmp_path / "config.yaml")
    assert parse_args(["--config", str(tmp_path / "config.yaml")]) == cfg
    assert config_from_dict(cfg.to_dict(), "checkpoint") == cfg
    with pytest.raises(SystemExit):
        parse_args(["--synthetic-families", "motion,colour"])
    assert "--synthetic-families must name some of motion, appearance, binding" in capsys.readouterr().err


def test_the_guide_lists_the_resumable_options_of_the_metadata():
    import re
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[1] / "docs" / "guides" / "options.md").read_text(encoding="utf-8")
    paragraph = guide[guide.index("What may change on resume"):]
    paragraph = paragraph[:paragraph.index(". A run killed")]
    listed = re.findall(r"`([\w.]+)`", paragraph.split(":", 1)[1])
    assert listed == list(resumable_paths())


def test_a_config_file_with_a_python_tag_is_refused_on_one_line(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.yaml"
    path.write_text(f'epochs: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ValueError) as error:
        read_config_file(path)
    message = str(error.value)
    assert message.startswith(f"--config {path}: not valid YAML (line 1, column 9): ") and "\n" not in message
    assert not marker.exists()


LISTS = ["--train-list", "train.txt", "--val-list", "val.txt"]


@pytest.mark.parametrize("argv, option", [
    (["--dataset", "ucf101", "--root", "ds", "--train-list", "my_list.txt"], "data.train_list"),
    (["--dataset", "hmdb51", "--root", "ds", "--val-list", "my_list.txt"], "data.val_list"),
    (["--dataset", "synthetic", "--train-list", "my_list.txt"], "data.train_list"),
    (["--dataset", "ucf101", "--root", "ds", "--num-classes", "3"], "data.num_classes"),
    (["--dataset", "videos", "--root", "ds", *LISTS, "--split", "2"], "data.split"),
    (["--dataset", "hmdb51", "--root", "ds", "--synthetic-classes", "4"], "data.synthetic.classes"),
    (["--dataset", "videos", "--root", "ds", *LISTS, "--synthetic-families", "motion"], "data.synthetic.families"),
    (["--dataset", "rawframes", "--root", "ds", *LISTS, "--frames-root", "frames"], "data.frames_root"),
    (["--flow", "online", "--frames-root", "frames"], "data.frames_root"),
    (["--dataset", "ucf101", "--root", "ds", "--flow", "online", "--rgb-template", "x_{:05d}.jpg"],
     "data.rgb_template"),
])
def test_an_option_the_dataset_does_not_use_is_refused_naming_it(argv, option, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    assert f"error: command line: option {option} " in capsys.readouterr().err
    # given in a config file, the error names the file
    path = tmp_path / "run.yaml"
    flags = dict(zip(argv[::2], argv[1::2]))
    path.write_text(yaml.safe_dump({flag[2:]: value for flag, value in flags.items()}))
    with pytest.raises(SystemExit):
        parse_args(["--config", str(path)])
    assert f"error: --config {path}: option {option} " in capsys.readouterr().err


def test_options_of_the_dataset_are_accepted_and_a_saved_config_repeats(tmp_path):
    ucf = parse_args(["--dataset", "ucf101", "--root", "ds", "--frames-root", "ds/frames", "--split", "2"])
    lists = parse_args(["--dataset", "videos", "--root", "ds", *LISTS, "--num-classes", "4"])
    online = parse_args(["--dataset", "hmdb51", "--root", "ds", "--flow", "online"])
    assert (ucf.data.split, lists.data.train_list, lists.data.num_classes) == (2, "train.txt", 4)
    for cfg in (ucf, lists, online, parse_args(["--synthetic-classes", "4"])):
        save_config(cfg, tmp_path / "config.yaml")
        assert parse_args(["--config", str(tmp_path / "config.yaml")]) == cfg


def test_importing_the_configuration_loads_neither_pyav_nor_opencv():
    code = "import sys, jna_fast.config; assert not {'av', 'cv2'} & set(sys.modules), sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
