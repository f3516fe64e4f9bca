"""cross_stitch (docs/design.md §3) in Triton: kernels, then launchers, then the op registration.

A feature map is handled as a row-major matrix whose columns are contiguous:
- NCHW: [N*C, H*W], the channel of row r is r % C (the channel is constant along a row);
- channels_last: [N*H*W, C], the channel is the column.
``CHANNEL_IS_COLUMN`` picks which. Every program keeps its tile's alpha in registers.
The backward reduces ``dalpha`` in two stages: each program writes the sums of its own tile rows/columns into a
partials buffer (no atomics), and utils.sum_partials adds them up per channel.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._op_rules import (
    accumulation_dtype, check_cross_stitch, check_cross_stitch_backward, feature_map_format, feature_map_is_nhwc,
)
from .utils import accumulator, as_output, block_size, define_op, kernel_dtype, sum_partials, wrap_triton

# Elements per program tile: large enough to stream (and to keep the interpreter's per-program cost low),
# small enough for registers with four input tiles live in the backward.
FORWARD_TILE = 4096
BACKWARD_TILE = 2048
# The channels_last backward splits the rows into chunks so that about this many programs run at once.
TARGET_PROGRAMS = 1024


@triton.jit
def _load_alpha(alpha_ptr, channel, inside, ACC: tl.constexpr):
    # alpha is [C, 2, 2] contiguous: the four mixing weights of ``channel`` (any broadcastable shape).
    base = alpha_ptr + channel * 4
    return (tl.load(base, mask=inside, other=0.0).to(ACC), tl.load(base + 1, mask=inside, other=0.0).to(ACC),
            tl.load(base + 2, mask=inside, other=0.0).to(ACC), tl.load(base + 3, mask=inside, other=0.0).to(ACC))


@triton.jit
def _alpha_of_tile(alpha_ptr, r, r_in, k, k_in, channels, CHANNEL_IS_COLUMN: tl.constexpr, ACC: tl.constexpr):
    if CHANNEL_IS_COLUMN:
        return _load_alpha(alpha_ptr, k[None, :], k_in[None, :], ACC)
    else:
        return _load_alpha(alpha_ptr, (r % channels)[:, None], r_in[:, None], ACC)


@triton.jit
def _cross_stitch_forward_kernel(
    x_rgb_ptr, x_flow_ptr, alpha_ptr, y_rgb_ptr, y_flow_ptr, rows, cols, channels,
    CHANNEL_IS_COLUMN: tl.constexpr, ACC: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr,
):
    r = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    r_in = r < rows
    k_in = k < cols
    inside = r_in[:, None] & k_in[None, :]
    a00, a01, a10, a11 = _alpha_of_tile(alpha_ptr, r, r_in, k, k_in, channels, CHANNEL_IS_COLUMN, ACC)
    offsets = r[:, None] * cols + k[None, :]
    x_rgb = tl.load(x_rgb_ptr + offsets, mask=inside, other=0.0).to(ACC)
    x_flow = tl.load(x_flow_ptr + offsets, mask=inside, other=0.0).to(ACC)
    tl.store(y_rgb_ptr + offsets, (a00 * x_rgb + a01 * x_flow).to(y_rgb_ptr.dtype.element_ty), mask=inside)
    tl.store(y_flow_ptr + offsets, (a10 * x_rgb + a11 * x_flow).to(y_flow_ptr.dtype.element_ty), mask=inside)


@triton.jit
def _cross_stitch_backward_tile(
    grad_rgb_ptr, grad_flow_ptr, x_rgb_ptr, x_flow_ptr, dx_rgb_ptr, dx_flow_ptr, offsets, inside,
    a00, a01, a10, a11, ACC: tl.constexpr,
):
    # Writes dx for one tile and returns its dalpha terms dy_i * x_j (zero outside the tensor).
    dy_rgb = tl.load(grad_rgb_ptr + offsets, mask=inside, other=0.0).to(ACC)
    dy_flow = tl.load(grad_flow_ptr + offsets, mask=inside, other=0.0).to(ACC)
    x_rgb = tl.load(x_rgb_ptr + offsets, mask=inside, other=0.0).to(ACC)
    x_flow = tl.load(x_flow_ptr + offsets, mask=inside, other=0.0).to(ACC)
    tl.store(dx_rgb_ptr + offsets, (a00 * dy_rgb + a10 * dy_flow).to(dx_rgb_ptr.dtype.element_ty), mask=inside)
    tl.store(dx_flow_ptr + offsets, (a01 * dy_rgb + a11 * dy_flow).to(dx_flow_ptr.dtype.element_ty), mask=inside)
    return dy_rgb * x_rgb, dy_rgb * x_flow, dy_flow * x_rgb, dy_flow * x_flow


@triton.jit
def _cross_stitch_backward_kernel(
    grad_rgb_ptr, grad_flow_ptr, x_rgb_ptr, x_flow_ptr, alpha_ptr, dx_rgb_ptr, dx_flow_ptr, partial_ptr,
    rows, cols, channels, rows_per_chunk,
    CHANNEL_IS_COLUMN: tl.constexpr, ACC: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # The per-element dalpha terms are summed in [BLOCK_R, BLOCK_K] accumulators across the loop and reduced
    # once at the end, along the axis that does not carry the channel.
    sum00 = tl.zeros([BLOCK_R, BLOCK_K], dtype=ACC)
    sum01 = tl.zeros([BLOCK_R, BLOCK_K], dtype=ACC)
    sum10 = tl.zeros([BLOCK_R, BLOCK_K], dtype=ACC)
    sum11 = tl.zeros([BLOCK_R, BLOCK_K], dtype=ACC)
    if CHANNEL_IS_COLUMN:
        # Program (channel block, chunk of rows): walks down its rows; partials[chunk, channel, 4].
        k = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
        k_in = k < cols
        a00, a01, a10, a11 = _load_alpha(alpha_ptr, k[None, :], k_in[None, :], ACC)
        chunk = tl.program_id(1)
        row_start = chunk.to(tl.int64) * rows_per_chunk
        row_end = tl.minimum(row_start + rows_per_chunk, rows)
        for start in range(row_start, row_end, BLOCK_R):
            r = start + tl.arange(0, BLOCK_R)
            inside = (r < row_end)[:, None] & k_in[None, :]
            t00, t01, t10, t11 = _cross_stitch_backward_tile(
                grad_rgb_ptr, grad_flow_ptr, x_rgb_ptr, x_flow_ptr, dx_rgb_ptr, dx_flow_ptr,
                r[:, None] * cols + k[None, :], inside, a00, a01, a10, a11, ACC)
            sum00 += t00
            sum01 += t01
            sum10 += t10
            sum11 += t11
        out = partial_ptr + chunk.to(tl.int64) * cols * 4 + k * 4
        tl.store(out, tl.sum(sum00, axis=0), mask=k_in)
        tl.store(out + 1, tl.sum(sum01, axis=0), mask=k_in)
        tl.store(out + 2, tl.sum(sum10, axis=0), mask=k_in)
        tl.store(out + 3, tl.sum(sum11, axis=0), mask=k_in)
    else:
        # Program (block of (n, c) rows): walks along H*W; partials[n, c, 4] = partials[row, 4].
        r = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
        r_in = r < rows
        a00, a01, a10, a11 = _load_alpha(alpha_ptr, (r % channels)[:, None], r_in[:, None], ACC)
        for start in range(0, cols, BLOCK_K):
            k = start + tl.arange(0, BLOCK_K)
            inside = r_in[:, None] & (k < cols)[None, :]
            t00, t01, t10, t11 = _cross_stitch_backward_tile(
                grad_rgb_ptr, grad_flow_ptr, x_rgb_ptr, x_flow_ptr, dx_rgb_ptr, dx_flow_ptr,
                r[:, None] * cols + k[None, :], inside, a00, a01, a10, a11, ACC)
            sum00 += t00
            sum01 += t01
            sum10 += t10
            sum11 += t11
        out = partial_ptr + r * 4
        tl.store(out, tl.sum(sum00, axis=1), mask=r_in)
        tl.store(out + 1, tl.sum(sum01, axis=1), mask=r_in)
        tl.store(out + 2, tl.sum(sum10, axis=1), mask=r_in)
        tl.store(out + 3, tl.sum(sum11, axis=1), mask=r_in)


def _as_matrix(x: torch.Tensor) -> tuple[bool, int, int]:
    """(channel is the column, rows, cols) of x seen as the row-major matrix its working format stores."""
    n, channels, height, width = x.shape
    if feature_map_is_nhwc(x):
        return True, n * height * width, channels
    return False, n * channels, height * width


def _tile(rows: int, cols: int, tile: int, col_cap: int) -> tuple[int, int]:
    block_k = block_size(cols, col_cap)
    return block_size(rows, max(1, tile // block_k)), block_k


def _num_warps(block_r: int, block_k: int) -> int:
    return 8 if block_r * block_k >= 4096 else 4


def cross_stitch_forward(
    x_rgb: torch.Tensor, x_flow: torch.Tensor, alpha: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    check_cross_stitch(x_rgb, x_flow, alpha)
    fmt = feature_map_format(x_rgb)
    channel_is_column, rows, cols = _as_matrix(x_rgb)
    x_rgb = x_rgb.contiguous(memory_format=fmt)
    x_flow = x_flow.contiguous(memory_format=fmt)
    out_dtype = kernel_dtype(x_rgb.dtype)
    y_rgb = torch.empty_like(x_rgb, memory_format=fmt, dtype=out_dtype)
    y_flow = torch.empty_like(x_rgb, memory_format=fmt, dtype=out_dtype)
    if x_rgb.numel() > 0:
        _launch_forward(x_rgb, x_flow, alpha, y_rgb, y_flow, channel_is_column, rows, cols)
    return as_output(y_rgb, x_rgb.dtype), as_output(y_flow, x_rgb.dtype)


def _launch_forward(x_rgb, x_flow, alpha, y_rgb, y_flow, channel_is_column, rows, cols):
    block_r, block_k = _tile(rows, cols, FORWARD_TILE, 128 if channel_is_column else 1024)
    grid = (triton.cdiv(rows, block_r), triton.cdiv(cols, block_k))
    wrap_triton(_cross_stitch_forward_kernel)[grid](
        x_rgb, x_flow, alpha.contiguous(), y_rgb, y_flow, rows, cols, x_rgb.shape[1],
        CHANNEL_IS_COLUMN=channel_is_column, ACC=accumulator(x_rgb.dtype), BLOCK_R=block_r, BLOCK_K=block_k,
        num_warps=_num_warps(block_r, block_k),
    )


def cross_stitch_backward(
    grad_rgb: torch.Tensor, grad_flow: torch.Tensor, x_rgb: torch.Tensor, x_flow: torch.Tensor, alpha: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    check_cross_stitch_backward(grad_rgb, grad_flow, x_rgb, x_flow, alpha)
    fmt = feature_map_format(x_rgb)
    channel_is_column, rows, cols = _as_matrix(x_rgb)
    grad_rgb, grad_flow, x_rgb, x_flow = (
        t.contiguous(memory_format=fmt) for t in (grad_rgb, grad_flow, x_rgb, x_flow)
    )
    dx_rgb = torch.empty_like(x_rgb, memory_format=fmt, dtype=kernel_dtype(x_rgb.dtype))
    dx_flow = torch.empty_like(x_rgb, memory_format=fmt, dtype=kernel_dtype(x_rgb.dtype))
    dalpha = torch.empty(alpha.shape, dtype=kernel_dtype(alpha.dtype), device=alpha.device)
    if x_rgb.numel() > 0:
        _launch_backward(grad_rgb, grad_flow, x_rgb, x_flow, alpha, dx_rgb, dx_flow, dalpha,
                         channel_is_column, rows, cols)
    else:
        dalpha.zero_()
    return as_output(dx_rgb, x_rgb.dtype), as_output(dx_flow, x_rgb.dtype), as_output(dalpha, alpha.dtype)


def _launch_backward(grad_rgb, grad_flow, x_rgb, x_flow, alpha, dx_rgb, dx_flow, dalpha, channel_is_column, rows, cols):
    channels = x_rgb.shape[1]
    block_r, block_k = _tile(rows, cols, BACKWARD_TILE, 64 if channel_is_column else 256)
    if channel_is_column:
        column_blocks = triton.cdiv(cols, block_k)
        chunks = max(1, min(triton.cdiv(rows, block_r), TARGET_PROGRAMS // column_blocks))
        rows_per_chunk = triton.cdiv(triton.cdiv(rows, chunks), block_r) * block_r
        chunks = triton.cdiv(rows, rows_per_chunk)
        grid = (column_blocks, chunks)
    else:
        rows_per_chunk = 0  # unused: each program owns whole rows
        chunks = x_rgb.shape[0]
        grid = (triton.cdiv(rows, block_r),)
    acc_dtype = accumulation_dtype(x_rgb.dtype)
    partials = torch.empty((chunks, channels * 4), dtype=acc_dtype, device=x_rgb.device)
    wrap_triton(_cross_stitch_backward_kernel)[grid](
        grad_rgb, grad_flow, x_rgb, x_flow, alpha.contiguous(), dx_rgb, dx_flow, partials,
        rows, cols, channels, rows_per_chunk,
        CHANNEL_IS_COLUMN=channel_is_column, ACC=accumulator(x_rgb.dtype), BLOCK_R=block_r, BLOCK_K=block_k,
        num_warps=_num_warps(block_r, block_k),
    )
    sum_partials(partials, dalpha)


cross_stitch_op = define_op("cross_stitch", cross_stitch_forward)
cross_stitch_backward_op = define_op("cross_stitch_backward", cross_stitch_backward)
