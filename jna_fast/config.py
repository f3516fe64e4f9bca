"""The training configuration: one definition of every option, feeding the CLI, the config file and the checkpoint.

Each field of :class:`TrainConfig` is an option. Its metadata gives the CLI group and help, the range of a numeric
option (:class:`jna_fast.cli.Range`: every value from the command line, a config file or a checkpoint is checked
against it, and a float must be finite), and whether it may change when a run resumes (``resumable``). Values
come, lowest precedence first, from the field defaults, the dataset-dependent defaults (:data:`DATASET_DEFAULTS`),
a YAML file (``--config FILE``: a small plain document, :mod:`jna_fast.plain_yaml`) and the command line. The
resolved configuration is saved as ``OUT/config.yaml`` and inside every checkpoint, and ``--config OUT/config.yaml``
repeats a run. An option that the chosen data would not read (a list file for UCF101, say) is refused when given
other than at its default (:func:`check_options_apply`).

Options that may change on resume (the rest must match the checkpoint's, or the run is refused) are those marked
``resumable`` (:data:`RESUMABLE_OPTIONS`): where and how often the run writes, how long it trains, how it meets bad
input, and how it computes without changing what it computes.

The test protocol (TSN: ``eval_segments`` snippets, ``eval_crops`` views per video) is a pair of options too: the
final evaluation of a training run, ``python -m jna_fast.evaluate``, ``predict``, the demo and the ablation all
take their defaults from them.

Every list of choices is the one of the module that owns the choice (the data backends, flow sources and
algorithms, dataset kinds, backbones, streams and consensus, op backends), imported here.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field

import yaml

from .cli import Range, add_debug_option, shown
from .data.lists import KINDS as DATA_KINDS
from .data.loader import BACKENDS as DATA_BACKENDS
from .data.loader import DEFAULT_TEST_SEGMENTS, FLOW_SOURCES
from .data.synthetic import DEFAULT_FAMILIES as DEFAULT_SYNTHETIC_FAMILIES
from .data.synthetic import DEFAULT_NUM_CLASSES as DEFAULT_SYNTHETIC_CLASSES
from .data.synthetic import FAMILIES as SYNTHETIC_FAMILIES
from .data.synthetic import TRAINING_VIDEOS_PER_CLASS
from .io.errors import ON_ERROR_CHOICES
from .data.transforms import TEST_CROP_COUNTS
from .files import write_atomically
from .flow import ALGORITHMS as FLOW_ALGORITHMS
from .flow import DEFAULT_EXTRACTION_ALGORITHM
from .flow import DEFAULT_ONLINE_ALGORITHM
from .models.jna import BACKBONE_DEPTHS, CONSENSUS, STREAMS, branches_fit
from .models.resnet import STAGES
from .ops import BACKEND_NAMES as OP_BACKENDS
from .plain_yaml import read_plain_yaml
from .runtime import PRECISIONS

# The synthetic set, and every kind the data package reads as a dataset (its "video" kind is one file, for
# prediction).
DATASET_KINDS = ("synthetic", *(kind for kind in DATA_KINDS if kind != "video"))
BACKBONES = tuple(BACKBONE_DEPTHS)
CONFIG_NAME = "config.yaml"

# Defaults that depend on the data: the synthetic videos are 96 px and small enough to learn from scratch in
# minutes on a CPU; real datasets get the TSN-standard 224 px crops and a ResNet-50.
# From scratch on the small synthetic set AdamW learns in a third of SGD's epochs, and 5 training snippets give
# the attention more to choose from than TSN's 3 (benchmarks/results/attention_2026-11-29.md); on real data
# TSN's recipe: SGD from ImageNet weights, 3 segments.
# The cross-stitch recipe: from scratch, a stitch after every stage on half the channels (the other half private to
# each branch), starting half mixed, on branches brought to one scale, learning 10x faster than the convolutions:
# starting half mixed is what learns the binding family (which colour moves which way), and the private half keeps
# the appearance family that mixing every channel costs (benchmarks/results/sharing_2026-12-06.md); from ImageNet
# weights the branches start nearly apart after the last two stages, so that sharing does not overwrite the
# pretrained RGB features (untested on real data so far).
DATASET_DEFAULTS = {
    "synthetic": {"backbone": "resnet18", "size": 64, "epochs": 12, "optimizer": "adamw", "lr": 1e-3,
                  "weight_decay": 0.05, "num_segments": 5, "share_after": (1, 2, 3, 4), "stitch_self_weight": 0.5,
                  "stitch_normalise": True, "stitch_shared_fraction": 0.5, "stitch_lr_scale": 10.0},
    "real": {"backbone": "resnet50", "size": 224, "epochs": 80, "optimizer": "sgd", "lr": 0.01,
             "weight_decay": 5e-4, "num_segments": 3, "share_after": (3, 4), "stitch_self_weight": 0.9,
             "stitch_normalise": False, "stitch_shared_fraction": 1.0, "stitch_lr_scale": 1.0},
}


def option(default, help: str, group: str, *, choices=None, resumable: bool = False, flag: str | None = None,
           metavar: str | None = None, minimum: float | None = None, maximum: float | None = None,
           above: float | None = None, below: float | None = None):
    """A configuration field: its default, CLI help and group, the range of its values (of each item, for a
    tuple), and whether a resumed run may change it."""
    metadata = {"help": help, "group": group, "choices": choices, "resumable": resumable, "flag": flag,
                "metavar": metavar, "range": Range(minimum, maximum, above, below)}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    # data
    dataset: str = option("synthetic", "dataset kind", "data", choices=DATASET_KINDS)
    root: str | None = option(None, "dataset root (synthetic: where to generate it; default: a cache folder "
                              "named after its parameters)", "data")
    frames_root: str | None = option(None, "rawframes folder with the extracted flow (python -m jna_fast.flow)",
                                     "data")
    split: int = option(1, "official split number (ucf101, hmdb51 and the synthetic set have 3)", "data",
                        minimum=1, maximum=3)
    train_list: str | None = option(None, "list file for --dataset videos/rawframes (training)", "data")
    val_list: str | None = option(None, "list file for --dataset videos/rawframes (validation)", "data")
    num_classes: int | None = option(None, "classes of --dataset videos/rawframes (default: the largest training "
                                     "label + 1, every class then needing a training line)", "data", minimum=1)
    # The backbones reduce their input 32 times: a smaller crop leaves their last stages a single pixel.
    size: int | None = option(None, "crop size fed to the network (default: 64 synthetic, 224 real)", "data",
                              minimum=32)
    flip: bool | None = option(None, "horizontal flips in training and test views (default: the dataset's "
                               "policy: on for UCF101/HMDB51 and lists, off for the synthetic set, whose "
                               "SlideLeft/SlideRight labels a flip would swap)", "data")
    flow: str = option("rawframes", "where flow comes from: the rawframes under --frames-root, or computed on the "
                       "fly from the decoded videos (no rawframes needed)", "data",
                       choices=FLOW_SOURCES)
    flow_algorithm: str | None = option(None, f"online: the algorithm to compute flow with (default "
                                        f"{DEFAULT_ONLINE_ALGORITHM}); rawframes: the one they were extracted with "
                                        f"(default {DEFAULT_EXTRACTION_ALGORITHM}, the extractor's); prediction "
                                        f"computes a video's flow with it", "data", choices=FLOW_ALGORITHMS)
    rgb_template: str = option("img_{:05d}.jpg", "RGB file names in a rawframes folder (mmaction2's "
                               "filename_tmpl)", "data")
    flow_template: str = option("flow_{}_{:05d}.jpg", "flow file names: {} takes x or y, then the number",
                                "data")
    start_index: int = option(1, "number of the first file in a rawframes folder", "data", minimum=0)
    data_backend: str = option("auto", "clip decoding backend", "data", choices=DATA_BACKENDS,
                               resumable=True)
    on_error: str = option("skip", "a corrupt video: stop, or warn, skip and count it", "data",
                           choices=ON_ERROR_CHOICES, resumable=True)
    # synthetic data
    synthetic_classes: int = option(DEFAULT_SYNTHETIC_CLASSES, "classes of the synthetic set: the first of the "
                                    "catalogue of the chosen families (2..14 with all three; 10 of all three are 4 "
                                    "motion, 4 appearance and 2 binding classes)", "synthetic data", minimum=2,
                                    maximum=14)
    synthetic_families: tuple[str, ...] = option(
        DEFAULT_SYNTHETIC_FAMILIES, "class families of the synthetic set: motion (told by the flow), "
        "appearance (told by the RGB), binding (which colour moves which way: told by neither stream alone)",
        "synthetic data", metavar="FAMILIES")
    synthetic_videos_per_class: int = option(TRAINING_VIDEOS_PER_CLASS, "videos per class of the synthetic set",
                                             "synthetic data", minimum=3)
    synthetic_window_fraction: tuple[float, ...] = option(
        (0.3, 0.5), "the discriminative window covers LOW..HIGH of each video", "synthetic data",
        metavar="LOW,HIGH", above=0, maximum=1)
    synthetic_decoys: int = option(0, "bursts of other classes outside the window (harder)", "synthetic data",
                                   minimum=0)
    synthetic_seed: int = option(0, "seed of the synthetic videos (independent of --seed, so runs with other "
                                 "seeds see the same data)", "synthetic data", minimum=0)
    # model
    backbone: str | None = option(None, "default: resnet18 on the synthetic data, resnet50 otherwise", "model",
                                  choices=BACKBONES)
    weights: str | None = option(None, "torchvision ImageNet weight file (.pth) for both branches", "model")
    streams: str = option("both", "which branches: both (two-stream), or one alone", "model",
                          choices=STREAMS)
    num_segments: int | None = option(None, "T for training (default: 5 on the synthetic data, 3 otherwise)",
                                      "model", minimum=1)
    test_segments: int = option(5, "T for the per-epoch validation (the test protocol: --eval-segments)",
                                "model", minimum=1)
    flow_length: int = option(5, "L flow fields per stack", "model", minimum=1)
    share_after: tuple[int, ...] | None = option(None, "stages followed by a cross-stitch unit (empty: no sharing; "
                                                 "default: 1,2,3,4 on the synthetic data, 3,4 otherwise)", "model",
                                                 metavar="STAGES", minimum=min(STAGES), maximum=max(STAGES))
    stitch_self_weight: float | None = option(None, "initial cross-stitch weights: each branch keeps this share of "
                                              "itself and takes the rest from the other (1.0: start apart, as TSN; "
                                              "default: 0.5 on the synthetic data, 0.9 otherwise)", "model",
                                              minimum=0, maximum=1)
    stitch_normalise: bool | None = option(None, "apply the cross-stitch weights to the branches brought to one "
                                           "scale (each channel's RMS activation), so that a weight means the same "
                                           "share in both (default: on for the synthetic data)", "model")
    stitch_shared_fraction: float | None = option(None, "share of each cross-stitch's channels mixed; the others "
                                                  "stay private to each branch (default: 0.5 on the synthetic "
                                                  "data, 1.0 otherwise)", "model", above=0, maximum=1)
    consensus: str = option("attention", "pool the snippets by the joint attention, or average them (TSN)",
                            "model", choices=CONSENSUS)
    dropout: float = option(0.5, "dropout before the classifiers", "model", minimum=0, below=1)
    op_backend: str | None = option(None, "force the fused ops' backend (default: the best available)", "model",
                                    choices=OP_BACKENDS, resumable=True)
    # optimisation
    epochs: int | None = option(None, "default: 12 on the synthetic data, 80 otherwise", "optimisation",
                                resumable=True, minimum=1)
    batch_size: int = option(8, "clips per GPU/process", "optimisation", minimum=1)
    optimizer: str | None = option(None, "default: adamw on the synthetic data (from scratch), sgd otherwise (TSN)",
                                   "optimisation", choices=("sgd", "adamw"))
    lr: float | None = option(None, "peak learning rate (default: 1e-3 adamw on the synthetic data, 0.01 sgd "
                              "otherwise)", "optimisation", above=0)
    momentum: float = option(0.9, "SGD momentum", "optimisation", minimum=0, below=1)
    weight_decay: float | None = option(None, "on conv and linear weights only (default: 0.05 adamw on the "
                                        "synthetic data, 5e-4 sgd otherwise)", "optimisation", minimum=0)
    warmup_epochs: float = option(1.0, "linear learning-rate warm-up", "optimisation", minimum=0)
    attention_lr_scale: float = option(1.0, "learning-rate factor of the attention vectors w_rgb, w_flow",
                                       "optimisation", minimum=0)
    attention_warmup: float = option(0.3, "share of the epochs trained with uniform attention (TSN's average) "
                                     "before the attention vectors learn: until the classifiers are mostly "
                                     "right, the gradient steers the attention away from the snippets that "
                                     "carry the class", "optimisation", minimum=0, maximum=1)
    stitch_lr_scale: float | None = option(None, "learning-rate factor of the cross-stitch weights (default: 10 on "
                                           "the synthetic data, 1 otherwise)", "optimisation", minimum=0)
    stitch_warmup: float = option(0.0, "share of the epochs during which the cross-stitch weights stay at their "
                                  "initial values before they learn", "optimisation", minimum=0, maximum=1)
    attention_supervision: float = option(1.0, "weight of the snippet-evidence term that teaches the attention "
                                          "which snippets support the label (0: off)", "optimisation", minimum=0)
    clip_grad: float = option(20.0, "gradient norm clip (0: off)", "optimisation", minimum=0)
    max_steps: int | None = option(None, "stop after this many optimiser steps in total", "optimisation",
                                   resumable=True, minimum=1)
    on_nan: str = option("stop", "a step whose loss (or gradient norm) is not finite: stop the run with an error "
                         "(the checkpoints keep the last good state), or skip the step (its update is not "
                         "applied; skipped steps are logged and counted in metrics.jsonl)", "optimisation",
                         choices=("stop", "skip"), resumable=True)
    # performance
    precision: str = option("auto", "auto: bf16 autocast on GPUs that support it, fp32 on CPU", "performance",
                            choices=PRECISIONS, resumable=True)
    channels_last: bool | None = option(None, "channels_last memory format (default: on; "
                                        "faster on CUDA and on the CPU)",
                                        "performance", resumable=True)
    compile: bool = option(False, "torch.compile the model", "performance", resumable=True)
    # run
    out: str = option("runs/jna", "checkpoints, metrics.jsonl, config.yaml", "run", resumable=True)
    resume: str = option("auto", "'auto' (resume from OUT/last.pt if present), 'never', or a checkpoint path",
                         "run", resumable=True)
    checkpoint_every: int = option(200, "steps between mid-epoch checkpoints (0: only at each epoch's end)", "run",
                                   resumable=True, minimum=0)
    log_every: int = option(20, "steps between reads of the running loss/accuracy (each read syncs the GPU)",
                            "run", resumable=True, minimum=1)
    # NumPy seeds must be below 2**32, and each rank adds its rank to the seed.
    seed: int = option(0, "seed of the data order, augmentation and initialisation", "run", minimum=0,
                       maximum=2**31 - 1)
    progress: bool = option(True, "progress bar", "run", resumable=True)
    final_eval: bool = option(True, "evaluate the final model by the TSN test protocol (--eval-segments, "
                              "--eval-crops) into OUT/eval when training ends", "run", resumable=True)
    tensorboard: bool | None = option(None, "write TensorBoard events to OUT/tensorboard (default: when "
                                      "tensorboard is installed)", "run", resumable=True)
    # evaluation: the TSN test protocol
    eval_segments: int = option(DEFAULT_TEST_SEGMENTS, "T evenly spaced snippets per video in the test protocol "
                                "(the final evaluation, evaluate, predict, the demo)", "evaluation", minimum=1,
                                resumable=True)
    eval_crops: int = option(1, "views per video in the test protocol: 1 (the centre), 3 (along the long side) or "
                             "10 (4 corners and the centre, and their mirror images)", "evaluation",
                             choices=TEST_CROP_COUNTS, resumable=True, minimum=1)

    def differences(self, other: "TrainConfig") -> dict[str, tuple]:
        """Options, other than the resumable ones, whose values differ: name -> (self's, other's)."""
        return {f.name: (getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self)
                if not f.metadata["resumable"] and getattr(self, f.name) != getattr(other, f.name)}

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


RESUMABLE_OPTIONS = tuple(spec.name for spec in dataclasses.fields(TrainConfig) if spec.metadata["resumable"])


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _base_type(name: str) -> tuple[type, bool]:
    """(the value type, whether None is allowed) of option ``name``, from its annotation such as ``int | None``."""
    hint = typing.get_type_hints(TrainConfig)[name]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return args[0], True
    return hint, False


def _coerce(name: str, value, where: str):
    """``value`` (from YAML or the command line) as field ``name``'s type; a clear error names the option. A value
    of the wrong shape (a list for a number or a path, say) is refused before anything converts or formats it
    whole, and the error shows at most a bounded part of it."""
    spec = {f.name: f for f in dataclasses.fields(TrainConfig)}[name]
    kind, optional = _base_type(name)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and optional):
        if not optional:
            raise ValueError(f"{where}: option {name} may not be empty")
        return None
    is_tuple = typing.get_origin(kind) is tuple
    try:
        if is_tuple:
            if isinstance(value, str):
                value = [part for part in value.replace(" ", "").split(",") if part]
            elif not isinstance(value, (list, tuple)):
                value = [value]
            result = tuple(_scalar(typing.get_args(kind)[0], part) for part in value)
        else:
            result = _scalar(kind, value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{where}: option {name} expects {_type_name(kind)}, got {shown(value)}") from None
    choices = spec.metadata["choices"]
    if choices and result not in choices:
        raise ValueError(f"{where}: option {name} must be one of {', '.join(choices)}, got {shown(result)}")
    for number in (result if is_tuple else (result,)):
        if isinstance(number, (int, float)):
            problem = spec.metadata["range"].violation(number)
            if problem:
                raise ValueError(f"{where}: option {name}{' item' if is_tuple else ''} {problem}")
    return result


def _type_name(kind) -> str:
    if typing.get_origin(kind) is tuple:
        return f"a list of {typing.get_args(kind)[0].__name__}"
    return kind.__name__


def _scalar(kind: type, value):
    """One value as ``kind`` (bool, int, float or str); a TypeError or ValueError when it is not one: a list or
    a mapping is never turned into its text, and a yes/no is not a number or a path."""
    if isinstance(value, (list, tuple, dict, set, bytes)):
        raise TypeError(type(value).__name__)
    if kind is bool:
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise ValueError(value)
    if isinstance(value, bool):
        raise TypeError("bool")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return kind(value)


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The CLI of every TrainConfig option (defaults suppressed, so that only what was typed overrides)."""
    parser = argparse.ArgumentParser(prog=prog, description=description, argument_default=argparse.SUPPRESS,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="FILE", help="YAML file of options (keys as below, with _ for -); "
                        "options given on the command line win")
    add_debug_option(parser)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for spec in dataclasses.fields(TrainConfig):
        group = groups.setdefault(spec.metadata["group"], parser.add_argument_group(spec.metadata["group"]))
        _add_option(group, spec)
    return parser


