"""Compile every Triton kernel of jna_fast for a GPU target, on a machine without a GPU.

The tests on CPU-only machines run the kernels in the interpreter, which accepts some programs the compiler
rejects; this lowers each kernel (every constexpr variant the launchers use, float32/bfloat16/float64) to a
cubin with Triton's bundled toolchain. Run it without TRITON_INTERPRET:

    python -m jna_fast.triton.compile_check [--arch 90]
"""

from __future__ import annotations

import argparse
import sys

import torch
import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from . import cross_stitch, utils
from . import joint_attention_pool as pool

# (feature pointer type, accumulator pointer type, accumulator dtype, feature dtype)
PRECISIONS = (("*fp32", "*fp32", tl.float32, torch.float32), ("*bf16", "*fp32", tl.float32, torch.bfloat16),
              ("*fp64", "*fp64", tl.float64, torch.float64))


def _variants():
    """(label, kernel, argument types in order, constexprs) for every kernel variant."""
    for feature, acc_ptr, acc, dtype in PRECISIONS:
        for channel_is_column in (True, False):
            layout = "channels_last" if channel_is_column else "nchw"
            yield (f"cross_stitch forward {layout} {feature}", cross_stitch._cross_stitch_forward_kernel,
                   [feature, feature, "*fp32", feature, feature, "i32", "i32", "i32"],
                   {"CHANNEL_IS_COLUMN": channel_is_column, "ACC": acc, "BLOCK_R": 32, "BLOCK_K": 128})
            yield (f"cross_stitch backward {layout} {feature}", cross_stitch._cross_stitch_backward_kernel,
                   [feature] * 4 + ["*fp32", feature, feature, acc_ptr, "i32", "i32", "i32", "i32"],
                   {"CHANNEL_IS_COLUMN": channel_is_column, "ACC": acc, "BLOCK_R": 32, "BLOCK_K": 64})
        for has_mask in (True, False):
            yield (f"joint_attention_pool forward mask={has_mask} {feature}",
                   pool._joint_attention_pool_forward_kernel,
                   [feature, feature, "*fp32", "*fp32", "*i1", feature, feature, acc_ptr, "i32", "i32"],
                   {"HAS_MASK": has_mask, "ACC": acc, "SCORE_LIMIT": pool.score_limit(dtype), "BLOCK_T": 32,
                    "BLOCK_C": 2048})
        yield (f"joint_attention_pool backward {feature}", pool._joint_attention_pool_backward_kernel,
               [feature, feature, acc_ptr, feature, feature, "*fp32", "*fp32", acc_ptr, feature, feature,
                acc_ptr, acc_ptr, "i32", "i32"],
               {"ACC": acc, "BLOCK_T": 32, "BLOCK_C": 2048})
        yield (f"sum_partials {feature}", utils._sum_rows_kernel, [acc_ptr, feature, "i32", "i32"],
               {"BLOCK_P": 16, "BLOCK_K": 256})


def compile_all(arch: int) -> list[str]:
    target = GPUTarget("cuda", arch, 32)
    compiled = []
    for label, kernel, arg_types, constexprs in _variants():
        names = kernel.arg_names
        signature = dict(zip(names, arg_types + ["constexpr"] * (len(names) - len(arg_types))))
        triton.compile(ASTSource(fn=kernel, signature=signature, constexprs=constexprs), target=target,
                       options={"num_warps": 8})
        compiled.append(label)
    return compiled


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="CUDA compute capability, e.g. 80 or 90")
    args = parser.parse_args(argv)
    if utils.INTERPRETED:
        print("TRITON_INTERPRET=1 is set: unset it to compile the kernels", file=sys.stderr)
        return 2
    for label in compile_all(args.arch):
        print(f"compiled for sm_{args.arch}: {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
