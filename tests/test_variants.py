"""The ablation's variants are data (configs/ablations/, jna_fast/variants.py): each file a variant, read and checked
as a --config file; the index orders them and holds the claims; a new variant needs no Python."""

import shutil
from pathlib import Path

import pytest

from jna_fast.ablate import RUN_SETTINGS, main, variant_config, write_results
from jna_fast.ablation_results import summarise
from jna_fast.config import parse_args, read_written_options, with_overrides
from jna_fast.models import registry
from jna_fast.variants import (INDEX_NAME, INSTALLED_DIR, default_folder, one_stream, pictures_attention,
                               read_ablations, scores_attention, varied_paths)

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
# Claim 4: the designs the abstract rejects, each TSN with one part replaced (kind, part).
REJECTED_DESIGNS = {"fc_fusion": ("fusion", "fully_connected"), "branch_selection": ("fusion", "branch_selection"),
                    "spatial_attention": ("spatial_pooling", "attention")}
CLAIM_4_COMPARISONS = [(better, design) for better in ("tsn", "jna") for design in REJECTED_DESIGNS]


def test_the_shipped_variants_are_the_former_ones_in_their_order():
    ablations = read_ablations()
    assert default_folder() == SHIPPED and ablations.names() == [*FORMER_VARIANTS, *REJECTED_DESIGNS]
    assert [(c.better, c.baseline) for c in ablations.comparisons] == FORMER_COMPARISONS + CLAIM_4_COMPARISONS
    assert all(c.meaning.startswith("claim 4: ") for c in ablations.comparisons[len(FORMER_COMPARISONS):])
    for base in (parse_args([]), parse_args(["--size", "32", "--stitch-self-weight", "0.8", "--lr", "0.02"])):
        for name, former in FORMER_VARIANTS.items():
            assert (with_overrides(base, ablations.variants[name], "new").flat_values()
                    == with_overrides(base, former, "former").flat_values()), name


def test_each_rejected_design_is_tsn_with_one_part_replaced():
    """Read as written, without the parts; resolved, where this installation registers them."""
    ablations, base = read_ablations(), parse_args([])
    tsn = read_written_options(SHIPPED / "tsn.yaml")
    for name, (kind, part) in REJECTED_DESIGNS.items():
        assert "totally infeasible" in (SHIPPED / f"{name}.yaml").read_text()  # the file says what it is
        written = read_written_options(SHIPPED / f"{name}.yaml")
        assert written == {**tsn, f"model.{kind}.name": part} == ablations.variants[name], name
        if part in registry.names(kind):
            assert name not in ablations.unavailable
            assert (with_overrides(base, written, name).flat_values()
                    == with_overrides(base, {**tsn, f"model.{kind}.name": part}, "tsn").flat_values())
        else:
            assert f"needs the {kind.replace('_', ' ')} part {part}, which" in ablations.unavailable[name]


def test_a_variant_whose_part_is_not_registered_is_listed_but_refused_when_picked(tmp_path):
    folder = tmp_path / "ablations"
    shutil.copytree(SHIPPED, folder)
    (folder / "plugin.yaml").write_text("model:\n  fusion: {name: plugin_fusion, hidden: 7}\n")
    ablations = read_ablations(folder)
    assert ablations.names()[-1] == "plugin" and ablations.variants["plugin"]["model.fusion.name"] == "plugin_fusion"
    with pytest.raises(ValueError, match=r"variant plugin \(.*plugin.yaml\) needs the fusion part plugin_fusion, "
                                         r"which this installation does not register \(it has .*late_scores"):
        ablations.pick(["tsn", "plugin"])
    assert ablations.pick(["tsn"]) == ["tsn"]


def test_what_a_variant_is_follows_from_its_configuration():
    ablations, base = read_ablations(), parse_args([])
    resolved = {name: with_overrides(base, overrides, name) for name, overrides in ablations.variants.items()
                if name not in ablations.unavailable}
    assert [name for name, cfg in resolved.items() if one_stream(cfg)] == ["rgb", "flow"]
    assert [name for name, cfg in resolved.items() if scores_attention(cfg)] == ["attention", "jna"]
    assert [name for name in FORMER_VARIANTS if pictures_attention(resolved[name])] == ["attention", "jna"]
    assert varied_paths(ablations, list(FORMER_VARIANTS)) == ("model.sharing", "model.streams",
                                                              "model.temporal_pooling")
    assert varied_paths(ablations, ["tsn", "jna", *REJECTED_DESIGNS]) == (
        "model.fusion", "model.sharing", "model.spatial_pooling", "model.temporal_pooling")


def test_a_new_variant_is_a_new_file(tmp_path):
    folder = tmp_path / "ablations"
    shutil.copytree(SHIPPED, folder)
    (folder / "late.yaml").write_text("model:\n  sharing: {name: cross_stitch, after: [4]}\n  dropout: 0.3\n")
    (folder / "apart.yaml").write_text("share_after: []\n")  # a short alias works as in --config files
    ablations = read_ablations(folder)
    # unlisted ones after the index's, by name
    assert ablations.names() == [*FORMER_VARIANTS, *REJECTED_DESIGNS, "apart", "late"]
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
    default = "studies:\n  default: {about: x, variants: [jna], seeds: 1, budget: {}}\n"
    (folder / INDEX_NAME).write_text("comparisons:\n  - {better: jna, baseline: tsn, meaning: x}\n" + default)
    with pytest.raises(ValueError, match=r"comparison jna - tsn names no variant 'tsn'"):
        read_ablations(folder)
    (folder / INDEX_NAME).write_text(default.replace("[jna]", "[jna, tsn]"))
    with pytest.raises(ValueError, match=r"study default names no variant 'tsn'"):
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
    assert read_ablations(default_folder(package)).names() == [*FORMER_VARIANTS, *REJECTED_DESIGNS]
    shutil.rmtree(package / INSTALLED_DIR)
    with pytest.raises(FileNotFoundError, match="reinstall jna_fast"):
        default_folder(package)
    setup = (ROOT / "setup.py").read_text()
    assert '"jna_fast.ablations": "configs/ablations"' in setup and '"jna_fast.ablations"]' in setup


