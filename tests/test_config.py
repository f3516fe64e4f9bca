"""The one definition of the training options: CLI, YAML config file, checkpoint round trip, resume rules."""

import pytest
import yaml

from jna_fast.config import Config, build_parser, config_from_dict, parse_args, read_config_file, save_config


def test_defaults_resolve_per_dataset():
    synthetic = parse_args([])
    assert (synthetic.backbone, synthetic.size, synthetic.dataset) == ("resnet18", 64, "synthetic")
    real = parse_args(["--dataset", "ucf101", "--root", "x"])
    assert (real.backbone, real.size, real.epochs) == ("resnet50", 224, 80)
    # the stitch recipe: from scratch a stitch after every stage on half the channels, half mixed; from ImageNet
    # after stages 3 and 4 on every channel, nearly apart (so that the pretrained RGB features are not overwritten)
    stitches = ("share_after", "stitch_self_weight", "stitch_normalise", "stitch_shared_fraction", "stitch_lr_scale")
    assert [getattr(synthetic, name) for name in stitches] == [(1, 2, 3, 4), 0.5, True, 0.5, 10.0]
    assert [getattr(real, name) for name in stitches] == [(3, 4), 0.9, False, 1.0, 1.0]
    # what is typed wins, "no sharing" included, and the recipe round-trips through a checkpoint's config
    typed = parse_args(["--share-after", "", "--no-stitch-normalise", "--stitch-self-weight", "1",
                        "--stitch-shared-fraction", "0.25", "--stitch-lr-scale", "2"])
    assert [getattr(typed, name) for name in stitches] == [(), 1.0, False, 0.25, 2.0]
    assert config_from_dict(typed.to_dict(), "checkpoint") == typed
    assert config_from_dict(synthetic.to_dict(), "checkpoint") == synthetic


def test_a_config_saved_before_an_option_keeps_what_it_meant():
    # checkpoints written before stitch_shared_fraction existed mixed every channel: they rebuild that model, not
    # today's synthetic default
    saved = parse_args([]).to_dict()
    del saved["stitch_shared_fraction"]
    assert config_from_dict(saved, "checkpoint").stitch_shared_fraction == 1.0


def test_cli_types_and_tuples():
    cfg = parse_args(["--share-after", "2,4", "--lr", "0.05", "--no-flip", "--epochs", "3",
                      "--synthetic-window-fraction", "0.1,0.2"])
    assert cfg.model.sharing.after == (2, 4) and cfg.optim.lr == 0.05 and cfg.data.flip is False and cfg.optim.epochs == 3
    assert cfg.data.synthetic.window_fraction == (0.1, 0.2)
    assert parse_args(["--share-after", ""]).share_after == ()


def test_config_file_with_cli_override(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"lr": 0.02, "batch-size": 4, "share_after": [3], "backbone": "resnet34"}))
    cfg = parse_args(["--config", str(path), "--batch-size", "6"])
    assert cfg.optim.lr == 0.02 and cfg.model.sharing.after == (3,) and cfg.model.backbone.name == "resnet34"
    assert cfg.optim.batch_size == 6  # the command line wins over the file


def test_saved_config_round_trips(tmp_path):
    cfg = parse_args(["--lr", "0.003", "--share-after", "4", "--no-flip", "--streams", "rgb", "--share-after", "",
                      "--consensus", "average"])
    save_config(cfg, tmp_path / "config.yaml")
    assert parse_args(["--config", str(tmp_path / "config.yaml")]) == cfg
    assert config_from_dict(cfg.to_dict(), "checkpoint") == cfg


