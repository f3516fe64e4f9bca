"""Op benchmarks (issue 3): cross_stitch and joint_attention_pool per provider, mode, shape and dtype.

    pytest benchmarks/bench_ops.py --benchmark-only --benchmark-json=ops.json
    python benchmarks/report.py ops.json          # time, GB/s on the floor's bytes, ratio to eager reference

Providers: ``reference`` (eager PyTorch, jna_fast/ops/reference.py), ``reference_compiled`` (the same under
torch.compile), and the kernel backends ``cpp``, ``cuda``, ``triton``; a provider that cannot serve on this
machine is skipped with the backend's own reason (jna_fast.ops.availability). Device: CUDA when available,
else CPU. Each benchmark records in ``extra_info`` the floor byte count of DESIGN §3 (each input read once,
each output written once) and the GB/s achieved on it at the median time.

JNA_FAST_BENCH_SECONDS (default 2) is the time budget per benchmark: rounds = budget / one call, clamped to
[3, 50].
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

import pytest
import torch

import jna_fast.ops as ops
from jna_fast.ops import cross_stitch_ref, joint_attention_pool_ref

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
PROVIDERS = ("reference", "reference_compiled", "cpp", "cuda", "triton")
MODES = ("fwd", "bwd", "fwd+bwd")
DTYPES = {"float32": torch.float32, "bf16": torch.bfloat16}
POOL_SHAPES = [(32, 25, 2048), (128, 25, 2048)]  # [B, T, C]
STITCH_SHAPES = [(96, 1024, 14, 14), (96, 512, 28, 28)]  # [B*T, C, H, W]
BUDGET_SECONDS = float(os.environ.get("JNA_FAST_BENCH_SECONDS", "2"))


def synchronize() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def provider_reason(provider: str) -> str | None:
    """Why `provider` cannot be benchmarked on DEVICE (None: it can)."""
    if provider.startswith("reference"):
        return None
    if provider == "triton" and DEVICE.type == "cpu":
        return "triton runs CPU tensors only in the TRITON_INTERPRET=1 debugging interpreter, not benchmarked"
    return ops.availability(DEVICE)[provider]


def provider_function(op: str, provider: str) -> Callable:
    reference = {"cross_stitch": cross_stitch_ref, "joint_attention_pool": joint_attention_pool_ref}[op]
    if provider == "reference":
        return reference
    if provider == "reference_compiled":
        return torch.compile(reference, dynamic=False)
    public = getattr(ops, op)
    return lambda *inputs: public(*inputs, backend=provider)


@dataclass
class OpCase:
    inputs: tuple  # positional inputs of the op; the first `differentiable` of them get gradients
    differentiable: int
    grad_outputs: tuple  # one per output the loss uses (the model uses p_rgb, p_flow, never attention's grad)
    floor_bytes: dict[str, int]  # per mode


def pool_case(shape, dtype) -> OpCase:
    batch, segments, channels = shape
    gen = torch.Generator().manual_seed(0)
    f_rgb, f_flow = (torch.randn(shape, generator=gen).to(DEVICE, dtype) for _ in range(2))
    # float32 attention weights with bf16 features: the autocast situation.
    w_rgb, w_flow = (torch.randn(channels, generator=gen).mul(channels**-0.5).to(DEVICE) for _ in range(2))
    grads = tuple(torch.randn(batch, channels, generator=gen).to(DEVICE, dtype) for _ in range(2))
    feature, param, acc = f_rgb.element_size(), w_rgb.element_size(), 4
    features = 2 * batch * segments * channels * feature
    pooled = 2 * batch * channels * feature
    weights = 2 * channels * param
    attention = batch * segments * acc
    forward = features + weights + pooled + attention  # read f, w; write p, a
    backward = features + features + pooled + attention + 2 * weights  # read f, dp, a, w; write df, dw
    return OpCase((f_rgb, f_flow, w_rgb, w_flow, None), 4, grads,
                  {"fwd": forward, "bwd": backward, "fwd+bwd": forward + backward})


def stitch_case(shape, dtype) -> OpCase:
    channels = shape[1]
    gen = torch.Generator().manual_seed(0)
    x_rgb, x_flow = (torch.randn(shape, generator=gen).to(DEVICE, dtype) for _ in range(2))
    alpha = (torch.tensor([[0.9, 0.1], [0.1, 0.9]]).repeat(channels, 1, 1)
             + 0.1 * torch.randn(channels, 2, 2, generator=gen)).to(DEVICE)
    grads = tuple(torch.randn(shape, generator=gen).to(DEVICE, dtype) for _ in range(2))
    maps = x_rgb.numel() * x_rgb.element_size()
    params = alpha.numel() * alpha.element_size()
    forward = 4 * maps + params  # read x_rgb, x_flow; write y_rgb, y_flow
    backward = 6 * maps + 2 * params  # read dy_rgb, dy_flow, x_rgb, x_flow; write dx_rgb, dx_flow, dalpha
    return OpCase((x_rgb, x_flow, alpha), 3, grads, {"fwd": forward, "bwd": backward, "fwd+bwd": forward + backward})


def timed_call(fn: Callable, mode: str, case: OpCase) -> Callable[[], None]:
    """A no-argument callable running `mode` of fn on the case's inputs."""
    leaves = [t.detach().requires_grad_(True) for t in case.inputs[: case.differentiable]]
    rest = list(case.inputs[case.differentiable:])
    used = len(case.grad_outputs)
    if mode == "fwd":
        def forward():
            with torch.no_grad():
                fn(*case.inputs)
        return forward
    if mode == "fwd+bwd":
        def forward_backward():
            outputs = fn(*leaves, *rest)
            torch.autograd.grad(outputs[:used], leaves, case.grad_outputs)
        return forward_backward
    outputs = fn(*leaves, *rest)  # bwd: the graph is built once, its backward timed (retain_graph)

    def backward():
        torch.autograd.grad(outputs[:used], leaves, case.grad_outputs, retain_graph=True)
    return backward


def run_benchmark(benchmark, op: str, shape, dtype_name: str, provider: str, mode: str) -> None:
    reason = provider_reason(provider)
    if reason is not None:
        pytest.skip(f"{provider}: {reason}")
    dtype = DTYPES[dtype_name]
    case = pool_case(shape, dtype) if op == "joint_attention_pool" else stitch_case(shape, dtype)
    call = timed_call(provider_function(op, provider), mode, case)

    def synchronized():
        call()
        synchronize()

    # Warm-up outside the timing: torch.compile compiles here, the allocator and caches settle.
    began = time.perf_counter()
    synchronized()
    synchronized()
    one_call = (time.perf_counter() - began) / 2
    rounds = int(min(50, max(3, BUDGET_SECONDS / max(one_call, 1e-6))))
    benchmark.group = f"{op} {'x'.join(map(str, shape))} {dtype_name} {mode}"
    benchmark.extra_info.update(op=op, shape=list(shape), dtype=dtype_name, provider=provider, mode=mode,
                                device=str(DEVICE), floor_bytes=case.floor_bytes[mode])
    benchmark.pedantic(synchronized, rounds=rounds, iterations=1)
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["gbps"] = case.floor_bytes[mode] / benchmark.stats.stats.median / 1e9


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("shape", POOL_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_joint_attention_pool(benchmark, shape, dtype_name, provider, mode):
    run_benchmark(benchmark, "joint_attention_pool", shape, dtype_name, provider, mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("shape", STITCH_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_cross_stitch(benchmark, shape, dtype_name, provider, mode):
    run_benchmark(benchmark, "cross_stitch", shape, dtype_name, provider, mode)
