"""Op benchmarks: cross_stitch and joint_attention_pool per provider, mode, shape and dtype.

    pytest benchmarks/bench_ops.py --benchmark-only --benchmark-json=ops.json
    python benchmarks/report.py ops.json          # time, GB/s on the floor's bytes, ratio to eager reference

Providers: ``reference`` (jna_fast/ops/reference.py: the semantics, run eagerly), ``reference_compiled`` (the
same under torch.compile), the plain-PyTorch forms a user would write instead (``eager_*``, below; report.py
takes the fastest of them, per row, as "eager PyTorch"), and every registered backend of jna_fast.ops.backends
(``cuda``, ``triton``, ``cpp``, and any other that registers itself). A provider that cannot serve on this machine
is skipped with the backend's own reason. Device: CUDA when available, else CPU. Each benchmark records in ``extra_info``
the floor byte count of docs/design.md §8 (each input read once, each output written once) and the GB/s achieved on it
at the median time.

On a machine shared with other work, time the providers interleaved instead (each round runs every provider
once, in a fresh random order, so all of them see the same contention; same JSON layout, for report.py):

    python benchmarks/bench_ops.py --interleaved --rounds 15 --json ops.json

Environment: JNA_FAST_BENCH_SECONDS (default 2) is the time budget per benchmark (rounds = budget / one call,
clamped to [3, 50]); JNA_FAST_BENCH_MODES, JNA_FAST_BENCH_DTYPES, JNA_FAST_BENCH_PROVIDERS and
JNA_FAST_BENCH_LAYOUTS (comma-separated, e.g. ``fwd+bwd``, ``float32``, ``reference,cpp``, ``channels_last``) run a
subset, for a short run on a shared machine. JNA_FAST_BENCH_SHAPES picks the shapes: ``default`` (the shapes of
the figures in benchmarks/results/) or ``model``, the shapes a ResNet-50 JNA runs at: training (B = 32, T = 3,
C = 2048 and 512), evaluation (B = 8, T = 25), a long video (B = 1, T = 1000), and the stitch after each of
ResNet-50's four stages at 224 px for 32 clips of 3 snippets; or ``smoke``, tiny shapes that check that the
benchmarks run (benchmarks/gpu_session.sh --dry-run).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import random
import time
from datetime import datetime, timezone
from dataclasses import dataclass
from typing import Callable

import pytest
import torch

import jna_fast.ops as ops
from jna_fast.ops import cross_stitch_ref, joint_attention_pool_ref
from jna_fast.ops.backends import BACKENDS

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _subset(variable: str, choices):
    wanted = os.environ.get(variable)
    if not wanted:
        return choices
    names = [n.strip() for n in wanted.split(",")]
    unknown = [n for n in names if n not in choices]
    if unknown:
        raise ValueError(f"{variable}={wanted!r}: unknown {unknown}; choose from {list(choices)}")
    return type(choices)((n, choices[n]) for n in names) if isinstance(choices, dict) else tuple(names)


EAGER_FORMS = {
    "cross_stitch": ("eager_addcmul",),
    "joint_attention_pool": ("eager_einsum_bmm", "eager_matmul"),
}
PLAIN_PROVIDERS = ("reference", "reference_compiled", "eager_addcmul", "eager_einsum_bmm", "eager_matmul")
# Then every registered backend (jna_fast.ops.backends), in preference order, called through the public ops.
PROVIDERS = _subset("JNA_FAST_BENCH_PROVIDERS",
                    PLAIN_PROVIDERS + tuple(name for name in BACKENDS.names() if name not in PLAIN_PROVIDERS))
MODES = _subset("JNA_FAST_BENCH_MODES", ("fwd", "bwd", "fwd+bwd"))
DTYPES = _subset("JNA_FAST_BENCH_DTYPES", {"float32": torch.float32, "bf16": torch.bfloat16})
SHAPE_SETS = {  # name -> ([B, T, C] of the pool, [B*T, C, H, W] of the stitch)
    "default": ([(32, 25, 2048), (128, 25, 2048)], [(96, 1024, 14, 14), (96, 512, 28, 28)]),
    "model": ([(32, 3, 2048), (32, 3, 512), (8, 25, 2048), (1, 1000, 2048)],
              [(96, 256, 56, 56), (96, 512, 28, 28), (96, 1024, 14, 14), (96, 2048, 7, 7)]),
    "smoke": ([(2, 3, 40)], [(4, 24, 7, 7)]),
}
SHAPE_SET = os.environ.get("JNA_FAST_BENCH_SHAPES", "default")
if SHAPE_SET not in SHAPE_SETS:
    raise ValueError(f"JNA_FAST_BENCH_SHAPES={SHAPE_SET!r}: choose from {list(SHAPE_SETS)}")
POOL_SHAPES, STITCH_SHAPES = SHAPE_SETS[SHAPE_SET]
LAYOUTS = _subset("JNA_FAST_BENCH_LAYOUTS", {"contiguous": torch.contiguous_format,
                                             "channels_last": torch.channels_last})
BUDGET_SECONDS = float(os.environ.get("JNA_FAST_BENCH_SECONDS", "2"))


def synchronize() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


# ---- plain-PyTorch forms: what a user would write without jna_fast, same semantics as the reference ----


def eager_addcmul_cross_stitch(x_rgb, x_flow, alpha):
    """Two fused multiply-adds per output (addcmul) instead of the reference's two products and a sum."""
    a = alpha.to(x_rgb.dtype).view(alpha.shape[0], 4, 1, 1).unbind(1)
    return torch.addcmul(a[0] * x_rgb, a[1], x_flow), torch.addcmul(a[2] * x_rgb, a[3], x_flow)