def add_config_options(parser: argparse.ArgumentParser, names: tuple[str, ...], title: str):
    """Add the TrainConfig options ``names`` to another command's ``parser``, in a group ``title``, with their
    flags, help and choices, and None when not given (the command's values go through :func:`config_from_dict`,
    which checks them as the configuration does)."""
    group = parser.add_argument_group(title)
    specs = {spec.name: spec for spec in dataclasses.fields(TrainConfig)}
    for name in names:
        _add_option(group, specs[name], default=None)
    return group


def _add_option(group, spec: dataclasses.Field, **defaults) -> None:
    meta = spec.metadata
    flag = meta["flag"] or "--" + spec.name.replace("_", "-")
    default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()
    # Another command's own default (None: the checkpoint's value, say) replaces the configuration's in the help.
    shown_default = None if "default" in defaults else default
    notes = ([] if shown_default is None else [f"default: {_shown(shown_default)}"]) + (
        [f"{'each ' if isinstance(default, tuple) else ''}{meta['range']}"] if str(meta["range"]) else [])
    help_text = meta["help"] + (f" ({'; '.join(notes)})" if notes else "")
    kind, _ = _base_type(spec.name)
    if kind is bool:
        group.add_argument(flag, dest=spec.name, action=argparse.BooleanOptionalAction, help=help_text, **defaults)
    else:
        # argparse compares the typed string with the choices: a numeric choice needs the value converted first.
        typed = {"type": kind} if meta["choices"] and not isinstance(meta["choices"][0], str) else {}
        group.add_argument(flag, dest=spec.name, metavar=meta["metavar"], choices=meta["choices"], help=help_text,
                           **typed, **defaults)


