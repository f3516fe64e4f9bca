"""The dataset spec: what one kind of dataset knows about itself (docs/design.md §6.7)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ...io.errors import DataError, IssueLog
from ...options import NoOptions
from ...registry import Registry
from ..lists import DatasetIndex

DATASETS = Registry("data.dataset")
register_dataset = DATASETS.register

# TSN's recipe on real data: ResNet-50 from ImageNet weights, SGD, 224 px crops of 3 segments; sharing after the
# last two stages, starting nearly apart, so that it does not overwrite the pretrained RGB features.
TSN_RECIPE = {
    "model.backbone.name": "resnet50", "data.size": 224, "data.num_segments": 3, "optim.epochs": 80,
    "optim.optimizer": "sgd", "optim.lr": 0.01, "optim.weight_decay": 5e-4, "model.sharing.after": (3, 4),
    "model.sharing.self_weight": 0.9, "model.sharing.normalise": False, "model.sharing.shared_fraction": 1.0,
    "model.sharing.lr_scale": 1.0,
}
# Data options every kind reads; the others only the kinds that list them in ``reads``.
ALWAYS_READ = frozenset({"dataset", "root", "size", "flip", "num_segments", "flow", "flow_algorithm", "backend",
                         "on_error", "memory_cache", "memory_cache_mib"})
RAWFRAMES_NAMING = frozenset({"rgb_template", "flow_template", "start_index"})
# TSN's rawframes (340 x 256): the short side that 224 px test crops (0.875 of it) are cut from.
TSN_SHORT_SIDE = 256


def cache_root() -> Path:
    """Where datasets made on first use, and the demo's examples, are kept: ``$JNA_FAST_CACHE``, by default
    ``~/.cache/jna_fast``."""
    return Path(os.environ.get("JNA_FAST_CACHE", Path.home() / ".cache" / "jna_fast"))


class DatasetSpec:
    """A dataset kind. Subclasses set:

    - ``Options``: a dataclass of the kind's own options (the ``data.<kind>`` section), NoOptions when none;
    - ``reads``: the data options it reads besides :data:`ALWAYS_READ`; any other one a user gives is refused;
    - ``splits``: its official split numbers (empty: it reads list files instead);
    - ``recipe``: its default recipe, configuration paths -> values, between the options' own defaults and the
      user's values;
    - ``trainable``: whether a model trains on it (the single video that prediction reads is not);
    - ``stores_videos``: whether its records are video files (RGB decoded from them by default, flow computable
      online), or rawframes folders only;
    - ``frame_short_side``: the short side of its frames, for checkpoints that do not record their training
      frames' (the TSN recipe extracts at ``--short-side 256``);
    - ``made_on_first_use``: whether :meth:`prepare` makes it (a generated set) before a run reads it;

    and implement :meth:`index` (its records, with the shared parsers of jna_fast/data/lists.py); the other methods'
    defaults fit a dataset that lies under ``--root`` as it is, flips keeping its labels, without known windows.
    The methods that take ``data`` read the data section of a configuration (``cfg.data``).
    """

    name = ""
    Options = NoOptions
    reads: frozenset[str] = frozenset()
    splits: tuple[int, ...] = ()
    recipe: Mapping[str, object] = {}
    trainable = True
    needs_root = True
    needs_lists = False
    stores_videos = True
    frame_short_side = TSN_SHORT_SIDE
    made_on_first_use = False

    def index(self, root: Path, *, subset: str, split: int, list_file, frames_root: Path | None,
              num_classes: int | None, issues: IssueLog) -> DatasetIndex:
        """The records of ``subset`` ("train" or "test") of the dataset in ``root``: of official ``split``, or of
        ``list_file`` (relative paths under ``root``), labels bounded by ``num_classes``; ``frames_root``: where
        the rawframes of video datasets live; ``issues`` applies on_error to bad lines."""
        raise NotImplementedError(f"dataset kind {self.name!r} does not say how to index it")

    def roots(self, data) -> tuple[Path, Path | None]:
        """(root, frames_root) of the configured dataset: where it is, or will be made."""
        return Path(data.root), Path(data.frames_root) if data.frames_root else None

    def flips_preserve_labels(self, root: Path) -> bool:
        """The flip policy (when --flip/--no-flip is not given): whether a horizontal flip keeps the labels, as in
        TSN."""
        return True

    def salient_windows(self, root: Path):
        """The known discriminative windows of the dataset in ``root`` (jna_fast.data.synthetic.SalientWindows), or
        None."""
        return None

    def prepare(self, data, progress: bool = True) -> None:
        """Make the configured dataset where :meth:`roots` says, unless already there (``made_on_first_use``)."""

    def ready(self, data) -> bool:
        """Whether the configured dataset is complete where this process looks for it; reads only."""
        return True

    def example_videos(self, data, class_names: list[str], cache: Path, count: int) -> list[tuple[str, Path]]:
        """(class name, video file) of example clips of the first ``count`` of ``class_names`` (a model's classes,
        trained on the configured dataset), made into ``cache`` if need be; [] when the kind has none."""
        return []

    def unused_reason(self, name: str, data: Mapping[str, object]) -> str | None:
        """Why data option ``name`` changes nothing for this kind with the other data options ``data``, or None."""
        if name in ALWAYS_READ:
            return None
        if name in RAWFRAMES_NAMING | {"frames_root"} and data.get("flow") == "online" and name in self.reads:
            return "does not apply to --flow online, which computes the flow from the videos and reads no rawframes"
        if name in self.reads:
            return None
        if name in ("train_list", "val_list"):
            return (f"applies to --dataset videos/rawframes; {self.name} trains and tests on its official split "
                    f"(--split): for lists of your own, use --dataset videos or rawframes")
        if name == "num_classes":
            return f"applies to --dataset videos/rawframes; {self.name} defines its classes"
        if name == "split":
            return f"applies to --dataset synthetic/ucf101/hmdb51; {self.name} reads --train-list and --val-list"
        return f"does not apply to --dataset {self.name}"

    def check(self, data: Mapping[str, object], options) -> None:
        """Refuse what this kind cannot use (ValueError naming the option); ``options``: the kind's own."""
        if self.needs_root and data.get("root") is None:
            raise ValueError(f"--dataset {self.name} needs --root")
        if self.needs_lists and not (data.get("train_list") and data.get("val_list")):
            raise ValueError(f"--dataset {self.name} needs --train-list and --val-list")
        if self.splits and data.get("split") not in self.splits:
            raise ValueError(f"option data.split must be one of {', '.join(map(str, self.splits))} for --dataset "
                             f"{self.name}, got {data.get('split')!r}")


def existing_root(root: Path) -> Path:
    """``root``, or a DataError when it is not a folder."""
    if not root.is_dir():
        raise DataError(f"{root}: dataset root not found")
    return root


def list_path(root: Path, list_file, kind: str) -> Path:
    """The list file ``list_file`` of a kind that reads lists (relative paths are taken under ``root``)."""
    if list_file is None:
        raise ValueError(f"kind={kind!r} needs list_file= (a list file under root, or an absolute path)")
    return root / list_file