def test_the_common_settings_leave_out_what_the_variants_and_runs_set(tmp_path, monkeypatch):
    monkeypatch.setattr("jna_fast.ablate.bar_chart", lambda summary, path: None)  # matplotlib is not the point
    base = parse_args(["--size", "32"])
    runs = [{"variant": variant, "seed": 0, "top1": 0.5} for variant in ("jna", "tsn")]
    results = write_results(tmp_path, base, runs, read_ablations(), list(FORMER_VARIANTS))
    settings = results["settings"]
    assert settings["data.size"] == 32 and "model.backbone.name" in settings
    assert not [path for path in settings if path.startswith(("model.sharing", "model.temporal_pooling",
                                                              "model.streams", *RUN_SETTINGS))]
    # what the ablation's variants leave alone is common to its runs: the fusion here, not in claim 4's study
    assert settings["model.fusion.name"] == "late_scores" and settings["model.spatial_pooling.name"] == "average"
    claim_4 = write_results(tmp_path, base, runs, read_ablations(), ["tsn", "jna", *REJECTED_DESIGNS])["settings"]
    assert claim_4["model.streams"] == "both"
    assert not [path for path in claim_4 if path.startswith(("model.fusion", "model.spatial_pooling"))]
    assert list(results["summary"]) == ["tsn", "jna"]  # the ablation's order, not the runs'
    assert [row["comparison"] for row in results["differences"]] == ["jna - tsn"]
    assert summarise(runs, ["jna"]).keys() == {"jna"}


def _stand_ins(tmp_path) -> Path:
    """The shipped folder with the rejected designs as TSN: the studies' plumbing, whatever parts are registered."""
    folder = tmp_path / "ablations"
    shutil.copytree(SHIPPED, folder)
    for name in REJECTED_DESIGNS:
        shutil.copy(SHIPPED / "tsn.yaml", folder / f"{name}.yaml")
    return folder


def test_the_studies_select_their_variants_seeds_and_budgets():
    ablations = read_ablations()
    default, alternatives = ablations.studies["default"], ablations.studies["alternatives"]
    assert default.variants == tuple(FORMER_VARIANTS) and (default.seeds, default.one_stream_seeds) == (5, 3)
    assert ablations.plan(None, None) == default  # ablate without --study runs the six, not the rejected designs
    assert alternatives.variants == ("tsn", "jna", *REJECTED_DESIGNS)
    assert (alternatives.seeds, alternatives.one_stream_seeds) == (5, None)
    assert alternatives.budget == {}  # the main run's budget: the train command's own defaults
    if all(part in registry.names(kind) for kind, part in REJECTED_DESIGNS.values()):
        assert ablations.plan("alternatives", None) == alternatives
    else:
        with pytest.raises(ValueError, match="needs the .* part"):
            ablations.plan("alternatives", None)


def test_variants_pick_among_a_study_or_any_at_the_default_study(tmp_path):
    ablations = read_ablations(_stand_ins(tmp_path))
    default, alternatives = ablations.studies["default"], ablations.studies["alternatives"]
    picked = ablations.plan("alternatives", ["fc_fusion", "tsn"])
    assert picked.variants == ("fc_fusion", "tsn") and (picked.seeds, picked.budget) == (5, {})
    anywhere = ablations.plan(None, list(REJECTED_DESIGNS))
    assert anywhere.variants == tuple(REJECTED_DESIGNS)
    assert (anywhere.name, anywhere.seeds, anywhere.one_stream_seeds, anywhere.budget) == (
        "default", default.seeds, default.one_stream_seeds, default.budget)
    assert ablations.plan("alternatives", None).variants == alternatives.variants
    with pytest.raises(ValueError, match=r"--variants names rgb, flow, not in --study alternatives \(its variants: "
                                         r"tsn, jna, fc_fusion"):
        ablations.plan("alternatives", ["tsn", "rgb", "flow"])
    with pytest.raises(ValueError, match=r"--study must be one of default, alternatives, got 'claims'"):
        ablations.plan("claims", None)
    with pytest.raises(ValueError, match=r"--variants must name some of .*got none"):
        ablations.plan(None, [])


@pytest.mark.parametrize("study, error", [
    ("{about: x, variants: [tsn], seeds: 0, budget: {}}", "seeds must be an integer >= 1, got 0"),
    ("{about: x, variants: [tsn], seeds: 2, one_stream_seeds: yes, budget: {}}", "one_stream_seeds must be an"),
    ("{about: x, variants: [tsn], seeds: 2}", "expected a mapping of about, budget, seeds, variants"),
    ("{about: x, variants: [], seeds: 2, budget: {}}", "variants must be a list of variant names"),
    ("{about: x, variants: [tsn], seeds: 2, budget: [epochs]}", "budget must be a mapping of option: value"),
    ("{about: x, variants: [tsn], seeds: 2, budget: {epochz: 3}}", "study quick budget: .*epochz"),
])
def test_a_study_is_checked_when_the_index_is_read(tmp_path, study, error):
    folder = tmp_path / "ablations"
    shutil.copytree(SHIPPED, folder)
    with open(folder / INDEX_NAME, "a", encoding="utf-8") as index:
        index.write(f"  quick: {study}\n")
    with pytest.raises(ValueError, match=error):
        read_ablations(folder)
