"""The ablation's variants and claims as data (docs/design.md §10): ``configs/ablations/`` (installed as
``jna_fast/ablations/``) holds one ``<variant>.yaml`` per variant, an override of the common configuration read as a
``--config`` file is (plain YAML, every key a known option, sectioned or by its short alias), and ``index.yaml``,
which orders the variants and lists the comparisons that carry the claims. A new variant is a new file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .cli import shown
from .config import Config, read_config_file
from .models import registry
from .plain_yaml import read_plain_yaml

INDEX_NAME = "index.yaml"
INSTALLED_DIR = "ablations"  # the wheel's copy of configs/ablations/, inside the package (setup.py)


@dataclass(frozen=True)
class Comparison:
    """A claim as the difference ``better - baseline`` of two variants' figures."""

    better: str
    baseline: str
    meaning: str


@dataclass(frozen=True)
class Ablations:
    """The variants (name -> overrides by configuration path, in the index's order) and the comparisons."""

    folder: Path
    variants: dict[str, dict]
    comparisons: tuple[Comparison, ...]

    def names(self) -> list[str]:
        return list(self.variants)

    def pick(self, names: list[str]) -> list[str]:
        """``names`` (--variants), checked: an unknown one is an error that lists the known."""
        unknown = [name for name in names if name not in self.variants]
        if unknown or not names:
            raise ValueError(f"--variants must name some of {', '.join(self.variants)} (the files in "
                             f"{self.folder}), got {', '.join(map(shown, unknown)) if unknown else 'none'}")
        return list(names)


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
    """The variants and comparisons in ``folder`` (default: :func:`default_folder`)."""
    folder = default_folder() if folder is None else Path(folder)
    files = {path.stem: path for path in sorted(folder.glob("*.yaml")) if path.name != INDEX_NAME}
    order, comparisons = _read_index(folder / INDEX_NAME)
    missing = [name for name in order if name not in files]
    if missing:
        raise ValueError(f"{folder / INDEX_NAME}: order names variants without a file: {', '.join(missing)}")
    names = [*order, *(name for name in files if name not in order)]
    variants = {name: read_config_file(files[name]) for name in names}
    for comparison in comparisons:
        for name in (comparison.better, comparison.baseline):
            if name not in variants:
                raise ValueError(f"{folder / INDEX_NAME}: comparison {comparison.better} - {comparison.baseline} "
                                 f"names no variant {name!r} (known: {', '.join(variants)})")
    return Ablations(folder, variants, comparisons)


def _read_index(path: Path) -> tuple[list[str], tuple[Comparison, ...]]:
    loaded = read_plain_yaml(path, str(path)) or {}
    if not isinstance(loaded, dict) or set(loaded) - {"order", "comparisons"}:
        raise ValueError(f"{path}: expected a mapping with order (a list of variant names) and comparisons")
    order = loaded.get("order") or []
    if not isinstance(order, list) or not all(isinstance(name, str) for name in order):
        raise ValueError(f"{path}: order must be a list of variant names")
    comparisons = []
    for entry in loaded.get("comparisons") or []:
        if not isinstance(entry, dict) or set(entry) != {"better", "baseline", "meaning"}:
            raise ValueError(f"{path}: each comparison is a mapping of better, baseline and meaning, got "
                             f"{shown(entry)}")
        comparisons.append(Comparison(str(entry["better"]), str(entry["baseline"]), str(entry["meaning"])))
    return order, tuple(comparisons)


def scores_attention(cfg: Config) -> bool:
    """Whether a variant's runs weigh the snippets by a learned attention, whose localisation can be scored."""
    part = registry.lookup("temporal_pooling", cfg.model.temporal_pooling.name)
    return getattr(part, "LEARNS_ATTENTION", False)


def one_stream(cfg: Config) -> bool:
    return cfg.model.streams != "both"


def varied_paths(ablations: Ablations) -> tuple[str, ...]:
    """The configuration paths some variant sets: a part's name stands for its whole section (its options come
    with it)."""
    paths = {path.removesuffix(".name") if path.endswith(".name") else path
             for overrides in ablations.variants.values() for path in overrides}
    return tuple(sorted(paths))
