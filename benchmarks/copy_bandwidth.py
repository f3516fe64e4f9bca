"""Measured copy bandwidth of a device: the ceiling the fused ops' GB/s (docs/design.md §8's floor bytes) is judged
against. Counts bytes read plus bytes written; median of repeated copies over buffers larger than the caches.

    python benchmarks/copy_bandwidth.py [--device cuda] [--mib 1024]
"""

from __future__ import annotations

import argparse
import time

import torch


def copy_bandwidth(device: torch.device, nbytes: int, repeats: int = 20) -> float:
    """GB/s of dst.copy_(src) for `nbytes`-byte float32 buffers (read + write counted)."""
    count = nbytes // 4
    src = torch.randn(count, device=device)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            dst.copy_(src)
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop) / 1e3)
        else:
            began = time.perf_counter()
            dst.copy_(src)
            times.append(time.perf_counter() - began)
    median = sorted(times)[len(times) // 2]
    return 2 * count * 4 / median / 1e9


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--mib", type=int, default=1024 if torch.cuda.is_available() else 256,
                   help="buffer size in MiB (well above the last-level cache)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{name}: copy {copy_bandwidth(device, args.mib << 20):.1f} GB/s (read + write, {args.mib} MiB buffers)")


if __name__ == "__main__":
    main()