def _masked_softmax(scores, mask):
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=1)


def eager_einsum_bmm_pool(f_rgb, f_flow, w_rgb, w_flow, mask=None):
    """Scores by einsum (a matrix-vector product, no expanded w), pooling by bmm; float32 accumulation."""
    acc = torch.float64 if f_rgb.dtype == torch.float64 else torch.float32
    fr, ff = f_rgb.to(acc), f_flow.to(acc)
    scores = torch.einsum("btc,c->bt", fr, w_rgb.to(acc)) + torch.einsum("btc,c->bt", ff, w_flow.to(acc))
    attention = _masked_softmax(scores, mask)
    weights = attention.unsqueeze(1)
    return (torch.bmm(weights, fr).squeeze(1).to(f_rgb.dtype), torch.bmm(weights, ff).squeeze(1).to(f_rgb.dtype),
            attention)


def eager_matmul_pool(f_rgb, f_flow, w_rgb, w_flow, mask=None):
    """Scores as f @ w, pooling by matmul; float32 accumulation."""
    acc = torch.float64 if f_rgb.dtype == torch.float64 else torch.float32
    fr, ff = f_rgb.to(acc), f_flow.to(acc)
    attention = _masked_softmax(fr @ w_rgb.to(acc) + ff @ w_flow.to(acc), mask)
    weights = attention.unsqueeze(1)
    return ((weights @ fr).squeeze(1).to(f_rgb.dtype), (weights @ ff).squeeze(1).to(f_rgb.dtype), attention)


EAGER_FUNCTIONS = {
    ("cross_stitch", "eager_addcmul"): eager_addcmul_cross_stitch,
    ("joint_attention_pool", "eager_einsum_bmm"): eager_einsum_bmm_pool,
    ("joint_attention_pool", "eager_matmul"): eager_matmul_pool,
}


def provider_reason(provider: str, op: str) -> str | None:
    """Why `provider` cannot be benchmarked for `op` on DEVICE (None: it can)."""
    if provider.startswith("reference"):
        return None
    if provider.startswith("eager_"):
        return None if provider in EAGER_FORMS[op] else f"{provider} is not a plain-PyTorch form of {op}"
    # Unforced: a backend that serves DEVICE only when forced (the Triton interpreter on CPU) is a debugging mode,
    # not benchmarked.
    return BACKENDS.why_not(provider, DEVICE, forced=False)


def provider_function(op: str, provider: str) -> Callable:
    reference = {"cross_stitch": cross_stitch_ref, "joint_attention_pool": joint_attention_pool_ref}[op]
    if provider == "reference":
        return reference
    if provider == "reference_compiled":
        return torch.compile(reference, dynamic=False)
    if provider.startswith("eager_"):
        return EAGER_FUNCTIONS[op, provider]
    public = getattr(ops, op)
    return lambda *inputs: public(*inputs, backend=provider)


@dataclass
class OpCase:
    inputs: tuple  # positional inputs of the op; the first `differentiable` of them get gradients
    differentiable: int
    grad_outputs: tuple  # one per output the loss uses (the model uses p_rgb, p_flow, never attention's grad)
    floor_bytes: dict[str, int]  # per mode


def random_tensor(shape, gen, dtype=torch.float32) -> torch.Tensor:
    """Standard normal values made on DEVICE (a ResNet-50 stage's maps take seconds to draw on a host CPU)."""
    return torch.randn(shape, generator=gen, device=DEVICE).to(dtype)


@functools.lru_cache(maxsize=2)
def pool_case(shape, dtype) -> OpCase:
    batch, segments, channels = shape
    gen = torch.Generator(DEVICE).manual_seed(0)
    f_rgb, f_flow = (random_tensor(shape, gen, dtype) for _ in range(2))
    # float32 attention weights with bf16 features: the autocast situation.
    w_rgb, w_flow = (random_tensor(channels, gen).mul(channels**-0.5) for _ in range(2))
    grads = tuple(random_tensor((batch, channels), gen, dtype) for _ in range(2))
    feature, param, acc = f_rgb.element_size(), w_rgb.element_size(), 4
    features = 2 * batch * segments * channels * feature
    pooled = 2 * batch * channels * feature
    weights = 2 * channels * param
    attention = batch * segments * acc
    forward = features + weights + pooled + attention  # read f, w; write p, a
    backward = features + features + pooled + attention + 2 * weights  # read f, dp, a, w; write df, dw
    return OpCase((f_rgb, f_flow, w_rgb, w_flow, None), 4, grads,
                  {"fwd": forward, "bwd": backward, "fwd+bwd": forward + backward})


