"""End-to-end JNA throughput: clips/s of a training step (forward, loss, backward, the update of --optimizer: SGD
with momentum or AdamW, torch's fused update where the device has one, as the trainer makes it) and of inference,
for each op backend that can serve on this machine, measured side by side in one run, with each one's roofline:
the FLOP per clip of the exact step (counted by torch.utils.flop_counter.FlopCounterMode on one step of the
measured batch, in the measured precision, on the eager model: convolutions and matmuls, 2 FLOP per multiply-add;
elementwise work and the fused ops are not counted), the achieved GFLOP/s, and its share of the matmul peak
measured in the same run, on the same device, threads and precision, before and after the steps, the better of the
two (benchmarks/matmul_peak.py; on CUDA an fp32 step is judged against the TF32 peak while cuDNN's convolutions use
TF32).

    python benchmarks/throughput.py                      # CUDA if available, else CPU with small defaults
    python benchmarks/throughput.py --backbone resnet50 --batch-size 16 --size 224 --json out.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from datetime import datetime, timezone

import torch
from matmul_peak import bf16_support, device_name, matmul_peak, step_precision
from torch.utils.flop_counter import FlopCounterMode

from jna_fast import JNA
from jna_fast.ops import BACKEND_NAMES, availability
from jna_fast.training.optimizer import fused_update


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


def counted_flop(fn) -> int:
    """FLOP of one call of ``fn``, counted by FlopCounterMode (convolutions and matmuls, forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def inputs(args, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    rgb = torch.randn(args.batch_size, args.segments, 3, args.size, args.size, generator=gen).to(device)
    flow = torch.rand(args.batch_size, args.segments, 2 * args.flow_length, args.size, args.size,
                      generator=gen).mul(2).sub(1).to(device)
    target = torch.randint(0, args.classes, (args.batch_size,), generator=gen).to(device)
    return rgb, flow, target


def step_functions(module, model, optimizer, batch, dtype):
    """(training step, inference) of ``module`` (the model or its compiled form) on ``batch`` under autocast."""
    rgb, flow, target = batch

    def autocast():
        return torch.autocast(rgb.device.type, dtype=dtype, enabled=dtype is not None)

    def train_step():
        with autocast():
            out = module(rgb, flow)
        loss = model.loss(out, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def infer():
        with autocast():
            module(rgb, flow)

    return train_step, infer


def measure_backend(backend: str, args, batch, device: torch.device) -> dict:
    dtype = {"fp32": None, "bf16": torch.bfloat16}[args.precision]
    torch.manual_seed(0)
    model = JNA(args.classes, backbone=args.backbone, flow_length=args.flow_length, backend=backend).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    fused = fused_update({device.type})
    optimizer = (torch.optim.AdamW(model.parameters(), lr=1e-3, fused=fused) if args.optimizer == "adamw" else
                 torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, fused=fused))
    eager_train, eager_infer = step_functions(model, model, optimizer, batch, dtype)
    train_step, infer = step_functions(torch.compile(model) if args.compile else model, model, optimizer, batch, dtype)
    model.train()
    train_flop = counted_flop(eager_train)  # the compiled step computes the same convolutions and matmuls
    train_s = measure(train_step, device, args.warmup, args.steps)
    model.eval()
    infer_flop = counted_flop(eager_infer)
    infer_s = measure(infer, device, args.warmup, args.steps)
    result = {"backend": backend, "train_clips_per_s": args.batch_size / train_s,
              "infer_clips_per_s": args.batch_size / infer_s, "train_step_s": train_s, "infer_step_s": infer_s,
              "train_flop_per_step": train_flop, "infer_flop_per_step": infer_flop}
    for mode, flop, seconds in (("train", train_flop, train_s), ("infer", infer_flop, infer_s)):
        result[f"{mode}_gflop_per_clip"] = flop / args.batch_size / 1e9
        result[f"{mode}_gflops"] = flop / seconds / 1e9
    return result


def measure_peaks(args, device: torch.device, earlier: dict | None = None) -> dict:
    """The matmul peak the step is judged against ("step"), and every peak measured (precision -> figures); with
    ``earlier`` (the same measured before the steps), each precision keeps the better of the two, and both."""
    judged = step_precision(device, args.precision)
    peaks = {judged: matmul_peak(device, judged, args.peak_sizes)}
    if judged == "tf32":  # also the strict fp32 figure, for the record
        peaks["fp32"] = matmul_peak(device, "fp32", args.peak_sizes)
    if earlier is not None:
        for precision, after in peaks.items():
            before = earlier["peaks"][precision]
            best = max(before, after, key=lambda peak: peak["gflops"])
            peaks[precision] = {**best, "before_gflops": before["gflops"], "after_gflops": after["gflops"]}
    return {"step": judged, "peaks": peaks}


def run(args) -> tuple[list[dict], dict]:
    """(one result per backend, the matmul peaks) of one run."""
    device = torch.device(args.device)
    reasons = availability(device)
    backends = [b for b in BACKEND_NAMES if reasons[b] is None and b in args.backends]
    skipped = {b: reasons[b] for b in args.backends if reasons[b] is not None}
    for name, reason in skipped.items():
        print(f"skip {name}: {reason}")
    before = measure_peaks(args, device)
    batch = inputs(args, device)
    results = [measure_backend(backend, args, batch, device) for backend in backends]
    peaks = measure_peaks(args, device, earlier=before)  # before and after the steps: the better of the two
    peak_gflops = peaks["peaks"][peaks["step"]]["gflops"]
    for result in results:
        for mode in ("train", "infer"):
            result[f"{mode}_peak_fraction"] = result[f"{mode}_gflops"] / peak_gflops
    return results, peaks


def print_table(args, results: list[dict], peaks: dict, device: torch.device) -> None:
    layout = "channels_last" if args.channels_last else "contiguous"
    print(f"JNA {args.backbone}, B={args.batch_size} T={args.segments} L={args.flow_length} {args.size}px, "
          f"{args.precision}, {layout}{', compiled' if args.compile else ''}, {args.optimizer}, {device_name(device)}, "
          f"{torch.get_num_threads()} threads")
    if args.precision == "bf16":
        print(f"bf16: {bf16_support(device)}")
    for precision, peak in peaks["peaks"].items():
        sweep = ", ".join(f"{n}: {g:.1f}" for n, g in peak["by_size"].items())
        print(f"matmul peak {precision}: {peak['gflops']:.1f} GFLOP/s (torch.mm {peak['size']}; {sweep}; before the "
              f"steps {peak['before_gflops']:.1f}, after {peak['after_gflops']:.1f})"
              f"{'  <- the % peak columns' if precision == peaks['step'] else ''}")
    reference = next((r for r in results if r["backend"] == "reference"), None)
    print(f"{'backend':<10} {'train clips/s':>13} {'infer clips/s':>13} {'train vs ref':>12} "
          f"{'train GFLOP/clip':>16} {'train GFLOP/s':>13} {'train %peak':>11} "
          f"{'infer GFLOP/clip':>16} {'infer GFLOP/s':>13} {'infer %peak':>11}")
    for r in results:
        ratio = r["train_clips_per_s"] / reference["train_clips_per_s"] if reference else float("nan")
        print(f"{r['backend']:<10} {r['train_clips_per_s']:>13.2f} {r['infer_clips_per_s']:>13.2f} {ratio:>11.3f}x "
              f"{r['train_gflop_per_clip']:>16.3f} {r['train_gflops']:>13.1f} {100 * r['train_peak_fraction']:>10.1f}% "
              f"{r['infer_gflop_per_clip']:>16.3f} {r['infer_gflops']:>13.1f} {100 * r['infer_peak_fraction']:>10.1f}%")


def commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=__file__.rpartition("/")[0] or ".").stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


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
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd",
                   help="the training step's update (the synthetic recipe trains with adamw, the datasets' with sgd)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10 if cuda else 5)
    p.add_argument("--backends", nargs="+", default=list(BACKEND_NAMES), choices=BACKEND_NAMES)
    p.add_argument("--peak-sizes", nargs="+", type=int, help="square torch.mm sizes for the matmul peak (default: "
                   "benchmarks/matmul_peak.py's: 1024 2048 4096 on a CPU, 2048 4096 8192 on CUDA)")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    results, peaks = run(args)
    print_table(args, results, peaks, device)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": device_name(device),
                       "torch": torch.__version__, "commit": commit(), "threads": torch.get_num_threads(),
                       "bf16": bf16_support(device) if args.precision == "bf16" else None,
                       "config": vars(args), "matmul_peak": peaks, "results": results}, handle, indent=1)


if __name__ == "__main__":
    main()
