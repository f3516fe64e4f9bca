"""Write the legacy fixtures of this folder WITH THE OLD CODE of commit 0731a88 (never with newer code).

The files record what jna_fast at commit 0731a88 wrote, so that later code can be tested to read them: the
``config_<variant>.yaml`` files (as the old ``jna_fast.config.save_config`` writes OUT/config.yaml), the
``last_<variant>.pt`` checkpoints (the dict of the old ``train.checkpoint_state`` + ``checkpoint.save_checkpoint``
for last.pt: model, config, class names, data settings, optimizer state, epoch/batch/step, RNG state, best top-1),
one ``best_default.pt`` (best.pt's layout: no optimizer or RNG, the epoch's metrics), and ``expected_<variant>.pt``:
a fixed input and the old model's eval-mode outputs for the weights in the checkpoint. README.md says more.

Run it from a checkout of the old commit, with that checkout first on the path (its C++ extension need not be
built: the ops fall back to the pure-PyTorch reference backend)::

    git worktree add /tmp/old-0731a88 0731a88
    PYTHONPATH=/tmp/old-0731a88 JNA_FAST_BACKEND=reference python3 tests/data/legacy_0731a88/make_fixtures.py
    git worktree remove --force /tmp/old-0731a88

It refuses to run when ``jna_fast`` is not imported from a checkout of 0731a88. ``--check`` only verifies the files
already here against the old code (load with the old ``load_checkpoint``, resume, reproduce the outputs).

How the checkpoints stay small: each is written by the old training code's own functions after one real optimiser
step (the old ``builders.build_model`` from the parsed configuration, the old ``train.make_optimizer`` and
``set_learning_rates``, the old loss, gradient clipping, ``optimizer.step()``), on a random batch of 2 clips at 32
px. Then every floating tensor of the model's state dict and of the optimizer's state (except AdamW's ``step``
counts) is replaced by a deterministic view (``as_strided``) into ONE shared storage of 65536 float32 values, which
torch.save stores once. The storage is made of regions, each an affine map of the same N(0, 1) draws: the
convolution weights and optimizer moments draw windows of the N(0, 1) region; BatchNorm weights a region scaled
by 1/sqrt(fan-in of the conv before them), so that the network's activations stay of order 1 in evaluation;
running_var, exp_avg_sq and the cross-stitch running_rms positive regions; and so on (``region_values``). Integer
buffers (num_batches_tracked) are kept as the step left them, and so are the attention vectors of the average
consensus (frozen at zero: that is what makes the pooling TSN's average). The views are loaded into the old model
(load_state_dict copies them) and its eval-mode outputs recorded, for an input whose rgb and flow are views into
one small storage too. Everything is seeded: a rerun writes the same bytes.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import subprocess
import sys
import zlib
from pathlib import Path

import torch

import jna_fast
from jna_fast import builders
from jna_fast import train as old_train
from jna_fast.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from jna_fast.config import config_from_dict, parse_args, save_config
from jna_fast.data import synthetic
from jna_fast.runtime import rng_state, seed_everything

COMMIT = "0731a88"
HERE = Path(__file__).resolve().parent

# config_<name>.yaml: the command line the old parse_args resolved.
CONFIGS = {
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
# last_<name>.pt and expected_<name>.pt, from the configuration of the same name.
CHECKPOINTS = ("default", "tsn", "rgb", "videos")
BEST = "default"  # best_<name>.pt: best.pt's layout, the same weights as last_<name>.pt

SIZE = 32               # crop of the training batch and of the recorded input
BATCH = 2               # clips in the training batch and in the recorded input
EXPECTED_SEGMENTS = 3   # snippets of the recorded input (its second clip's last one masked)
STEPS_PER_EPOCH = 33    # what set_learning_rates is told (the default synthetic set at batch 8)

POOL_SIZE = 65536       # float32 values of the one shared storage (256 KiB)
REGION_CAP = 2048 + 64  # the most values of a region other than the N(0, 1) one, which has the rest
FC_GAIN = 3.0           # classifier weights: FC_GAIN / sqrt(features) N(0, 1)
# attention vectors: gain / sqrt(features) N(0, 1); the pooled features of the random snippets differ less in a
# ResNet-50 (2048 of them) than in a ResNet-18 (512): each gain gives an attention well away from uniform
ATTENTION_GAINS = {512: 15.0, 2048: 150.0}
INPUT_POOL_SIZE = 8192  # float32 values of the one storage of a recorded input (32 KiB)
ROOM = 64               # spare values of a small region, so that offsets vary


# --- the shared storage --------------------------------------------------------------------------------------
def conv_of(bn_name: str) -> str:
    """The conv whose output the BatchNorm ``bn_name`` (a parameter or buffer name) normalises."""
    module = bn_name.rsplit(".", 1)[0]
    if module.endswith("downsample.1"):
        return module[: -len("1")] + "0.weight"
    head, last = module.rsplit(".", 1) if "." in module else ("", module)
    return f"{head}.{last.replace('bn', 'conv')}.weight".lstrip(".")


def residual_end(bn_name: str, model_sd: dict) -> bool:
    """Whether the BatchNorm ends a residual branch (its output is added to the identity)."""
    module = bn_name.rsplit(".", 1)[0]
    if module.endswith("downsample.1"):
        return True
    block = module.rsplit(".", 1)[0]
    last_bn = "bn3" if f"{block}.bn3.weight" in model_sd else "bn2"
    return ".layer" in module and module.endswith(last_bn)


def model_region(name: str, tensor: torch.Tensor, model_sd: dict) -> tuple:
    """The region a model tensor draws from: (kind, scale parameter)."""
    leaf = name.rsplit(".", 1)[1]
    if name.startswith("stitches."):
        return ("rms", 0) if leaf == "running_rms" else ("alpha", 0)
    if name.startswith("attention."):
        return ("attention", tensor.shape[0])
    if name.startswith("fc_"):
        return ("fc", tensor.shape[1]) if leaf == "weight" else ("small", 0)
    if tensor.dim() == 4:  # conv weight
        return ("normal", 0)
    # BatchNorm
    if leaf == "running_var":
        return ("var", 0)
    if leaf in ("bias", "running_mean"):
        return ("small", 0)
    conv = model_sd[conv_of(name)]
    fan_in = conv.shape[1] * conv.shape[2] * conv.shape[3]
    return ("gamma_end" if residual_end(name, model_sd) else "gamma", fan_in)


def region_values(kind: str, parameter: int, draws: torch.Tensor) -> torch.Tensor:
    """A region's values from N(0, 1) ``draws``."""
    if kind == "normal":
        return draws
    if kind == "gamma":        # BN weight after a conv of fan-in F (weights N(0, 1)): brings its output to ~1
        return draws / math.sqrt(parameter)
    if kind == "gamma_end":    # ... ending a residual branch: smaller, so that the sum with the identity stays ~1
        return 0.5 * draws / math.sqrt(parameter)
    if kind == "small":        # BN bias and running_mean, classifier bias
        return 0.1 * draws
    if kind == "var":          # BN running_var, AdamW exp_avg_sq: positive
        return 0.5 + 0.5 * draws.abs()
    if kind == "rms":          # cross-stitch running_rms: positive, near 1
        return 0.75 + 0.25 * draws.abs()
    if kind == "alpha":        # cross-stitch weights: about a half mixing
        return 0.5 + 0.15 * draws
    if kind == "fc":           # classifier weight over C features: logits of order 1
        return FC_GAIN * draws / math.sqrt(parameter)
    if kind == "attention":    # attention vectors over C features: attention far from uniform
        return ATTENTION_GAINS[parameter] * draws / math.sqrt(parameter)
    raise ValueError(kind)