@functools.lru_cache(maxsize=2)
def stitch_case(shape, dtype, layout="contiguous") -> OpCase:
    channels = shape[1]
    gen = torch.Generator(DEVICE).manual_seed(0)

    def maps():
        return random_tensor(shape, gen, dtype).contiguous(memory_format=LAYOUTS.get(layout, torch.contiguous_format))

    x_rgb, x_flow = maps(), maps()
    alpha = torch.tensor([[0.9, 0.1], [0.1, 0.9]], device=DEVICE).repeat(channels, 1, 1) + 0.1 * random_tensor(
        (channels, 2, 2), gen)
    grads = (maps(), maps())
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


def make_case(op: str, shape, dtype, layout: str) -> OpCase:
    return pool_case(shape, dtype) if op == "joint_attention_pool" else stitch_case(shape, dtype, layout)


def row_name(op: str, shape, dtype_name: str, layout: str) -> str:
    """A benchmark row: the stitch's rows name their layout (the pool's inputs have one layout)."""
    stitch_layout = f" {layout}" if op == "cross_stitch" else ""
    return f"{op} {'x'.join(map(str, shape))}{stitch_layout} {dtype_name}"


def run_benchmark(benchmark, op: str, shape, dtype_name: str, provider: str, mode: str,
                  layout: str = "contiguous") -> None:
    reason = provider_reason(provider, op)
    if reason is not None:
        pytest.skip(f"{provider}: {reason}")
    case = make_case(op, shape, DTYPES[dtype_name], layout)
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
    benchmark.group = f"{row_name(op, shape, dtype_name, layout)} {mode}"
    benchmark.extra_info.update(op=op, shape=list(shape), dtype=dtype_name, provider=provider, mode=mode,
                                layout=layout, device=str(DEVICE), floor_bytes=case.floor_bytes[mode])
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
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", STITCH_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_cross_stitch(benchmark, shape, layout, dtype_name, provider, mode):
    run_benchmark(benchmark, "cross_stitch", shape, dtype_name, provider, mode, layout)


def machine_name() -> str:
    if DEVICE.type == "cuda":
        return torch.cuda.get_device_name(DEVICE)
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "cpu"


def interleaved(rounds: int) -> dict:
    """Every (op, shape, dtype, mode) row with all its providers timed in interleaved rounds; pytest-benchmark's
    JSON layout (the fields report.py reads)."""
    benchmarks = []
    rows = [("joint_attention_pool", shape, "contiguous") for shape in POOL_SHAPES]
    rows += [("cross_stitch", shape, layout) for shape in STITCH_SHAPES for layout in LAYOUTS]
    for op, shape, layout in rows:
        for dtype_name, dtype in DTYPES.items():
            case = make_case(op, shape, dtype, layout)
            for mode in MODES:
                calls = {}
                for provider in PROVIDERS:
                    if provider_reason(provider, op) is None:
                        call = timed_call(provider_function(op, provider), mode, case)
                        call()  # warm-up: torch.compile compiles here
                        call()
                        synchronize()
                        calls[provider] = call
                times = {provider: [] for provider in calls}
                for _ in range(rounds):
                    for provider in random.sample(list(calls), len(calls)):
                        began = time.perf_counter()
                        calls[provider]()
                        synchronize()
                        times[provider].append(time.perf_counter() - began)
                for provider, samples in times.items():
                    ordered = sorted(samples)
                    benchmarks.append({
                        "name": f"{op}[{'x'.join(map(str, shape))}-{layout}-{dtype_name}-{mode}-{provider}]",
                        "extra_info": dict(op=op, shape=list(shape), dtype=dtype_name, provider=provider, mode=mode,
                                           layout=layout, device=str(DEVICE), floor_bytes=case.floor_bytes[mode],
                                           gbps=case.floor_bytes[mode] / ordered[len(ordered) // 2] / 1e9),
                        "stats": {"median": ordered[len(ordered) // 2], "min": ordered[0], "max": ordered[-1],
                                  "rounds": rounds},
                    })
                print(f"{row_name(op, shape, dtype_name, layout)} {mode}: " + ", ".join(
                    f"{p} {sorted(t)[len(t) // 2] * 1e3:.2f} ms" for p, t in times.items()), flush=True)
    return {"machine_info": {"cpu": {"brand_raw": machine_name()}, "device": str(DEVICE), "torch": torch.__version__,
                             "cpu_count": os.cpu_count()},
            "datetime": datetime.now(timezone.utc).isoformat(), "method": f"interleaved, {rounds} rounds",
            "benchmarks": benchmarks}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Interleaved op benchmarks (see the module docstring).")
    parser.add_argument("--interleaved", action="store_true", required=True,
                        help="time the providers in interleaved rounds (the pytest run times them one by one)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", required=True, help="where to write the results (pytest-benchmark's layout)")
    args = parser.parse_args(argv)
    with open(args.json, "w") as f:
        json.dump(interleaved(args.rounds), f, indent=1)


if __name__ == "__main__":
    main()
