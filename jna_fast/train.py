"""Train JNA: ``python -m jna_fast.train`` (no arguments: a built-in synthetic dataset, generated on first use).

One process per GPU under ``torchrun --nproc-per-node N -m jna_fast.train ...`` (DDP; each rank reads its own
shard of the videos). Checkpoints are written atomically to ``--out``; ``--resume`` (the default when
``--out/last.pt`` exists) continues from the last one at the batch where it stopped.

Examples::

    python -m jna_fast.train                                   # synthetic data, ResNet-18, a few epochs
    python -m jna_fast.flow extract --videos UCF101/UCF-101 --out UCF101/frames --short-side 256
    python -m jna_fast.train --dataset ucf101 --root UCF101 --frames-root UCF101/frames --split 1 \\
        --backbone resnet50 --weights resnet50-0676ba61.pth --epochs 80 --batch-size 16
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from .models import JNA

logger = logging.getLogger("jna_fast.train")

DATASET_KINDS = ("synthetic", "ucf101", "hmdb51", "videos", "rawframes")
CHECKPOINT_NAME = "last.pt"
DEFAULT_SYNTHETIC_DIR = Path(os.environ.get("JNA_FAST_CACHE", Path.home() / ".cache" / "jna_fast")) / "synthetic"


# Defaults that depend on the data: the synthetic videos are 96 px and small enough to learn from scratch in
# minutes on a CPU; real datasets get the TSN-standard 224 px crops and a ResNet-50.
DATASET_DEFAULTS = {
    "synthetic": {"backbone": "resnet18", "size": 64, "epochs": 30},
    "real": {"backbone": "resnet50", "size": 224, "epochs": 80},
}


@dataclass
class TrainConfig:
    dataset: str = "synthetic"
    root: str | None = None
    frames_root: str | None = None
    split: int = 1
    train_list: str | None = None
    val_list: str | None = None
    backbone: str | None = None
    weights: str | None = None
    num_segments: int = 3
    test_segments: int = 5
    flow_length: int = 5
    share_after: tuple[int, ...] = (3, 4)
    size: int | None = None
    epochs: int | None = None
    batch_size: int = 8
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    dropout: float = 0.5
    attention_lr_scale: float = 0.01
    clip_grad: float = 20.0
    precision: str = "auto"
    channels_last: bool | None = None
    compile: bool = False
    op_backend: str | None = None
    data_backend: str = "auto"
    on_error: str = "skip"
    out: str = "runs/jna"
    resume: str = "auto"
    checkpoint_every: int = 200
    max_steps: int | None = None
    seed: int = 0
    num_classes_synthetic: int = 8
    videos_per_class_synthetic: int = 12
    progress: bool = True


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    defaults = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m jna_fast.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASET_KINDS, default=defaults.dataset)
    data.add_argument("--root", help="dataset root (synthetic: where to generate it; default "
                      f"{DEFAULT_SYNTHETIC_DIR})")
    data.add_argument("--frames-root", help="rawframes folder with the extracted flow (python -m jna_fast.flow)")
    data.add_argument("--split", type=int, default=defaults.split)
    data.add_argument("--train-list", help="list file for --dataset videos/rawframes (training)")
    data.add_argument("--val-list", help="list file for --dataset videos/rawframes (validation)")
    data.add_argument("--size", type=int, help="crop size fed to the network (default: 64 synthetic, 224 real)")
    data.add_argument("--data-backend", choices=("auto", "dali", "pyav"), default=defaults.data_backend)
    data.add_argument("--on-error", choices=("raise", "skip"), default=defaults.on_error,
                      help="a corrupt video: stop, or warn, skip and count it")
    model = p.add_argument_group("model")
    model.add_argument("--backbone", choices=("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"),
                       help="default: resnet18 on the synthetic data, resnet50 otherwise")
    model.add_argument("--weights", help="torchvision ImageNet weight file (.pth) for both branches")
    model.add_argument("--num-segments", type=int, default=defaults.num_segments, help="T for training")
    model.add_argument("--test-segments", type=int, default=defaults.test_segments, help="T for validation")
    model.add_argument("--flow-length", type=int, default=defaults.flow_length, help="L flow fields per stack")
    model.add_argument("--share-after", default=",".join(map(str, defaults.share_after)), help="stages with cross-stitch units")
    model.add_argument("--dropout", type=float, default=defaults.dropout)
    model.add_argument("--op-backend", choices=("reference", "cpp", "cuda", "triton"),
                       help="force the fused ops' backend (default: the best available)")
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=int, help="default: 30 on the synthetic data, 80 otherwise")
    opt.add_argument("--batch-size", type=int, default=defaults.batch_size, help="clips per GPU/process")
    opt.add_argument("--lr", type=float, default=defaults.lr)
    opt.add_argument("--momentum", type=float, default=defaults.momentum)
    opt.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    opt.add_argument("--warmup-epochs", type=float, default=defaults.warmup_epochs)
    opt.add_argument("--attention-lr-scale", type=float, default=defaults.attention_lr_scale,
                     help="learning-rate factor of the attention vectors w_rgb, w_flow")
    opt.add_argument("--clip-grad", type=float, default=defaults.clip_grad, help="gradient norm clip (0: off)")
    opt.add_argument("--max-steps", type=int, help="stop after this many optimiser steps in total")
    perf = p.add_argument_group("performance")
    perf.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=defaults.precision,
                      help="auto: bf16 autocast on GPUs that support it, fp32 on CPU")
    perf.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                      help="default: on for CUDA")
    perf.add_argument("--compile", action="store_true", help="torch.compile the model")
    run = p.add_argument_group("run")
    run.add_argument("--out", default=defaults.out, help="checkpoints and metrics.jsonl")
    run.add_argument("--resume", default=defaults.resume,
                     help="'auto' (resume from OUT/last.pt if present), 'never', or a checkpoint path")
    run.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every, help="steps")
    run.add_argument("--seed", type=int, default=defaults.seed)
    run.add_argument("--synthetic-classes", type=int, default=defaults.num_classes_synthetic)
    run.add_argument("--synthetic-videos-per-class", type=int, default=defaults.videos_per_class_synthetic)
    run.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    a = p.parse_args(argv)
    try:
        share_after = tuple(int(s) for s in a.share_after.split(",") if s.strip())
    except ValueError:
        p.error(f"--share-after: expected comma-separated stage numbers like 3,4, got {a.share_after!r}")
    if a.dataset not in ("synthetic",) and a.root is None:
        p.error(f"--dataset {a.dataset} needs --root")
    if a.dataset in ("videos", "rawframes") and not (a.train_list and a.val_list):
        p.error(f"--dataset {a.dataset} needs --train-list and --val-list")
    fallback = DATASET_DEFAULTS["synthetic" if a.dataset == "synthetic" else "real"]
    for name, value in fallback.items():
        if getattr(a, name) is None:
            setattr(a, name, value)
    return TrainConfig(
        dataset=a.dataset, root=a.root, frames_root=a.frames_root, split=a.split, train_list=a.train_list,
        val_list=a.val_list, backbone=a.backbone, weights=a.weights, num_segments=a.num_segments,
        test_segments=a.test_segments, flow_length=a.flow_length, share_after=share_after, size=a.size,
        epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, momentum=a.momentum, weight_decay=a.weight_decay,
        warmup_epochs=a.warmup_epochs, dropout=a.dropout, attention_lr_scale=a.attention_lr_scale, clip_grad=a.clip_grad, precision=a.precision,
        channels_last=a.channels_last, compile=a.compile, op_backend=a.op_backend, data_backend=a.data_backend,
        on_error=a.on_error, out=a.out, resume=a.resume, checkpoint_every=a.checkpoint_every,
        max_steps=a.max_steps, seed=a.seed, num_classes_synthetic=a.synthetic_classes,
        videos_per_class_synthetic=a.synthetic_videos_per_class, progress=not a.no_progress)


# --- distributed ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Distributed:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Distributed:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; a plain `python -m` run is a world of one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return Distributed(rank, world_size, device)


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    if not dist.is_initialized():
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


# --- data ----------------------------------------------------------------------------------------------------
def prepare_synthetic(cfg: TrainConfig, env: Distributed) -> tuple[Path, Path]:
    """Generate the synthetic dataset and extract its flow once (rank 0); reused on later runs."""
    from .data import make_synthetic
    from .data.synthetic import INCOMPLETE_MARKER, META_NAME
    from .flow import extract_flow

    root = Path(cfg.root) if cfg.root else DEFAULT_SYNTHETIC_DIR
    frames_root = Path(cfg.frames_root) if cfg.frames_root else root / "frames"
    if env.is_main:
        if (root / META_NAME).exists() and not (root / INCOMPLETE_MARKER).exists():
            logger.info("synthetic dataset in %s: reusing the one there (%s)", root,
                        json.loads((root / META_NAME).read_text())["parameters"])
        else:
            logger.info("synthetic dataset in %s: generating it", root)
            make_synthetic(root, num_classes=cfg.num_classes_synthetic,
                           videos_per_class=cfg.videos_per_class_synthetic, seed=cfg.seed)
        summary = extract_flow(root / "UCF-101", frames_root, algorithm="dis", progress=cfg.progress)
        if summary["failed"]:
            raise RuntimeError(f"flow extraction failed for {len(summary['failed'])} synthetic videos: "
                               f"{summary['failed'][:3]}")
    if dist.is_initialized():
        dist.barrier()
    return root, frames_root


def build_loaders(cfg: TrainConfig, env: Distributed):
    from .data import build_loader

    kind = "ucf101" if cfg.dataset == "synthetic" else cfg.dataset
    root, frames_root = (prepare_synthetic(cfg, env) if cfg.dataset == "synthetic"
                         else (Path(cfg.root), cfg.frames_root))
    device = "gpu" if env.device.type == "cuda" and cfg.data_backend != "pyav" else "cpu"
    common = dict(split=cfg.split, frames_root=frames_root, flow_length=cfg.flow_length, size=cfg.size,
                  backend=cfg.data_backend, device=device, on_error=cfg.on_error, seed=cfg.seed)
    train = build_loader(kind, root, subset="train", list_file=cfg.train_list, num_segments=cfg.num_segments,
                         batch_size=cfg.batch_size, drop_last=True, **common)
    val = build_loader(kind, root, subset="test", list_file=cfg.val_list, num_segments=cfg.test_segments,
                       batch_size=cfg.batch_size, num_classes=train.num_classes, **common)
    salient = synthetic_salient_ranges(root) if cfg.dataset == "synthetic" else None
    return train, val, salient


def synthetic_salient_ranges(root: Path) -> dict[str, tuple[int, int]]:
    """video_id -> [start, end) frames holding the discriminative motion, from the synthetic metadata."""
    meta = json.loads((root / "synthetic_meta.json").read_text())
    return {os.path.splitext(v["video"])[0]: tuple(v["discriminative_frames"]) for v in meta["videos"]}


# --- checkpoints ---------------------------------------------------------------------------------------------
def save_checkpoint(path: Path, state: dict) -> None:
    """Write to a temporary file in the same folder, fsync, then rename: a crash never leaves a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def resolve_resume(cfg: TrainConfig) -> Path | None:
    if cfg.resume == "never":
        return None
    if cfg.resume == "auto":
        candidate = Path(cfg.out) / CHECKPOINT_NAME
        return candidate if candidate.exists() else None
    path = Path(cfg.resume)
    if not path.exists():
        raise FileNotFoundError(f"--resume {cfg.resume}: no such checkpoint")
    return path


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- the loop ------------------------------------------------------------------------------------------------
def learning_rate(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up, then cosine decay to 0 over the remaining steps."""
    total = cfg.epochs * steps_per_epoch
    warmup = max(1, int(cfg.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def parameter_groups(model: JNA, cfg: TrainConfig) -> list[dict]:
    """Weight decay on conv and linear weights only: decaying BN, biases and the cross-stitch alphas would pull
    them to 0 (alpha starts at [[.9, .1], [.1, .9]] on purpose). The attention vectors learn at a fraction of
    the rate: a score is a sum over C channels, so an ordinary step swings it by O(C) and the softmax collapses
    onto one snippet before the features mean anything."""
    attention = [model.attention.w_rgb, model.attention.w_flow]
    attention_ids = {id(p) for p in attention}
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if id(parameter) in attention_ids:
            continue
        is_matrix = parameter.dim() >= 2 and not name.startswith("stitches.")
        (decay if is_matrix else no_decay).append(parameter)
    return [
        {"params": decay, "weight_decay": cfg.weight_decay, "lr_scale": 1.0},
        {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0},
        {"params": attention, "weight_decay": 0.0, "lr_scale": cfg.attention_lr_scale},
    ]


def autocast_context(cfg: TrainConfig, device: torch.device):
    precision = cfg.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def salience_scores(attention: torch.Tensor, indices: torch.Tensor, mask: torch.Tensor, video_ids,
                    salient: dict[str, tuple[int, int]]) -> tuple[float, float]:
    """Attention mass on snippets that start inside the clip's discriminative window, and the mass a uniform
    attention over the real snippets would put there (the chance level), summed over the batch."""
    inside = torch.zeros_like(attention)
    for row, video_id in enumerate(video_ids):
        start, end = salient[video_id]
        inside[row] = ((indices[row] >= start) & (indices[row] < end)).float()
    inside = inside * mask.float()
    uniform = inside.sum(1) / mask.float().sum(1)
    return float((attention * inside).sum()), float(uniform.sum())


@torch.no_grad()
def evaluate(model, loader, cfg: TrainConfig, env: Distributed, salient) -> dict:
    model.eval()
    totals = [0.0] * 6  # clips, fused correct, rgb correct, flow correct, salient mass, uniform salient mass
    for batch in loader:
        batch = batch.to(env.device, non_blocking=True)
        with autocast_context(cfg, env.device):
            out = model(batch.rgb, batch.flow, batch.mask)
        label = batch.label
        totals[0] += len(label)
        totals[1] += float((out.logits.argmax(1) == label).sum())
        totals[2] += float((out.logits_rgb.argmax(1) == label).sum())
        totals[3] += float((out.logits_flow.argmax(1) == label).sum())
        if salient is not None:
            mass, uniform = salience_scores(out.attention.float().cpu(), batch.indices.cpu(), batch.mask.cpu(),
                                            batch.video_ids, salient)
            totals[4] += mass
            totals[5] += uniform
    clips, fused, rgb, flow, mass, uniform = all_reduce_sum(totals, env.device)
    clips = max(clips, 1.0)
    metrics = {"val_top1": fused / clips, "val_top1_rgb": rgb / clips, "val_top1_flow": flow / clips,
               "val_clips": int(clips)}
    if salient is not None:
        metrics["attention_on_salient"] = mass / clips
        metrics["uniform_on_salient"] = uniform / clips
    return metrics


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    env = setup_distributed()
    random.seed(cfg.seed + env.rank)
    np.random.seed(cfg.seed + env.rank)
    torch.manual_seed(cfg.seed)
    if env.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    train_loader, val_loader, salient = build_loaders(cfg, env)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ValueError(f"the training split has fewer clips per process than --batch-size {cfg.batch_size}")

    model = JNA(train_loader.num_classes, backbone=cfg.backbone, num_segments=cfg.num_segments,
                flow_length=cfg.flow_length, share_after=cfg.share_after, dropout=cfg.dropout,
                backend=cfg.op_backend)
    if cfg.weights:
        model.load_backbone_weights(cfg.weights)
    channels_last = env.device.type == "cuda" if cfg.channels_last is None else cfg.channels_last
    model = model.to(env.device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    optimizer = torch.optim.SGD(parameter_groups(model, cfg), lr=cfg.lr, momentum=cfg.momentum)

    out = Path(cfg.out)
    checkpoint_path = out / CHECKPOINT_NAME
    start_epoch, start_batch, step = 0, 0, 0
    resume_from = resolve_resume(cfg)
    if resume_from is not None:
        state = torch.load(resume_from, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, start_batch, step = state["epoch"], state["batch"], state["step"]
        restore_rng_state(state["rng"])
        if env.is_main:
            logger.info("resumed from %s at epoch %d, batch %d (step %d)", resume_from, start_epoch,
                        start_batch, step)

    net = model
    if env.world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)

    def checkpoint(epoch: int, batch: int) -> None:
        if env.is_main:
            save_checkpoint(checkpoint_path, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                "batch": batch, "step": step, "rng": rng_state(), "config": asdict(cfg),
                "class_names": train_loader.class_names})

    metrics_file = out / "metrics.jsonl"
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        logger.info("training %s on %s: %d classes, %d steps/epoch, %d epochs, device %s x %d",
                    cfg.backbone, cfg.dataset, train_loader.num_classes, steps_per_epoch, cfg.epochs,
                    env.device, env.world_size)
    finished = False
    for epoch in range(start_epoch, cfg.epochs):
        net.train()
        train_loader.set_epoch(epoch)
        skip = start_batch if epoch == start_epoch else 0
        seen = loss_sum = correct = 0.0
        began = time.perf_counter()
        bar = tqdm(total=steps_per_epoch, initial=skip, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=not (env.is_main and cfg.progress), dynamic_ncols=True)
        batch_number = skip
        for batch in train_loader.batches(start_batch=skip):
            batch = batch.to(env.device, non_blocking=True)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(cfg, step, steps_per_epoch) * group["lr_scale"]
            with autocast_context(cfg, env.device):
                output = net(batch.rgb, batch.flow, batch.mask)
            loss = model.loss(output, batch.label)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            optimizer.step()
            step += 1
            batch_number += 1
            seen += len(batch.label)
            loss_sum += loss.item() * len(batch.label)
            correct += float((output.logits.argmax(1) == batch.label).sum())
            elapsed = time.perf_counter() - began
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.2f}",
                            clips_s=f"{seen * env.world_size / elapsed:.1f}")
            bar.update(1)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                checkpoint(epoch, batch_number)
            if cfg.max_steps is not None and step >= cfg.max_steps:
                finished = True
                break
        bar.close()
        if finished and batch_number < steps_per_epoch:
            checkpoint(epoch, batch_number)
            break
        checkpoint(epoch + 1, 0)
        totals = all_reduce_sum([seen, loss_sum, correct], env.device)
        record = {"epoch": epoch + 1, "step": step, "train_loss": totals[1] / max(totals[0], 1),
                  "train_top1": totals[2] / max(totals[0], 1),
                  "train_clips_per_s": totals[0] / max(time.perf_counter() - began, 1e-9),
                  "skipped_clips": len(train_loader.last_epoch_issues)}
        record.update(evaluate(net, val_loader, cfg, env, salient))
        if env.is_main:
            logger.info("epoch %d: %s", epoch + 1, ", ".join(
                f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))
            with open(metrics_file, "a") as handle:
                handle.write(json.dumps(record) + "\n")
        if finished:
            break
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
