"""The synthetic set: small videos whose classes are told by the flow (motion), by the RGB (appearance) or by
neither alone (binding), generated on first use (jna_fast/data/synthetic/) into a cache folder named after its
parameters (``$JNA_FAST_CACHE/synthetic/<parameters>``), its flow extracted there, laid out as UCF101 with three
splits; a flip would swap SlideLeft and SlideRight, so its policy is no flips (docs/design.md §6.3, §6.7). The
generator's rendering and encoding (OpenCV, PyAV) and the flow extractor load when the set is made."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ... import flow
from ...flow.names import DEFAULT_ONLINE_ALGORITHM
from ...io.errors import DataError
from ...options import option
from .. import synthetic as generator
from ..lists import parse_ucf101
from ..synthetic.classes import DEFAULT_FRAME_SIZE, DEFAULT_NUM_CLASSES, FAMILIES, WINDOW_FRACTION
from ..synthetic.layout import (VIDEO_DIR, SalientWindows, cache_folder_name, complete_dataset_parameters,
                                flips_preserve_labels)
from .base import DatasetSpec, RAWFRAMES_NAMING, cache_root, existing_root, register_dataset

logger = logging.getLogger("jna_fast")

# The training command's set is larger than make_synthetic's default (a quick example set): enough clips per class
# to learn from, at least 2 groups of 2 clips so that every split has test and training videos of each class.
TRAINING_VIDEOS_PER_CLASS = 40

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
    frame_short_side = DEFAULT_FRAME_SIZE
    made_on_first_use = True
    # Its flow is extracted with the fast online algorithm: its videos are small and cleanly textured.
    flow_algorithm = DEFAULT_ONLINE_ALGORITHM

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

    @staticmethod
    def parameters(options: SyntheticOptions) -> dict:
        """make_synthetic's arguments for the set these options configure."""
        return {"num_classes": options.classes, "videos_per_class": options.videos_per_class,
                "window_fraction": tuple(options.window_fraction), "decoys": options.decoys, "seed": options.seed,
                "families": tuple(options.families)}

    def roots(self, data):
        """--root, else the cache folder named after the set's parameters; its flow in ``frames/`` there (none with
        --flow online), unless --frames-root says otherwise."""
        root = (Path(data.root) if data.root else
                cache_root() / "synthetic" / cache_folder_name(**self.parameters(data.synthetic)))
        if data.frames_root:
            return root, Path(data.frames_root)
        return root, None if data.flow == "online" else root / "frames"

    def index(self, root, *, subset, split, list_file, frames_root, num_classes, issues):
        return parse_ucf101(existing_root(root), split, subset, frames_root, issues)

    def flips_preserve_labels(self, root):
        return flips_preserve_labels(root)  # as its metadata declares: no

    def salient_windows(self, root):
        return SalientWindows.read(root)

    def prepare(self, data, progress=True):
        """Generate the set and extract its flow (unless --flow online), unless already there (both steps are
        resumable). A complete synthetic set already in an explicit ``--root`` (made by ``python -m
        jna_fast.data.synthetic``, say) is used as it is; the ``--synthetic-*`` options only shape a set generated
        here."""
        root, frames_root = self.roots(data)
        made_with = complete_dataset_parameters(root) if data.root else None
        if made_with is not None:
            logger.info("synthetic dataset in %s: using it as it is (made with %s)", root, made_with)
        else:
            parameters = self.parameters(data.synthetic)
            logger.info("synthetic dataset in %s (%s)", root, parameters)
            generator.make_synthetic(root, **parameters)
        if data.flow == "online":
            return
        summary = flow.extract_flow(root / VIDEO_DIR, frames_root, algorithm=self.flow_algorithm, progress=progress)
        if summary["failed"]:
            raise DataError(f"{frames_root}: flow extraction failed for {len(summary['failed'])} synthetic videos: "
                            f"{summary['failed'][:3]}")

    def ready(self, data):
        root, frames_root = self.roots(data)
        if complete_dataset_parameters(root) is None:
            return False
        return data.flow == "online" or flow.extraction_complete(root / VIDEO_DIR, frames_root,
                                                                 algorithm=self.flow_algorithm)

    def example_videos(self, data, class_names, cache, count):
        """One fresh clip of each of the first ``count`` classes, drawn as the set's own (jna_fast/data/synthetic/
        examples.py)."""
        return generator.example_clips(class_names, data.synthetic, cache, count)
