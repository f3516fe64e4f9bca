"""The dataset spec: what one kind of dataset knows about itself (docs/design.md §3.1)."""

from __future__ import annotations

from collections.abc import Mapping

from ...options import NoOptions
from ...registry import Registry

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
                         "on_error"})
RAWFRAMES_NAMING = frozenset({"rgb_template", "flow_template", "start_index"})


class DatasetSpec:
    """A dataset kind. Subclasses set:

    - ``Options``: a dataclass of the kind's own options (the ``data.<kind>`` section), NoOptions when none;
    - ``reads``: the data options it reads besides :data:`ALWAYS_READ`; any other one a user gives is refused;
    - ``splits``: its official split numbers (empty: it reads list files instead);
    - ``recipe``: its default recipe, configuration paths -> values, between the options' own defaults and the
      user's values;
    - ``trainable``: whether a model trains on it (the single video that prediction reads is not).
    """

    name = ""
    Options = NoOptions
    reads: frozenset[str] = frozenset()
    splits: tuple[int, ...] = ()
    recipe: Mapping[str, object] = {}
    trainable = True
    needs_root = True
    needs_lists = False

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
