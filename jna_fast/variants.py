"""The ablation's variants, claims and studies as data (docs/design.md §10): ``configs/ablations/`` (installed as
``jna_fast/ablations/``) holds one ``<variant>.yaml`` per variant, an override of the common configuration read as a
``--config`` file is (plain YAML, every key a known option, sectioned or by its short alias), and ``index.yaml``,
which orders the variants, lists the comparisons that carry the claims and defines the studies (presets of
``ablate``: which variants, how many seeds, at which budget). A new variant is a new file; a new study is an entry
of the index."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .cli import shown
from .config import Config, checked_values, normalised, read_written_options
from .models import registry
from .plain_yaml import read_plain_yaml

INDEX_NAME = "index.yaml"
INSTALLED_DIR = "ablations"  # the wheel's copy of configs/ablations/, inside the package (setup.py)
DEFAULT_STUDY = "default"  # what ablate runs without --study
STUDY_KEYS = {"about", "variants", "seeds", "budget"}  # and one_stream_seeds, optional


@dataclass(frozen=True)
class Comparison:
    """A claim as the difference ``better - baseline`` of two variants' figures."""

    better: str
    baseline: str
    meaning: str


@dataclass(frozen=True)
class Study:
    """A preset of the ablation: its variants, the seeds of each (``one_stream_seeds``: of the one-stream variants,
    the first of them; None: all), and its budget, the common configuration's defaults (paths -> values; empty:
    the train command's own defaults), which --config and the command line win over."""

    name: str
    about: str
    variants: tuple[str, ...]
    seeds: int
    one_stream_seeds: int | None
    budget: dict


@dataclass(frozen=True)
class Ablations:
    """The variants (name -> overrides by configuration path, in the index's order), the comparisons, the studies,
    and the variants this installation cannot run (name -> why: a part they choose is not registered; their
    overrides are as written, unchecked)."""

    folder: Path
    variants: dict[str, dict]
    comparisons: tuple[Comparison, ...]
    studies: dict[str, Study]
    unavailable: dict[str, str]

    def names(self) -> list[str]:
        return list(self.variants)

    def pick(self, names: list[str]) -> list[str]:
        """``names`` (--variants), checked: an unknown one is an error that lists the known, one this installation
        cannot run an error that says why."""
        unknown = [name for name in names if name not in self.variants]
        if unknown or not names:
            raise ValueError(f"--variants must name some of {', '.join(self.variants)} (the files in "
                             f"{self.folder}), got {', '.join(map(shown, unknown)) if unknown else 'none'}")
        for name in names:
            if name in self.unavailable:
                raise ValueError(f"variant {name} ({self.folder / name}.yaml) {self.unavailable[name]}")
        return list(names)

    def plan(self, study: str | None, variants: list[str] | None) -> Study:
        """What ``ablate`` runs: the study named by --study (default: the default study) or, with --variants, some
        variants at that study's seeds and budget. With --study, --variants picks among the study's variants (a
        rerun of part of it); one outside the study is an error, since its runs would not be the study's."""
        if study is not None and study not in self.studies:
            raise ValueError(f"--study must be one of {', '.join(self.studies)}, got {shown(study)}")
        preset = self.studies[DEFAULT_STUDY if study is None else study]
        if variants is None:
            variants = list(preset.variants)
        elif study is not None and (outside := [name for name in variants if name not in preset.variants]):
            raise ValueError(f"--variants names {', '.join(outside)}, not in --study {study} (its variants: "
                             f"{', '.join(preset.variants)}); without --study, --variants runs any variants at the "
                             f"{DEFAULT_STUDY} study's seeds and budget")
        return Study(preset.name, preset.about, tuple(self.pick(variants)), preset.seeds, preset.one_stream_seeds,
                     preset.budget)


def default_folder(package: Path | None = None) -> Path:
    """configs/ablations/ in a checkout (or an editable install), else the installed package's copy (``package``:
    the jna_fast folder, default this module's)."""
    package = Path(__file__).resolve().parent if package is None else package
    for folder in (package.parent / "configs" / "ablations", package / INSTALLED_DIR):
        if (folder / INDEX_NAME).is_file():
            return folder
    raise FileNotFoundError(f"no ablation variants: neither {package.parent / 'configs' / 'ablations'} nor "
                            f"{package / INSTALLED_DIR} holds {INDEX_NAME} (reinstall jna_fast)")