@pytest.mark.parametrize("content, message", [
    ({"learning_rate": 0.1}, "unknown option 'learning_rate'"),
    ({"lr": "fast"}, "option lr expects float"),
    ({"backbone": "vgg16"}, "option backbone must be one of"),
    ({"epochs": 2.5}, "option epochs expects int"),
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
    assert "--streams rgb needs --share-after '' and --consensus average" in capsys.readouterr().err


def test_differences_ignore_resumable_options():
    base = parse_args([])
    changed = parse_args(["--epochs", "50", "--out", "elsewhere", "--max-steps", "3", "--no-progress",
                          "--data-backend", "pyav"])
    assert base.differences(changed) == {}
    other = parse_args(["--backbone", "resnet34", "--lr", "0.1"])
    assert set(base.differences(other)) == {"backbone", "lr"}


def test_every_option_has_help_and_group():
    import dataclasses

    for spec in dataclasses.fields(Config):
        assert spec.metadata["help"] and spec.metadata["group"], spec.name


OUT_OF_RANGE = {
    "split": ["0", "4"], "size": ["1", "31", "-64"], "start_index": ["-1"], "synthetic_classes": ["1", "15"],
    "synthetic_videos_per_class": ["2", "0"], "synthetic_window_fraction": ["0,0.5", "0.3,1.5", "nan,0.5"],
    "synthetic_decoys": ["-1"], "synthetic_seed": ["-1"], "num_segments": ["0"], "test_segments": ["0", "-3"],
    "flow_length": ["0"], "share_after": ["0", "3,5"], "dropout": ["-0.1", "1", "nan"], "epochs": ["0"],
    "batch_size": ["0", "-2"], "lr": ["nan", "inf", "0", "-0.1"], "momentum": ["nan", "1", "-0.5"],
    "weight_decay": ["nan", "-1", "inf"], "warmup_epochs": ["nan", "-1"], "attention_lr_scale": ["-1", "inf"],
    "attention_warmup": ["1.5", "-0.1", "nan"], "attention_supervision": ["-1", "nan"],
    "clip_grad": ["nan", "-1", "inf"], "max_steps": ["0", "-1"], "checkpoint_every": ["-1"], "log_every": ["0"],
    "seed": ["-1", str(2**32)], "stitch_self_weight": ["-0.1", "1.5", "nan"], "stitch_lr_scale": ["-1", "inf"],
    "stitch_shared_fraction": ["0", "1.5", "nan"],
    "stitch_warmup": ["1.5", "-0.1"],
}


@pytest.mark.parametrize("name, value", [(name, value) for name, values in OUT_OF_RANGE.items() for value in values])
def test_an_option_out_of_range_is_refused_naming_it(name, value, capsys, tmp_path):
    flag = "--" + name.replace("_", "-")
    with pytest.raises(SystemExit) as exit_:
        parse_args([flag, value])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert f"option {name}" in error and "must be" in error, error
    # The same check holds for a config file and for the configuration saved in a checkpoint.
    path = tmp_path / "run.yaml"
    path.write_text(f"{name}: {value}\n")
    with pytest.raises(ValueError, match=f"--config {path}: option {name}"):
        read_config_file(path)
    with pytest.raises(ValueError, match=f"checkpoint: option {name}"):
        config_from_dict({**parse_args([]).to_dict(), name: value}, "checkpoint")


def test_every_numeric_option_has_a_range():
    import dataclasses
    import typing

    hints = typing.get_type_hints(Config)
    for spec in dataclasses.fields(Config):
        kinds = {kind for kind in typing.get_args(hints[spec.name]) or (hints[spec.name],)}
        kinds |= {item for kind in kinds for item in typing.get_args(kind)}  # tuple[int, ...] -> int
        if kinds & {int, float}:
            assert str(spec.metadata["range"]), f"option {spec.name} declares no range"


def test_the_edges_of_the_ranges_are_accepted():
    cfg = parse_args(["--checkpoint-every", "0", "--clip-grad", "0", "--max-steps", "1", "--dropout", "0",
                      "--attention-warmup", "1", "--size", "32", "--split", "3", "--synthetic-window-fraction", "1,1",
                      "--weight-decay", "0", "--lr", "1e-9"])
    assert (cfg.run.checkpoint_every, cfg.optim.clip_grad, cfg.optim.max_steps, cfg.data.size) == (0, 0.0, 1, 32)
    assert "(default: 8; >= 1)" in " ".join(build_parser("train", "").format_help().split())


def test_synthetic_families_option(tmp_path, capsys):
    from jna_fast.config import DEFAULT_SYNTHETIC_FAMILIES, SYNTHETIC_FAMILIES
    from jna_fast.data.synthetic import DEFAULT_FAMILIES, FAMILIES
    from jna_fast.builders import dataset_roots
    from jna_fast.data.datasets import dataset_spec

    def synthetic_parameters(cfg):
        return dataset_spec("synthetic").parameters(cfg.data.synthetic)

    def synthetic_root(cfg):
        return dataset_roots(cfg)[0]

    assert SYNTHETIC_FAMILIES == FAMILIES and DEFAULT_SYNTHETIC_FAMILIES == DEFAULT_FAMILIES
    assert parse_args([]).synthetic_families == DEFAULT_FAMILIES
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


def test_readme_lists_the_resumable_options_of_the_metadata():
    import re
    from pathlib import Path

    from jna_fast.config import RESUMABLE_OPTIONS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    paragraph = readme[readme.index("What may change on resume"):]
    paragraph = paragraph[:paragraph.index(". A run killed")]
    listed = re.findall(r"`(\w+)`", paragraph.split(":", 1)[1])
    assert listed == list(RESUMABLE_OPTIONS)


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
    (["--dataset", "ucf101", "--root", "ds", "--train-list", "my_list.txt"], "train_list"),
    (["--dataset", "hmdb51", "--root", "ds", "--val-list", "my_list.txt"], "val_list"),
    (["--dataset", "synthetic", "--train-list", "my_list.txt"], "train_list"),
    (["--dataset", "ucf101", "--root", "ds", "--num-classes", "3"], "num_classes"),
    (["--dataset", "videos", "--root", "ds", *LISTS, "--split", "2"], "split"),
    (["--dataset", "hmdb51", "--root", "ds", "--synthetic-classes", "4"], "synthetic_classes"),
    (["--dataset", "videos", "--root", "ds", *LISTS, "--synthetic-families", "motion"], "synthetic_families"),
    (["--dataset", "rawframes", "--root", "ds", *LISTS, "--frames-root", "frames"], "frames_root"),
    (["--flow", "online", "--frames-root", "frames"], "frames_root"),
    (["--dataset", "ucf101", "--root", "ds", "--flow", "online", "--rgb-template", "x_{:05d}.jpg"], "rgb_template"),
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
    assert (ucf.split, lists.train_list, lists.num_classes) == (2, "train.txt", 4)
    # a saved configuration holds every option, those of other kinds at their defaults
    for cfg in (ucf, lists, online, parse_args(["--synthetic-classes", "4"])):
        save_config(cfg, tmp_path / "config.yaml")
        assert parse_args(["--config", str(tmp_path / "config.yaml")]) == cfg
