"""Processes and devices: the torchrun world, reductions across ranks, what the main process sends the others,
random-number state.

The processes of a run may sit on nodes that share no files: what one of them reads from or writes to a file and
the others need is sent to them (:func:`from_main`), never left for them to read back, and a failure on one rank
stops every rank with an error (:func:`agree`) rather than leaving the others waiting in a collective.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist

from .cli import describe
from .errors import JnaFastError

Result = TypeVar("Result")


class OtherRankError(JnaFastError):
    """Another process of the run failed: this one stops too, with that process's error."""


@dataclass(frozen=True)
class Distributed:
    rank: int
    world_size: int
    device: torch.device
    local_rank: int = 0  # the process's number on its node: 0 is the node's first process

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str | None = None) -> Distributed:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; a plain ``python -m`` run is a world of one. ``device`` forces
    "cpu" or "cuda" (default: CUDA when available)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device is None else device == "cuda"
    if use_cuda:
        torch.cuda.set_device(local_rank)
        chosen = torch.device("cuda", local_rank)
    else:
        chosen = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return Distributed(rank, world_size, chosen, local_rank)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum over ranks of ``tensor`` (a copy; the tensor itself in a world of one)."""
    if not dist.is_initialized():
        return tensor
    total = tensor.clone()
    dist.all_reduce(total)
    return total


def agree(work: Callable[[], Result] | None) -> Result | None:
    """``work()`` on the ranks given one (None: nothing to do on this rank), then, under torchrun, every rank learns
    whether it failed anywhere (a barrier too): the rank where it failed raises its own error, the others
    :class:`OtherRankError` with its message, so that no rank waits forever for one that stopped."""
    result, error = None, None
    if work is not None:
        try:
            result = work()
        except Exception as caught:  # re-raised below, once the other ranks know
            error = caught
    if dist.is_initialized():
        problems = [None] * dist.get_world_size()
        dist.all_gather_object(problems, None if error is None else describe(error))
        failed = [(rank, problem) for rank, problem in enumerate(problems) if problem is not None]
        if error is None and failed:
            rank, problem = failed[0]
            raise OtherRankError(f"process {rank} of the run stopped: {problem}")
    if error is not None:
        raise error
    return result


def from_main(env: Distributed, produce: Callable[[], Result]) -> Result:
    """``produce()``, run on the main process only, on every rank: its result (tensors and plain values, such as
    a checkpoint's state) is sent to the others as ``torch.save`` bytes and read back there with
    ``weights_only=True``; an error it raises stops every rank (:func:`agree`)."""
    value = agree(produce if env.is_main else None)
    if not dist.is_initialized():
        return value
    payload = io.BytesIO()
    if env.is_main:
        torch.save(value, payload)
    size = torch.tensor([payload.getbuffer().nbytes], dtype=torch.int64, device=env.device)
    dist.broadcast(size, 0)
    data = (torch.frombuffer(bytearray(payload.getvalue()), dtype=torch.uint8) if env.is_main
            else torch.empty(int(size), dtype=torch.uint8)).to(env.device)
    dist.broadcast(data, 0)
    if env.is_main:
        return value
    return torch.load(io.BytesIO(data.cpu().numpy().tobytes()), map_location="cpu", weights_only=True)


def share_main_buffers(module: torch.nn.Module) -> None:
    """Give every rank the main process's buffers (BatchNorm's running statistics), those its checkpoints hold.
    DDP sends them at each forward pass, but each rank then updates its own on its batch, so after a training step
    they differ slightly from rank to rank (the parameters do not: DDP averages their gradients)."""
    if dist.is_initialized():
        for buffer in module.buffers():
            dist.broadcast(buffer, 0)


def seed_everything(seed: int, rank: int) -> None:
    """Python and NumPy differ per rank (their draws are per-process work); torch is the same on every rank, so
    every rank builds the same initial model."""
    random.seed(seed + rank)
    np.random.seed(seed + rank)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every generator's state, as tensors and plain values only: a checkpoint holding it loads with
    ``torch.load(weights_only=True)``, which refuses NumPy objects (jna_fast/checkpoint.py)."""
    numpy_state = np.random.get_state(legacy=False)  # {"bit_generator", "state": {"key", "pos"}, "has_gauss", "gauss"}
    state = {"python": random.getstate(),  # (version, tuple of ints, gauss_next): plain values already
             "numpy": {"bit_generator": numpy_state["bit_generator"],
                       "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                       "pos": int(numpy_state["state"]["pos"]), "has_gauss": int(numpy_state["has_gauss"]),
                       "gauss": float(numpy_state["gauss"])},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    numpy_state = state["numpy"]
    np.random.set_state({"bit_generator": numpy_state["bit_generator"],
                         "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
                         "has_gauss": numpy_state["has_gauss"], "gauss": numpy_state["gauss"]})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16(device: torch.device) -> str | None:
    """The feature by which ``device`` computes bf16 natively ("CUDA", "AMX", "AVX512-BF16"), or None where bf16
    would be emulated (slower than fp32: a CPU without these instructions converts every product)."""
    if device.type == "cuda":
        return "CUDA" if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        if torch.cpu._is_amx_tile_supported():
            return "AMX"
        if torch.cpu._is_avx512_bf16_supported():
            return "AVX512-BF16"
    return None


def resolve_precision(precision: str, device: torch.device) -> str:
    """"fp32" or "bf16": "auto" is bf16 autocast where ``device`` computes bf16 natively (:func:`native_bf16`),
    fp32 elsewhere (docs/design.md §10)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def precision_reason(precision: str, device: torch.device) -> str:
    """The precision ``precision`` means on ``device``, and why, for the run's log."""
    resolved = resolve_precision(precision, device)
    if precision != "auto":
        return f"{resolved} (as asked)"
    feature = native_bf16(device)
    return f"{resolved} (auto: " + (f"{device.type} computes bf16 natively, {feature})" if feature else
                                    f"{device.type} has no native bf16)")


def autocast_context(precision: str, device: torch.device):
    """The autocast of ``precision`` on ``device`` ("auto": :func:`resolve_precision`)."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
