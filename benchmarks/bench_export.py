"""Inference clips/s of one JNA model three ways, side by side in one run: eager PyTorch (cpp ops), the
``torch.export`` program (``python -m jna_fast.export --format pt2``) and ONNX Runtime on the ONNX graph
(``--format onnx``, CPUExecutionProvider).

    python benchmarks/bench_export.py                        # ResNet-18, 64 px, B=8, T=5, L=5 (the synthetic recipe)
    python benchmarks/bench_export.py --backbone resnet50 --size 224 --markdown out.md

The three are timed interleaved (each round runs every one once, in a fresh random order), so that on a machine
shared with other work all three see the same contention; the figure is the median over the rounds. Weights are
random (the attention vectors too, so the attention is not the uniform average); float32, contiguous memory format,
torch and ONNX Runtime with the same number of threads (``--threads``; on a machine whose cores are busy with
other work, torch's OpenMP threads wait for each other and one thread can be the faster). The outputs of the
exported models are checked against eager's before timing.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from datetime import datetime, timezone

import torch

from jna_fast import JNA
from jna_fast.export import ONNX_OPSET, export_onnx, export_program


def build(args) -> JNA:
    torch.manual_seed(0)
    model = JNA(args.classes, backbone=args.backbone, flow_length=args.flow_length,
                backend="cpp").eval()
    with torch.no_grad():
        channels = model.temporal_pooling.w_rgb.numel()
        model.temporal_pooling.w_rgb.normal_(0, channels ** -0.5)
        model.temporal_pooling.w_flow.normal_(0, channels ** -0.5)
    return model


def run(args) -> dict:
    import onnxruntime as ort

    model = build(args)
    gen = torch.Generator().manual_seed(0)
    rgb = torch.randn(args.batch_size, args.segments, 3, args.size, args.size, generator=gen)
    flow = torch.rand(args.batch_size, args.segments, 2 * args.flow_length, args.size, args.size, generator=gen) * 2 - 1
    mask = torch.ones(args.batch_size, args.segments, dtype=torch.bool)
    mask[-1, -1] = False  # one padded clip, as a batch of clips of different lengths has

    began = time.perf_counter()
    program = export_program(model, size=args.size).module()
    pt2_export_s = time.perf_counter() - began
    began = time.perf_counter()
    proto = export_onnx(model, size=args.size)
    onnx_export_s = time.perf_counter() - began
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {"rgb": rgb.numpy(), "flow": flow.numpy(), "mask": mask.numpy()}

    @torch.no_grad()
    def eager():
        return model(rgb, flow, mask).logits

    @torch.no_grad()
    def pt2():
        return program(rgb, flow, mask)[0]

    def onnxruntime():
        return torch.from_numpy(session.run(["logits"], feed)[0])

    providers = {"eager (cpp ops)": eager, "torch.export program": pt2, "onnxruntime": onnxruntime}
    reference = eager()
    for name, fn in providers.items():
        error = (fn() - reference).abs().max().item()
        if not error <= 1e-3 * max(1.0, reference.abs().max().item()):
            raise SystemExit(f"{name}: logits differ from eager's by {error:.3g}; not timing a wrong model")
    for _ in range(args.warmup):
        for fn in providers.values():
            fn()
    times = {name: [] for name in providers}
    for _ in range(args.rounds):
        order = list(providers)
        random.shuffle(order)
        for name in order:
            began = time.perf_counter()
            providers[name]()
            times[name].append(time.perf_counter() - began)
    results = []
    for name, samples in times.items():
        median = sorted(samples)[len(samples) // 2]
        results.append({"provider": name, "median_s": median, "clips_per_s": args.batch_size / median})
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "device": platform.processor() or platform.machine(), "cpus": torch.get_num_threads(),
            "torch": torch.__version__, "onnxruntime": ort.__version__, "onnx_opset": ONNX_OPSET,
            "config": vars(args), "export_s": {"pt2": pt2_export_s, "onnx": onnx_export_s}, "results": results}


def table(report: dict) -> str:
    eager = report["results"][0]["clips_per_s"]
    lines = ["| provider | clips/s | ms per batch | vs eager |", "|---|---|---|---|"]
    for r in report["results"]:
        lines.append(f"| {r['provider']} | {r['clips_per_s']:.1f} | {1000 * r['median_s']:.1f} | "
                     f"{r['clips_per_s'] / eager:.2f}x |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--segments", type=int, default=5)
    p.add_argument("--flow-length", type=int, default=5)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--classes", type=int, default=8)
    p.add_argument("--threads", type=int, help="threads of torch and of ONNX Runtime alike (default: torch's)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--markdown", help="also write the table to this file")
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    report = run(args)
    c = report["config"]
    print(f"JNA {c['backbone']}, B={c['batch_size']} T={c['segments']} L={c['flow_length']} {c['size']}px, fp32, "
          f"{report['device']}, {report['cpus']} threads, {c['rounds']} interleaved rounds (median)")
    print(table(report))
    print(f"export took {report['export_s']['pt2']:.1f} s (pt2), {report['export_s']['onnx']:.1f} s (onnx)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(table(report) + "\n")


if __name__ == "__main__":
    main()