def read_ablations(folder: str | os.PathLike | None = None) -> Ablations:
    """The variants, comparisons and studies in ``folder`` (default: :func:`default_folder`)."""
    folder = default_folder() if folder is None else Path(folder)
    index = folder / INDEX_NAME
    files = {path.stem: path for path in sorted(folder.glob("*.yaml")) if path.name != INDEX_NAME}
    order, comparisons, studies = _read_index(index)
    missing = [name for name in order if name not in files]
    if missing:
        raise ValueError(f"{index}: order names variants without a file: {', '.join(missing)}")
    names = [*order, *(name for name in files if name not in order)]
    variants, unavailable = {}, {}
    for name in names:
        written = read_written_options(files[name])
        needs = [f"the {kind.replace('_', ' ')} part {part}, which this installation does not register (it has "
                 f"{', '.join(registry.names(kind))})" for kind in registry.KINDS
                 if isinstance(part := written.get(f"model.{kind}.name"), str) and part not in registry.names(kind)]
        if needs:
            unavailable[name] = f"needs {'; and '.join(needs)}"
        variants[name] = written if needs else checked_values(written, f"--config {files[name]}")
    named = [(f"comparison {c.better} - {c.baseline}", (c.better, c.baseline)) for c in comparisons]
    for where, used in (*named, *((f"study {study.name}", study.variants) for study in studies.values())):
        for name in used:
            if name not in variants:
                raise ValueError(f"{index}: {where} names no variant {name!r} (known: {', '.join(variants)})")
    return Ablations(folder, variants, comparisons, studies, unavailable)


def _read_index(path: Path) -> tuple[list[str], tuple[Comparison, ...], dict[str, Study]]:
    loaded = read_plain_yaml(path, str(path)) or {}
    if not isinstance(loaded, dict) or set(loaded) - {"order", "comparisons", "studies"}:
        raise ValueError(f"{path}: expected a mapping with order (a list of variant names), comparisons and studies")
    order = loaded.get("order") or []
    if not isinstance(order, list) or not all(isinstance(name, str) for name in order):
        raise ValueError(f"{path}: order must be a list of variant names")
    comparisons = []
    for entry in loaded.get("comparisons") or []:
        if not isinstance(entry, dict) or set(entry) != {"better", "baseline", "meaning"}:
            raise ValueError(f"{path}: each comparison is a mapping of better, baseline and meaning, got "
                             f"{shown(entry)}")
        comparisons.append(Comparison(str(entry["better"]), str(entry["baseline"]), str(entry["meaning"])))
    studies = loaded.get("studies") or {}
    if not isinstance(studies, dict) or DEFAULT_STUDY not in studies:
        raise ValueError(f"{path}: studies must be a mapping of study names, {DEFAULT_STUDY} among them")
    return order, tuple(comparisons), {str(name): _study(str(name), entry, path) for name, entry in studies.items()}


def _study(name: str, entry, path: Path) -> Study:
    where = f"{path}: study {name}"
    if not isinstance(entry, dict) or not STUDY_KEYS <= set(entry) <= STUDY_KEYS | {"one_stream_seeds"}:
        raise ValueError(f"{where}: expected a mapping of {', '.join(sorted(STUDY_KEYS))} (and one_stream_seeds, "
                         f"optional), got {shown(entry)}")
    variants, budget = entry["variants"], entry["budget"]
    if not isinstance(variants, list) or not variants or not all(isinstance(item, str) for item in variants):
        raise ValueError(f"{where}: variants must be a list of variant names, got {shown(variants)}")
    counts = {key: entry.get(key) for key in ("seeds", "one_stream_seeds")}
    for key, count in counts.items():
        if not (count is None and key == "one_stream_seeds") and (
                isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ValueError(f"{where}: {key} must be an integer >= 1, got {shown(count)}")
    if not isinstance(budget, dict):
        raise ValueError(f"{where}: budget must be a mapping of option: value (by path or short alias; {{}}: the "
                         f"train command's defaults), got {shown(budget)}")
    return Study(name, str(entry["about"]), tuple(variants), counts["seeds"], counts["one_stream_seeds"],
                 normalised(budget, f"{where} budget"))


def scores_attention(cfg: Config) -> bool:
    """Whether a variant's runs weigh the snippets by a learned attention, whose localisation can be scored."""
    part = registry.lookup("temporal_pooling", cfg.model.temporal_pooling.name)
    return getattr(part, "LEARNS_ATTENTION", False)


def pictures_attention(cfg: Config) -> bool:
    """Whether a variant's evaluation pictures a learned attention worth keeping with the ablation's results: over
    the snippets (:func:`scores_attention`) or over the positions of a frame (a spatial pooling part that declares
    ``LEARNS_ATTENTION``, whose maps its evaluation draws into the same strips)."""
    part = registry.lookup("spatial_pooling", cfg.model.spatial_pooling.name)
    return scores_attention(cfg) or getattr(part, "LEARNS_ATTENTION", False)


def one_stream(cfg: Config) -> bool:
    return cfg.model.streams != "both"


def varied_paths(ablations: Ablations, variants: list[str]) -> tuple[str, ...]:
    """The configuration paths some of ``variants`` sets: a part's name stands for its whole section (its options
    come with it)."""
    paths = {path.removesuffix(".name") if path.endswith(".name") else path
             for name in variants for path in ablations.variants[name]}
    return tuple(sorted(paths))
