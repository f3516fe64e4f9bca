"""Files written by the code of commit 0731a88 (tests/data/legacy_0731a88/: flat version-1 configurations, and
checkpoints of the one-module JNA) load and rebuild the same configuration and model."""

from pathlib import Path

import pytest
import yaml

from jna_fast.config import config_from_dict, parse_args, read_config_file

LEGACY = Path(__file__).resolve().parent / "data" / "legacy_0731a88"
# The command lines the fixtures were made with (their README), as this version spells them.
VARIANTS = {
    "default": [],
    "rgb": ["--streams", "rgb", "--share-after", "", "--consensus", "average"],
    "flow": ["--streams", "flow", "--share-after", "", "--consensus", "average"],
    "tsn": ["--share-after", "", "--consensus", "average"],
    "sharing": ["--consensus", "average"],
    "attention": ["--share-after", ""],
    "ucf101": ["--dataset", "ucf101", "--root", "/data/ucf101", "--frames-root", "/data/frames", "--split", "2",
               "--backbone", "resnet50", "--lr", "0.005", "--stitch-self-weight", "0.8", "--eval-crops", "3",
               "--attention-warmup", "0.2"],
    "videos": ["--dataset", "videos", "--root", "/data/v", "--train-list", "a.txt", "--val-list", "b.txt",
               "--num-classes", "7"],
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_version_1_config_yaml_resolves_to_the_same_configuration(variant):
    path = LEGACY / f"config_{variant}.yaml"
    expected = parse_args(VARIANTS[variant])
    assert parse_args(["--config", str(path)]) == expected
    assert config_from_dict(yaml.safe_load(path.read_text()), str(path)) == expected
    assert "schema_version" not in read_config_file(path)  # read as version 1: flat names, no version


def test_a_version_1_config_of_a_part_not_chosen_drops_its_options():
    saved = yaml.safe_load((LEGACY / "config_tsn.yaml").read_text())
    assert saved["share_after"] == [] and saved["stitch_self_weight"] == 0.5  # written, but without effect
    cfg = config_from_dict(saved, "config_tsn.yaml")
    assert cfg.model.sharing.name == "none" and cfg.model.temporal_pooling.name == "average"
