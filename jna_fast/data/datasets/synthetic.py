"""The synthetic set: small videos whose classes are told by the flow (motion), by the RGB (appearance) or by
neither alone (binding), generated on first use (jna_fast/data/synthetic.py), laid out as UCF101 with three splits;
a flip would swap SlideLeft and SlideRight, so its policy is no flips (docs/design.md §3.5)."""

from __future__ import annotations

from dataclasses import dataclass

from ...flow.names import DEFAULT_ONLINE_ALGORITHM
from ...options import option
from .base import DatasetSpec, RAWFRAMES_NAMING, register_dataset

FAMILIES = ("motion", "appearance", "binding")
DEFAULT_NUM_CLASSES = 10
# The training command's set is larger than make_synthetic's default (a quick example set): enough clips per class
# to learn from, at least 2 groups of 2 clips so that every split has test and training videos of each class.
TRAINING_VIDEOS_PER_CLASS = 40
WINDOW_FRACTION = (0.3, 0.5)  # of the video's frames

# Small videos learnt from scratch in minutes on a CPU: AdamW, more snippets for the attention to choose from, and
# a stitch after every stage on half the channels, starting half mixed on branches brought to one scale and
# learning 10x faster than the convolutions (docs/design.md §2.2). Its flow is computed with the fast
# online algorithm: the videos are small and cleanly textured.
SYNTHETIC_RECIPE = {
    "model.backbone.name": "resnet18", "data.size": 64, "data.num_segments": 5, "optim.epochs": 12,
    "optim.optimizer": "adamw", "optim.lr": 1e-3, "optim.weight_decay": 0.05, "model.sharing.after": (1, 2, 3, 4),
    "model.sharing.self_weight": 0.5, "model.sharing.normalise": True, "model.sharing.shared_fraction": 0.5,
    "model.sharing.lr_scale": 10.0, "data.flow_algorithm": DEFAULT_ONLINE_ALGORITHM,
}


@dataclass(frozen=True)
class SyntheticOptions:
    classes: int = option(DEFAULT_NUM_CLASSES, "classes of the synthetic set: the first of the catalogue of the "
                          "chosen families (2..14 with all three; 10 of all three are 4 motion, 4 appearance and 2 "
                          "binding classes)", minimum=2, maximum=14)
    families: tuple[str, ...] = option(FAMILIES, "class families of the synthetic set: motion (told by the flow), "
                                       "appearance (told by the RGB), binding (which colour moves which way: told "
                                       "by neither stream alone)", metavar="FAMILIES")
    videos_per_class: int = option(TRAINING_VIDEOS_PER_CLASS, "videos per class of the synthetic set", minimum=3)
    window_fraction: tuple[float, ...] = option(WINDOW_FRACTION, "the discriminative window covers LOW..HIGH of "
                                                "each video", metavar="LOW,HIGH", above=0, maximum=1)
    decoys: int = option(0, "bursts of other classes outside the window (harder)", minimum=0)
    seed: int = option(0, "seed of the synthetic videos (independent of --seed, so runs with other seeds see the "
                       "same data)", minimum=0)


@register_dataset("synthetic")
class Synthetic(DatasetSpec):
    name = "synthetic"
    Options = SyntheticOptions
    reads = frozenset({"split", "frames_root"}) | RAWFRAMES_NAMING
    splits = (1, 2, 3)
    recipe = SYNTHETIC_RECIPE
    needs_root = False

    def check(self, data, options: SyntheticOptions) -> None:
        super().check(data, options)
        low_high = options.window_fraction
        if len(low_high) != 2 or low_high[0] > low_high[1]:
            raise ValueError(f"--synthetic-window-fraction must be LOW,HIGH with LOW <= HIGH, got "
                             f"{','.join(map(str, low_high))}")
        unknown = [family for family in options.families if family not in FAMILIES]
        if unknown or not options.families:
            raise ValueError(f"--synthetic-families must name some of {', '.join(FAMILIES)}, got "
                             f"{','.join(options.families) or 'none'}")
