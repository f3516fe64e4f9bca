"""End-to-end JNA throughput: clips/s of a training step (forward, loss, backward, SGD step) and of inference,
for each op backend that can serve on this machine, measured side by side in one run.

    python benchmarks/throughput.py                      # CUDA if available, else CPU with small defaults
    python benchmarks/throughput.py --backbone resnet50 --batch-size 16 --size 224 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone

import torch

from jna_fast import JNA
from jna_fast.ops import BACKEND_NAMES, availability


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn, device: torch.device, warmup: int, steps: int) -> float:
    """Median seconds per call over `steps` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(steps):
        began = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - began)
    return sorted(times)[len(times) // 2]


def run(args) -> list[dict]:
    device = torch.device(args.device)
    reasons = availability(device)
    backends = [b for b in BACKEND_NAMES if reasons[b] is None and b in args.backends]
    skipped = {b: reasons[b] for b in args.backends if reasons[b] is not None}
    for name, reason in skipped.items():
        print(f"skip {name}: {reason}")
    gen = torch.Generator().manual_seed(0)
    rgb = torch.randn(args.batch_size, args.segments, 3, args.size, args.size, generator=gen).to(device)
    flow = torch.rand(args.batch_size, args.segments, 2 * args.flow_length, args.size, args.size,
                      generator=gen).mul(2).sub(1).to(device)
    target = torch.randint(0, args.classes, (args.batch_size,), generator=gen).to(device)
    dtype = {"fp32": None, "bf16": torch.bfloat16}[args.precision]
    results = []
    for backend in backends:
        torch.manual_seed(0)
        model = JNA(args.classes, backbone=args.backbone, flow_length=args.flow_length,
                    backend=backend).to(device)
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        net = torch.compile(model) if args.compile else model
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def autocast():
            return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

        def train_step():
            with autocast():
                out = net(rgb, flow)
            loss = model.loss(out, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        @torch.no_grad()
        def infer():
            with autocast():
                net(rgb, flow)

        model.train()
        train_s = measure(train_step, device, args.warmup, args.steps)
        model.eval()
        infer_s = measure(infer, device, args.warmup, args.steps)
        results.append({"backend": backend, "train_clips_per_s": args.batch_size / train_s,
                        "infer_clips_per_s": args.batch_size / infer_s, "train_step_s": train_s,
                        "infer_step_s": infer_s})
    return results


def main(argv=None) -> None:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if cuda else "cpu")
    p.add_argument("--backbone", default="resnet50" if cuda else "resnet18")
    p.add_argument("--batch-size", type=int, default=32 if cuda else 4)
    p.add_argument("--segments", type=int, default=3)
    p.add_argument("--flow-length", type=int, default=5)
    p.add_argument("--size", type=int, default=224 if cuda else 112)
    p.add_argument("--classes", type=int, default=101)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="bf16" if cuda else "fp32")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=cuda)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10 if cuda else 5)
    p.add_argument("--backends", nargs="+", default=list(BACKEND_NAMES), choices=BACKEND_NAMES)
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)
    results = run(args)
    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"JNA {args.backbone}, B={args.batch_size} T={args.segments} L={args.flow_length} {args.size}px, "
          f"{args.precision}, {device_name}")
    reference = next((r for r in results if r["backend"] == "reference"), None)
    print(f"{'backend':<10} {'train clips/s':>14} {'infer clips/s':>14} {'train vs ref':>13}")
    for r in results:
        ratio = r["train_clips_per_s"] / reference["train_clips_per_s"] if reference else float("nan")
        print(f"{r['backend']:<10} {r['train_clips_per_s']:>14.2f} {r['infer_clips_per_s']:>14.2f} {ratio:>12.3f}x")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": device_name,
                       "torch": torch.__version__, "config": vars(args), "results": results}, handle, indent=1)


if __name__ == "__main__":
    main()