def _shown(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def read_config_file(path: str | os.PathLike) -> dict:
    """The options in a YAML file, checked by name and type; errors name the file and the option. The file must
    be a small plain document (:func:`jna_fast.plain_yaml.read_plain_yaml`: no anchors or aliases)."""
    label = f"--config {path}"
    try:
        loaded = read_plain_yaml(path, label)
    except FileNotFoundError:
        raise FileNotFoundError(f"{label}: no such file") from None
    except OSError as error:  # a folder, a file that may not be read: one line, not a traceback
        raise ValueError(f"{label}: {error.strerror or error}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{label}: expected a mapping of option: value, got {type(loaded).__name__}")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {}
    for key, value in loaded.items():
        name = str(key).replace("-", "_") if isinstance(key, str) else None
        if name not in known:
            raise ValueError(f"{label}: unknown option {shown(key)} (python -m jna_fast.train --help lists them)")
        if name in values:
            raise ValueError(f"{label}: option {name} is given twice (as {key!r} and with _ or -)")
        values[name] = _coerce(name, value, label)
    return values


def resolve(values: dict, defaults: dict | None = None) -> TrainConfig:
    """A TrainConfig from explicit values, with the dataset-dependent defaults filled in and the whole checked.
    ``defaults``: a command's own defaults (the ablation's budget, say), which explicit values override and which
    override the field and dataset-dependent defaults."""
    cfg = TrainConfig(**{**(defaults or {}), **values})
    fallback = DATASET_DEFAULTS["synthetic" if cfg.dataset == "synthetic" else "real"]
    for name, value in fallback.items():
        if getattr(cfg, name) is None:
            setattr(cfg, name, value)
    if cfg.flow_algorithm is None:
        online = cfg.flow == "online" or cfg.dataset == "synthetic"  # the synthetic set's flow is computed with it
        cfg.flow_algorithm = DEFAULT_ONLINE_ALGORITHM if online else DEFAULT_EXTRACTION_ALGORITHM
    if cfg.dataset != "synthetic" and cfg.root is None:
        raise ValueError(f"--dataset {cfg.dataset} needs --root")
    if cfg.dataset in ("videos", "rawframes") and not (cfg.train_list and cfg.val_list):
        raise ValueError(f"--dataset {cfg.dataset} needs --train-list and --val-list")
    low_high = cfg.synthetic_window_fraction
    if len(low_high) != 2 or low_high[0] > low_high[1]:
        raise ValueError(f"--synthetic-window-fraction must be LOW,HIGH with LOW <= HIGH, got {_shown(low_high)}")
    unknown_families = [family for family in cfg.synthetic_families if family not in SYNTHETIC_FAMILIES]
    if unknown_families or not cfg.synthetic_families:
        raise ValueError(f"--synthetic-families must name some of {', '.join(SYNTHETIC_FAMILIES)}, got "
                         f"{','.join(cfg.synthetic_families) or 'none'}")
    if not branches_fit(cfg.streams, cfg.share_after, cfg.consensus):
        raise ValueError(f"--streams {cfg.streams} needs --share-after '' and --consensus average")
    return cfg


def _unused_because(name: str, cfg: TrainConfig) -> str | None:
    """Why option ``name`` would change nothing in ``cfg`` (it belongs to another dataset kind or flow source),
    or None."""
    with_lists = ("videos", "rawframes")
    if name in ("train_list", "val_list") and cfg.dataset not in with_lists:
        return (f"applies to --dataset videos/rawframes; {cfg.dataset} trains and tests on its official split "
                f"(--split): for lists of your own, use --dataset videos or rawframes")
    if name == "num_classes" and cfg.dataset not in with_lists:
        return f"applies to --dataset videos/rawframes; {cfg.dataset} defines its classes"
    if name == "split" and cfg.dataset in with_lists:
        return f"applies to --dataset synthetic/ucf101/hmdb51; {cfg.dataset} reads --train-list and --val-list"
    if name.startswith("synthetic_") and cfg.dataset != "synthetic":
        return f"applies to --dataset synthetic, not {cfg.dataset}"
    if name == "frames_root" and cfg.dataset == "rawframes":
        return "does not apply to --dataset rawframes, whose frames and flow are read under --root"
    if name in ("frames_root", "rgb_template", "flow_template", "start_index") and cfg.flow == "online":
        return "does not apply to --flow online, which computes the flow from the videos and reads no rawframes"
    return None


def check_options_apply(given: dict, cfg: TrainConfig, sources: str | dict[str, str]) -> None:
    """Refuse an option the user gave (``given``: name -> value) that ``cfg`` would not use, such as a list file
    for UCF101, unless it keeps its default (so that a saved config.yaml, which holds every option, is accepted).
    ``sources``: where the values come from, one for all or one per name."""
    fields = {spec.name: spec for spec in dataclasses.fields(TrainConfig)}
    for name, value in given.items():
        spec = fields[name]
        default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()
        reason = _unused_because(name, cfg)
        if reason and value != default:
            source = sources if isinstance(sources, str) else sources[name]
            raise ValueError(f"{source}: option {name} {reason}")


def parse_args(argv: list[str] | None = None, prog: str = "python -m jna_fast.train",
               description: str | None = None) -> TrainConfig:
    """Defaults < --config FILE < command line; errors exit with argparse's usage message."""
    return parse_command_line(argv, prog, description)[0]


def parse_command_line(argv: list[str] | None = None, prog: str = "python -m jna_fast.train",
                       description: str | None = None, defaults: dict | None = None) -> tuple[TrainConfig, bool]:
    """As :func:`parse_args`, and whether ``--debug`` (print the traceback of an error) was given; ``defaults``
    (checked as any option) go below the config file and the command line (:func:`resolve`)."""
    parser = build_parser(prog, description or "")
    given = vars(parser.parse_args(argv))
    debug = given.pop("debug", False)
    try:
        config_file = given.pop("config", None)
        values = read_config_file(config_file) if config_file is not None else {}
        sources = {name: f"--config {config_file}" for name in values}
        for name, value in given.items():
            values[name], sources[name] = _coerce(name, value, "command line"), "command line"
        own_defaults = {name: _coerce(name, value, f"{prog} defaults") for name, value in (defaults or {}).items()}
        cfg = resolve(values, own_defaults)
        check_options_apply(values, cfg, sources)
        return cfg, debug
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))


# Options added after configurations were first saved, with what a saved configuration without them meant: a
# checkpoint or config.yaml written before them rebuilds the model it trained, whatever the defaults are now.
MEANING_WHEN_ABSENT = {"stitch_shared_fraction": 1.0}


def config_from_dict(values: dict, where: str) -> TrainConfig:
    """The TrainConfig saved in a checkpoint or config.yaml; options unknown to this version are an error."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: options unknown to this jna_fast: {unknown}")
    values = {**MEANING_WHEN_ABSENT, **values}
    return resolve({name: _coerce(name, value, where) for name, value in values.items()})


def save_config(cfg: TrainConfig, path: str | os.PathLike) -> None:
    """Write the resolved configuration as YAML, atomically."""
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))
