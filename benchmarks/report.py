"""Table of the op benchmarks from pytest-benchmark's JSON (benchmarks/bench_ops.py):

    pytest benchmarks/bench_ops.py --benchmark-only --benchmark-json=ops.json
    python benchmarks/report.py ops.json [--markdown]

One row per op, shape (``cl``: channels_last), dtype, mode and provider: median time, GB/s on docs/design.md §8's
floor bytes, its share of the measured copy bandwidth (``--copy-gbps``), and the ratio
of eager PyTorch's median time to this provider's ("x eager"): eager PyTorch is the fastest plain-PyTorch
form measured in the same run for that op, shape, dtype and mode (the reference or an ``eager_*`` form of
bench_ops.py), named in the "eager form" column. A table's ratios come from one run, side by side.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# The plain-PyTorch forms first, in this order; then the backends (whichever registered ones the run had), by name.
PLAIN_ORDER = ("reference", "eager_addcmul", "eager_einsum_bmm", "eager_matmul", "reference_compiled")
MODE_ORDER = ("fwd", "bwd", "fwd+bwd")
COLUMNS = ("op", "shape", "dtype", "mode", "provider", "median ms", "GB/s", "% copy", "x eager", "eager form")


def provider_order(provider: str) -> tuple[int, str]:
    return (PLAIN_ORDER.index(provider), "") if provider in PLAIN_ORDER else (len(PLAIN_ORDER), provider)


def shape_label(info: dict) -> str:
    """The shape, with ``cl`` for channels_last maps (older reports have no layout: contiguous)."""
    layout = info.get("layout", "contiguous")
    return "x".join(map(str, info["shape"])) + (" cl" if layout == "channels_last" else "")


def rows_from(report: dict, copy_gbps: float | None = None) -> list[dict]:
    """The report's rows; ``copy_gbps``: the measured copy bandwidth, for the share of it each row reaches."""
    entries = [b for b in report["benchmarks"] if "provider" in b.get("extra_info", {})]

    def key(info):
        return info["op"], shape_label(info), info["dtype"], info["mode"]

    eager: dict[tuple, tuple[float, str]] = {}  # fastest plain-PyTorch (median, provider) per row group
    for b in entries:
        provider = b["extra_info"]["provider"]
        if provider == "reference" or provider.startswith("eager_"):
            group = key(b["extra_info"])
            eager[group] = min(eager.get(group, (float("inf"), "")), (b["stats"]["median"], provider))
    rows = []
    for b in entries:
        info, median = b["extra_info"], b["stats"]["median"]
        baseline, form = eager.get(key(info), (None, "n/a"))
        gbps = info["floor_bytes"] / median / 1e9
        rows.append({
            "op": info["op"],
            "shape": shape_label(info),
            "dtype": info["dtype"],
            "mode": info["mode"],
            "provider": info["provider"],
            "median ms": f"{median * 1e3:.2f}",
            "GB/s": f"{gbps:.1f}",
            "% copy": f"{100 * gbps / copy_gbps:.0f}" if copy_gbps else "n/a",
            "x eager": f"{baseline / median:.2f}" if baseline else "n/a",
            "eager form": form,
            "_order": (info["op"], tuple(info["shape"]), shape_label(info), info["dtype"],
                       MODE_ORDER.index(info["mode"]),
                       provider_order(info["provider"])),
        })
    return sorted(rows, key=lambda r: r["_order"])


def format_table(rows: list[dict], markdown: bool) -> str:
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) if rows else len(c) for c in COLUMNS}
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
        lines += ["| " + " | ".join(r[c] for c in COLUMNS) + " |" for r in rows]
    else:
        lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS)]
        lines += ["  ".join(r[c].ljust(widths[c]) for c in COLUMNS) for r in rows]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json", type=Path, help="pytest-benchmark JSON written with --benchmark-json")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--copy-gbps", type=float, help="the measured copy bandwidth (benchmarks/copy_bandwidth.py), "
                        "for the %% of it each row reaches")
    args = parser.parse_args(argv)
    report = json.loads(args.json.read_text())
    machine = report.get("machine_info", {})
    method = report.get("method", "pytest-benchmark, one provider after another")
    print(f"# {machine.get('cpu', {}).get('brand_raw', machine.get('processor', ''))}, {report.get('datetime', '')}, "
          f"{method}")
    print(format_table(rows_from(report, args.copy_gbps), args.markdown))


if __name__ == "__main__":
    main()
