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


CHECKPOINTS = {"default": "last_default.pt", "best": "best_default.pt", "tsn": "last_tsn.pt", "rgb": "last_rgb.pt",
               "videos": "last_videos.pt"}


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_a_checkpoint_of_the_one_module_jna_rebuilds_the_same_model(name):
    import torch

    from jna_fast.inference import Predictor

    variant = "default" if name == "best" else name
    predictor = Predictor.from_checkpoint(LEGACY / CHECKPOINTS[name])
    assert predictor.config == parse_args(VARIANTS[variant])
    expected = torch.load(LEGACY / f"expected_{variant}.pt", weights_only=True)
    inputs = {key: expected[key].contiguous() if key in expected else None for key in ("rgb", "flow", "mask")}
    with torch.no_grad():
        output = predictor.model(**inputs)
    for field in ("logits", "logits_rgb", "logits_flow", "attention", "snippet_logits"):
        if field in expected:
            torch.testing.assert_close(getattr(output, field), expected[field], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", ["default", "tsn", "rgb", "videos"])
def test_a_run_resumes_from_a_last_pt_of_the_one_module_jna(variant):
    from jna_fast.builders import build_model
    from jna_fast.checkpoint import load_checkpoint, load_model_state, load_optimizer_state
    from jna_fast.training import check_resumable, make_optimizer

    path = LEGACY / f"last_{variant}.pt"
    state = load_checkpoint(path)
    cfg = parse_args(VARIANTS[variant])
    check_resumable(cfg, state, path)  # the same options, though saved as version 1
    model = build_model(cfg, len(state["class_names"]))
    load_model_state(model, state["model"], path)
    optimizer = make_optimizer(model, cfg)
    load_optimizer_state(optimizer, state["optimizer"], path)
    assert [group["name"] for group in optimizer.param_groups] == [
        group["name"] for group in state["optimizer"]["param_groups"]]