def strides_for(shape: tuple[int, ...], budget: int) -> tuple[tuple[int, ...], int]:
    """Strides of a view of ``shape`` whose indices span at most ``budget`` values, and that span: contiguous
    where it fits, else (outer dims) odd strides sharing the budget, so that windows overlap out of step."""
    strides = [0] * len(shape)
    span = 1
    for k in reversed(range(len(shape))):
        size = shape[k]
        if size == 1:
            strides[k] = 1
            continue
        if span * size <= budget:
            strides[k] = span
            span *= size
            continue
        remaining = sum(1 for j in range(k + 1) if shape[j] > 1)
        stride = max(1, (budget - span) // (remaining * (size - 1)))
        stride = stride if stride % 2 or stride == 1 else stride - 1
        strides[k] = stride
        span += (size - 1) * stride
    if span > budget:
        raise ValueError(f"shape {shape} does not fit in {budget} values")
    return tuple(strides), span


class Pool:
    """Plans the regions, then builds the one storage and the views into it."""

    def __init__(self, seed: int):
        self.seed = seed
        self.requests: list[tuple[str, tuple, torch.Size]] = []

    def request(self, name: str, region: tuple, shape: torch.Size) -> None:
        self.requests.append((name, region, shape))

    def build(self) -> dict[str, torch.Tensor]:
        sizes: dict[tuple, int] = {}
        for _, region, shape in self.requests:
            if region[0] != "normal":
                sizes[region] = min(REGION_CAP, max(sizes.get(region, 0), math.prod(shape) + ROOM))
        rest = POOL_SIZE - sum(sizes.values())
        if rest < POOL_SIZE // 4:
            raise ValueError(f"the small regions leave {rest} values of the pool's {POOL_SIZE} to the N(0, 1) one")
        sizes = {("normal", 0): rest, **dict(sorted(sizes.items()))}
        generator = torch.Generator().manual_seed(self.seed)
        draws = torch.randn(POOL_SIZE, generator=generator)
        pool = torch.empty(POOL_SIZE)
        starts, start = {}, 0
        for region, size in sizes.items():
            starts[region] = start
            pool[start:start + size] = region_values(*region, draws[start:start + size])
            start += size
        assert start == POOL_SIZE
        views = {}
        for name, region, shape in self.requests:
            size = sizes[region]
            strides, span = strides_for(tuple(shape), size)
            offset = starts[region] + zlib.crc32(name.encode()) % (size - span + 1)
            views[name] = pool.as_strided(tuple(shape), strides, offset)
        return views


def small_state(model_sd: dict, optimizer_sd: dict, parameter_names: list[str], seed: int,
                keep: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """The model state dict and the optimizer state dict with every floating tensor (AdamW's step counts and the
    tensors named in ``keep`` apart) replaced by a view into one shared storage."""
    pool = Pool(seed)
    for name, tensor in model_sd.items():
        if tensor.is_floating_point() and name not in keep:
            pool.request(name, model_region(name, tensor, model_sd), tensor.shape)
    for index, state in optimizer_sd["state"].items():
        for key, tensor in state.items():
            if torch.is_tensor(tensor) and tensor.is_floating_point() and key != "step":
                region = ("var", 0) if key == "exp_avg_sq" else ("normal", 0)
                pool.request(f"optimizer.{parameter_names[index]}.{key}", region, tensor.shape)
    views = pool.build()
    model_small = {name: views.get(name, tensor) for name, tensor in model_sd.items()}
    state_small = {index: {key: views.get(f"optimizer.{parameter_names[index]}.{key}", value)
                           for key, value in state.items()}
                   for index, state in optimizer_sd["state"].items()}
    return model_small, {**optimizer_sd, "state": state_small}


# --- the variants --------------------------------------------------------------------------------------------
def class_names_of(cfg) -> list[str]:
    """The class names a training run of ``cfg`` records: the synthetic set's classInd order, or the list
    datasets' numbers."""
    if cfg.dataset == "synthetic":
        return [spec.name for spec in synthetic.catalogue(cfg.synthetic_families)[: cfg.synthetic_classes]]
    if cfg.dataset in ("videos", "rawframes") and cfg.num_classes:
        return [str(index) for index in range(cfg.num_classes)]
    raise ValueError(f"no class names for {cfg.dataset}")


def data_of(cfg) -> dict:
    """builders.data_settings as a run records it: the synthetic set's metadata forbids flips (its dataset is not
    generated here, so the policy is given rather than read)."""
    return builders.data_settings(dataclasses.replace(cfg, flip=False) if cfg.dataset == "synthetic" else cfg)


def inputs(model, segments: int, seed: int, masked: bool, compact: bool = False) -> tuple:
    """(rgb or None, flow or None, mask or None) of BATCH clips at SIZE px for the branches ``model`` has;
    ``compact``: rgb and flow are views into one storage of INPUT_POOL_SIZE N(0, 1) values (overlapping windows,
    so that the file stays small)."""
    generator = torch.Generator().manual_seed(seed)
    shapes = {"rgb": (BATCH, segments, 3, SIZE, SIZE) if model.rgb is not None else None,
              "flow": (BATCH, segments, 2 * model.flow_length, SIZE, SIZE) if model.flow is not None else None}
    pool = torch.randn(INPUT_POOL_SIZE, generator=generator) if compact else None
    made = {}
    for name, shape in shapes.items():
        if shape is None:
            made[name] = None
        elif compact:
            strides, span = strides_for(shape, INPUT_POOL_SIZE)
            made[name] = pool.as_strided(shape, strides, zlib.crc32(name.encode()) % (INPUT_POOL_SIZE - span + 1))
        else:
            made[name] = torch.randn(shape, generator=generator)
    mask = None
    if masked:
        mask = torch.ones(BATCH, segments, dtype=torch.bool)
        mask[1, -1] = False
    return made["rgb"], made["flow"], mask


def contiguous(x: torch.Tensor | None) -> torch.Tensor | None:
    return None if x is None else x.contiguous()


def outputs(output) -> dict:
    return {key: getattr(output, key).detach().clone() for key in
            ("logits", "logits_rgb", "logits_flow", "attention", "snippet_logits") if getattr(output, key) is not None}


def make_checkpoint(name: str, index: int) -> None:
    cfg = parse_args(CONFIGS[name])
    seed_everything(cfg.seed, 0)
    class_names = class_names_of(cfg)
    model = builders.build_model(cfg, len(class_names))
    optimizer = old_train.make_optimizer(model, cfg)

    # One training step as old train_epoch takes it.
    model.train()
    rgb, flow, mask = inputs(model, cfg.num_segments, 1000 + index, masked=False)
    label = torch.arange(BATCH) % len(class_names)
    old_train.set_learning_rates(optimizer, cfg, 0, STEPS_PER_EPOCH)
    loss = model.loss(model(rgb, flow, mask), label)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.clip_grad > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
    optimizer.step()

    parameter_names = {id(p): n for n, p in model.named_parameters()}
    ordered = [parameter_names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    # The average consensus pools by the attention vectors frozen at zero (exactly TSN's average): they stay zero.
    keep = ("attention.w_rgb", "attention.w_flow") if cfg.consensus == "average" else ()
    model_small, optimizer_small = small_state(model.state_dict(), optimizer.state_dict(), ordered, 2000 + index,
                                               keep)
    load_model_state(model, model_small, f"{name} views")  # copies the views' values into the model
    state = old_train.checkpoint_state(model, cfg, class_names, data_of(cfg), optimizer=optimizer_small, epoch=0,
                                       batch=1, step=1, rng=rng_state(), best_top1=-1.0)
    state["model"] = model_small  # the views (one shared storage), not the model's own full-size copies
    save_checkpoint(HERE / f"last_{name}.pt", state)

    model.eval()
    rgb, flow, mask = inputs(model, EXPECTED_SEGMENTS, 3000 + index, masked=True, compact=True)
    with torch.no_grad():
        expected = outputs(model(contiguous(rgb), contiguous(flow), mask))
    recorded = {"rgb": rgb, "flow": flow, "mask": mask}
    torch.save({**{k: v for k, v in recorded.items() if v is not None}, **expected}, HERE / f"expected_{name}.pt")

    if name == BEST:
        best = old_train.checkpoint_state(model, cfg, class_names, data_of(cfg), epoch=1, step=1, metrics={
            "epoch": 1, "step": 1, "train_loss": round(loss.item(), 4), "train_top1": 0.5, "val_top1": 0.25,
            "val_clips": 4})
        best["model"] = model_small
        save_checkpoint(HERE / f"best_{name}.pt", best)


# --- the check -----------------------------------------------------------------------------------------------
def check(name: str) -> str:
    """Load last_<name>.pt with the old code as a run resumes it and as evaluation does, and reproduce the
    recorded outputs exactly."""
    path = HERE / f"last_{name}.pt"
    state = load_checkpoint(path)
    cfg = config_from_dict(state["config"], str(path))
    assert cfg == parse_args(CONFIGS[name]), "the checkpoint's configuration is not the variant's"
    assert state["config"] == parse_args(CONFIGS[name]).to_dict()
    old_train.check_resumable(cfg, state, path)
    model = builders.build_model(cfg, len(state["class_names"]))
    optimizer = old_train.make_optimizer(model, cfg)
    progress = old_train.resume_training(model, optimizer, state, path)
    assert (progress.epoch, progress.batch, progress.step) == (0, 1, 1)
    model.eval()
    expected = torch.load(HERE / f"expected_{name}.pt", weights_only=True)
    with torch.no_grad():
        got = outputs(model(contiguous(expected.get("rgb")), contiguous(expected.get("flow")), expected["mask"]))
    for key, value in got.items():
        if not torch.equal(value, expected[key]):
            raise AssertionError(f"{name}: {key} differs by {(value - expected[key]).abs().max():g}")
    assert set(got) == set(expected) - {"rgb", "flow", "mask"}
    for key, value in got.items():
        assert torch.isfinite(value).all(), f"{name}: {key} not finite"
    if name == BEST:
        best = load_checkpoint(HERE / f"best_{name}.pt")
        model_best = builders.build_model(config_from_dict(best["config"], "best"), len(best["class_names"]))
        load_model_state(model_best, best["model"], "best")
        model_best.eval()
        with torch.no_grad():
            again = outputs(model_best(contiguous(expected.get("rgb")), contiguous(expected.get("flow")),
                                       expected["mask"]))
        assert all(torch.equal(again[k], got[k]) for k in got), "best.pt differs from last.pt"
    summary = ", ".join(f"{k} {tuple(v.shape)} max|.| {v.abs().max():.3f}" for k, v in got.items())
    return f"{name}: ok ({summary}; attention {got['attention'][0].tolist()})"


def check_configs() -> None:
    for name, argv in CONFIGS.items():
        path = HERE / f"config_{name}.yaml"
        loaded = jna_fast.config.read_config_file(path)
        assert jna_fast.config.resolve(loaded) == parse_args(argv), f"{path} does not resolve to its variant"
        assert parse_args(["--config", str(path)]) == parse_args(argv)


def require_old_code() -> None:
    checkout = Path(jna_fast.__file__).resolve().parents[1]
    head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    if not head.startswith(COMMIT):
        sys.exit(f"jna_fast is imported from {checkout} at {head.strip() or 'no git commit'}, not {COMMIT}: put a "
                 f"checkout of {COMMIT} first on PYTHONPATH (see this script's docstring)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only verify the files already here")
    args = parser.parse_args()
    require_old_code()
    torch.set_num_threads(1)
    if not args.check:
        for name, argv in CONFIGS.items():
            save_config(parse_args(argv), HERE / f"config_{name}.yaml")
        for index, name in enumerate(CHECKPOINTS):
            make_checkpoint(name, index)
    check_configs()
    for name in CHECKPOINTS:
        print(check(name))


if __name__ == "__main__":
    main()
