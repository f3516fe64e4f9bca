"""Measured matmul peak of a device in one precision: the ceiling a model step's achieved GFLOP/s is judged against
(benchmarks/throughput.py's roofline), as benchmarks/copy_bandwidth.py is the ceiling of the bandwidth-bound ops.
A square ``torch.mm`` per size, warmed up, then repeated for at least ``min_seconds``; the fastest call gives
2·n³ FLOP / s (a ceiling: other work on the machine can only slow a call down, so the best call is the closest to
the device's own figure); the peak is the best size. It runs on the calling process's threads
(torch.get_num_threads()).

    python benchmarks/matmul_peak.py [--device cuda] [--precision fp32 bf16 tf32] [--sizes 1024 2048 4096]

Precisions: ``fp32`` (on CUDA with TF32 off), ``tf32`` (CUDA only: float32 storage on the TF32 tensor cores, what
cuDNN's convolutions use by default), ``bf16``. On a CPU without native bf16 (no avx512_bf16 / amx_bf16 and no
oneDNN bf16 path) the bf16 figure is an emulation's, and ``bf16_support`` says so.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time
from pathlib import Path

import torch

DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16}


def default_sizes(device: torch.device) -> tuple[int, ...]:
    return (2048, 4096, 8192) if device.type == "cuda" else (1024, 2048, 4096)


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "cpu"
    line = next((line for line in text.splitlines() if line.startswith("model name")), "")
    return line.partition(":")[2].strip() or platform.processor() or "cpu"


def bf16_support(device: torch.device) -> str:
    """How this device computes bf16 matmuls, in words: ``native (...)`` or ``emulated (...)``."""
    if device.type == "cuda":
        return "native" if torch.cuda.is_bf16_supported() else "emulated (no bf16 tensor cores)"
    flags = sorted(cpu_flags() & {"avx512_bf16", "amx_bf16"})
    capability = torch.backends.cpu.get_cpu_capability()
    onednn = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if flags and onednn:
        return f"native ({', '.join(flags)}; oneDNN; torch CPU capability {capability})"
    return (f"emulated (CPU flags: {', '.join(flags) or 'no avx512_bf16/amx_bf16'}; oneDNN bf16: "
            f"{'yes' if onednn else 'no'}; torch CPU capability {capability})")


def step_precision(device: torch.device, precision: str) -> str:
    """The matmul precision a model step run at ``precision`` (fp32 / bf16 autocast) computes its convolutions in:
    on CUDA an fp32 step's convolutions use TF32 while cuDNN allows it (its default)."""
    if precision == "fp32" and device.type == "cuda" and torch.backends.cudnn.allow_tf32:
        return "tf32"
    return precision


@contextlib.contextmanager
def _tf32(device: torch.device, allow: bool):
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allow
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def _seconds_per_mm(a, b, out, device: torch.device, min_seconds: float, min_repeats: int) -> float:
    inner = 10 if device.type == "cuda" else 1  # kernel launches far shorter than a timer's resolution
    for _ in range(3):
        torch.mm(a, b, out=out)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - began < min_seconds:
        if device.type == "cuda":
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                torch.mm(a, b, out=out)
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop) / 1e3 / inner)
        else:
            t0 = time.perf_counter()
            torch.mm(a, b, out=out)
            times.append(time.perf_counter() - t0)
    return min(times)


def matmul_peak(device: torch.device, precision: str, sizes=None, min_seconds: float = 0.3,
                min_repeats: int = 5) -> dict:
    """{"precision", "gflops" (the best size's), "size", "by_size": {n: GFLOP/s}, "threads"} of square torch.mm."""
    if precision == "tf32" and device.type != "cuda":
        raise ValueError("tf32 is a CUDA precision")
    dtype = DTYPES[precision]
    by_size = {}
    gen = torch.Generator().manual_seed(0)
    with _tf32(device, precision == "tf32"):
        for n in sizes or default_sizes(device):
            a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
            b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
            seconds = _seconds_per_mm(a, b, torch.empty_like(a), device, min_seconds, min_repeats)
            by_size[n] = 2 * n ** 3 / seconds / 1e9
            del a, b
    size = max(by_size, key=by_size.get)
    return {"precision": precision, "gflops": by_size[size], "size": size, "by_size": by_size,
            "threads": torch.get_num_threads()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", nargs="+", choices=tuple(DTYPES), default=None,
                   help="default: fp32 and bf16, and tf32 on CUDA")
    p.add_argument("--sizes", nargs="+", type=int, help="square sizes to try (default: 1024 2048 4096 on a "
                   "CPU, 2048 4096 8192 on CUDA); the best one is the peak")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    name = device_name(device)
    precisions = args.precision or (["fp32", "tf32", "bf16"] if device.type == "cuda" else ["fp32", "bf16"])
    print(f"{name}, {torch.get_num_threads()} threads, bf16: {bf16_support(device)}")
    for precision in precisions:
        peak = matmul_peak(device, precision, args.sizes)
        sweep = ", ".join(f"{n}: {g:.1f}" for n, g in peak["by_size"].items())
        print(f"matmul peak {precision} {peak['gflops']:.1f} GFLOP/s (torch.mm {peak['size']}; {sweep})")


if __name__ == "__main__":
    main()
