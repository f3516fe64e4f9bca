"""The ablation's variants are data (configs/ablations/, jna_fast/variants.py): each file a variant, read and checked
as a --config file; the index orders them and holds the claims; a new variant needs no Python."""

import shutil
from pathlib import Path

import pytest

from jna_fast.ablate import RUN_SETTINGS, main, summarise, variant_config, write_results
from jna_fast.config import parse_args, with_overrides
from jna_fast.variants import (INDEX_NAME, INSTALLED_DIR, default_folder, one_stream, read_ablations,
                               scores_attention, varied_paths)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "configs" / "ablations"
# The variants as they were written in Python before they were data (flat options of version 1).
FORMER_VARIANTS = {
    "rgb": {"streams": "rgb", "share_after": (), "consensus": "average"},
    "flow": {"streams": "flow", "share_after": (), "consensus": "average"},
    "tsn": {"share_after": (), "consensus": "average"},
    "attention": {"share_after": ()},
    "sharing": {"consensus": "average"},
    "jna": {},
}
FORMER_COMPARISONS = [("sharing", "tsn"), ("jna", "attention"), ("attention", "tsn"), ("jna", "sharing"),
                      ("jna", "tsn")]


def test_the_shipped_variants_are_the_former_ones_in_their_order():
    ablations = read_ablations()
    assert default_folder() == SHIPPED and ablations.names() == list(FORMER_VARIANTS)
    assert [(c.better, c.baseline) for c in ablations.comparisons] == FORMER_COMPARISONS
    for base in (parse_args([]), parse_args(["--size", "32", "--stitch-self-weight", "0.8", "--lr", "0.02"])):
        for name, former in FORMER_VARIANTS.items():
            assert (with_overrides(base, ablations.variants[name], "new").flat_values()
                    == with_overrides(base, former, "former").flat_values()), name


def test_what_a_variant_is_follows_from_its_configuration():
    ablations, base = read_ablations(), parse_args([])
    resolved = {name: with_overrides(base, overrides, name) for name, overrides in ablations.variants.items()}
    assert [name for name, cfg in resolved.items() if one_stream(cfg)] == ["rgb", "flow"]
    assert [name for name, cfg in resolved.items() if scores_attention(cfg)] == ["attention", "jna"]
    assert varied_paths(ablations) == ("model.sharing", "model.streams", "model.temporal_pooling")


def test_a_new_variant_is_a_new_file(tmp_path):
    folder = tmp_path / "ablations"
    shutil.copytree(SHIPPED, folder)
    (folder / "late.yaml").write_text("model:\n  sharing: {name: cross_stitch, after: [4]}\n  dropout: 0.3\n")
    (folder / "apart.yaml").write_text("share_after: []\n")  # a short alias works as in --config files
    ablations = read_ablations(folder)
    assert ablations.names() == [*FORMER_VARIANTS, "apart", "late"]  # unlisted ones after the index's, by name
    cfg = variant_config(parse_args([]), ablations, "late", 3, tmp_path / "run")
    assert cfg.model.sharing.after == (4,) and cfg.model.dropout == 0.3 and cfg.run.seed == 3
    assert cfg.run.out == str(tmp_path / "run") and cfg.run.final_eval and cfg.run.resume == "auto"
    assert variant_config(parse_args([]), ablations, "apart", 0, tmp_path, quiet=True).model.sharing.name == "none"
    assert variant_config(parse_args([]), ablations, "apart", 0, tmp_path, quiet=True).run.progress is False


def test_a_variant_with_an_unknown_option_is_refused_naming_its_file(tmp_path):
    folder = tmp_path / "ablations"
    shutil.copytree(SHIPPED, folder)
    (folder / "typo.yaml").write_text("model:\n  sharing: {nmae: none}\n")
    with pytest.raises(ValueError, match=r"typo.yaml.*nmae"):
        read_ablations(folder)


def test_the_index_must_name_existing_variants(tmp_path):
    folder = tmp_path / "ablations"
    shutil.copytree(SHIPPED, folder)
    (folder / "tsn.yaml").unlink()
    with pytest.raises(ValueError, match=r"index.yaml: order names variants without a file: tsn"):
        read_ablations(folder)
    (folder / INDEX_NAME).write_text("comparisons:\n  - {better: jna, baseline: tsn, meaning: x}\n")
    with pytest.raises(ValueError, match=r"names no variant 'tsn'"):
        read_ablations(folder)


def test_an_unknown_variant_lists_the_known_before_anything_is_written(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "ablation"), "--variants", "tsn,tsm"])
    error = capsys.readouterr().err
    assert "--variants must name some of rgb, flow, tsn, attention, sharing, jna" in error and "'tsm'" in error
    assert not (tmp_path / "ablation").exists()


def test_an_installed_package_reads_its_own_copy(tmp_path):
    """A wheel holds configs/ablations/ as jna_fast/ablations/ (setup.py): found where no checkout is."""
    package = tmp_path / "site-packages" / "jna_fast"
    shutil.copytree(SHIPPED, package / INSTALLED_DIR)
    assert default_folder(package) == package / INSTALLED_DIR
    assert read_ablations(default_folder(package)).names() == list(FORMER_VARIANTS)
    shutil.rmtree(package / INSTALLED_DIR)
    with pytest.raises(FileNotFoundError, match="reinstall jna_fast"):
        default_folder(package)
    setup = (ROOT / "setup.py").read_text()
    assert '"jna_fast.ablations": "configs/ablations"' in setup and '"jna_fast.ablations"]' in setup


def test_the_common_settings_leave_out_what_the_variants_and_runs_set(tmp_path, monkeypatch):
    monkeypatch.setattr("jna_fast.ablate.bar_chart", lambda summary, path: None)  # matplotlib is not the point
    base = parse_args(["--size", "32"])
    runs = [{"variant": variant, "seed": 0, "top1": 0.5} for variant in ("jna", "tsn")]
    results = write_results(tmp_path, base, runs, read_ablations())
    settings = results["settings"]
    assert settings["data.size"] == 32 and "model.backbone.name" in settings
    assert not [path for path in settings if path.startswith(("model.sharing", "model.temporal_pooling",
                                                              "model.streams", *RUN_SETTINGS))]
    assert list(results["summary"]) == ["tsn", "jna"]  # the ablation's order, not the runs'
    assert [row["comparison"] for row in results["differences"]] == ["jna - tsn"]
    assert summarise(runs, ["jna"]).keys() == {"jna"}
