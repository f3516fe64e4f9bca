"""Pieces shared by the Triton ops: accumulator dtype, block sizes, the second stage of the parameter-gradient
reductions, and op registration (triton_op for compiled kernels, custom_op under the interpreter).

Kernels are launched as ``wrap_triton(kernel)[grid](...)``: torch.compile sees them inside a triton_op that way,
and torch finds them by that spelling in the op's source. (Under TRITON_INTERPRET=1 this module's wrap_triton
returns the interpreted kernel unchanged, on every torch of the supported range.)"""

from __future__ import annotations

from typing import Callable

import torch
import triton
import triton.language as tl
from torch._subclasses.fake_tensor import is_fake
from torch.library import wrap_triton as torch_wrap_triton
from triton.runtime.interpreter import InterpretedFunction

from .._op_rules import accumulation_dtype

NAMESPACE = "jna_fast_triton"


def accumulator(dtype: torch.dtype):
    """The Triton dtype to compute in for features of ``dtype`` (the rule of _op_rules.accumulation_dtype)."""
    return tl.float64 if accumulation_dtype(dtype) == torch.float64 else tl.float32


def block_size(extent: int, cap: int) -> int:
    """The power-of-two block covering ``extent`` (at least 1), at most ``cap``."""
    return min(triton.next_power_of_2(max(extent, 1)), cap)


def is_traced(t: torch.Tensor | None) -> bool:
    """True while torch.compile / AOT tracing runs an op body on fake tensors: data-dependent host checks
    (which would read values) must be skipped there."""
    return t is not None and is_fake(t)


def wrap_triton(kernel):
    """``torch.library.wrap_triton(kernel)``; an interpreted kernel (TRITON_INTERPRET=1) unchanged, which torch 2.13
    and later do themselves and torch 2.11 refuses ("wrap_triton only works on functions annotated with
    triton.jit")."""
    return kernel if isinstance(kernel, InterpretedFunction) else torch_wrap_triton(kernel)


@triton.jit
def _sum_rows_kernel(partial_ptr, out_ptr, rows, cols, BLOCK_P: tl.constexpr, BLOCK_K: tl.constexpr):
    # Column block k of out = sum over the rows of partial [rows, cols], in the partials' (accumulator) dtype,
    # stored in out's dtype. Each program owns its columns, so nothing is contended.
    k = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
    k_in = k < cols
    total = tl.zeros([BLOCK_P, BLOCK_K], dtype=partial_ptr.dtype.element_ty)
    for start in range(0, rows, BLOCK_P):
        p = start + tl.arange(0, BLOCK_P)
        inside = (p < rows)[:, None] & k_in[None, :]
        total += tl.load(partial_ptr + p[:, None].to(tl.int64) * cols + k[None, :], mask=inside, other=0.0)
    tl.store(out_ptr + k, tl.sum(total, axis=0).to(out_ptr.dtype.element_ty), mask=k_in)


def sum_partials(partials: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Second stage of a two-stage reduction: ``out.view(-1) = partials.sum(0)`` cast to out's dtype.
    ``partials`` is a contiguous [P, out.numel()] tensor of per-program sums."""
    rows, cols = partials.shape
    if cols == 0:
        return out
    if rows == 0:
        return out.zero_()
    block_k = block_size(cols, 256)
    block_p = block_size(rows, max(1, 4096 // block_k))
    wrap_triton(_sum_rows_kernel)[(triton.cdiv(cols, block_k),)](
        partials, out, rows, cols, BLOCK_P=block_p, BLOCK_K=block_k
    )
    return out


INTERPRETED = isinstance(_sum_rows_kernel, InterpretedFunction)


def kernel_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a kernel writes for an output of ``dtype``. Triton 3.9's interpreter casts float32 to bfloat16
    by truncation (its cast_impl passes no rounding mode), where GPUs round to nearest even; so under the
    interpreter bfloat16 outputs are written in float32 and rounded by torch (``as_output``)."""
    return torch.float32 if INTERPRETED and dtype == torch.bfloat16 else dtype


def as_output(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t if t.dtype == dtype else t.to(dtype)


def define_op(name: str, fn: Callable) -> Callable:
    """Register ``fn`` as ``jna_fast_triton::name`` (schema inferred from its annotations, no mutation).

    With compiled kernels this is a triton_op, which torch.compile traces into. Under TRITON_INTERPRET=1 the
    kernels run on host copies of the data and cannot be traced with fake tensors, so the op is an opaque
    custom_op instead. Fake kernels and autograd come from jna_fast._op_rules either way."""
    qualified = f"{NAMESPACE}::{name}"
    if INTERPRETED:
        return torch.library.custom_op(qualified, fn, mutates_args=())
    return torch.library.triton_op(qualified, fn, mutates_args=())
