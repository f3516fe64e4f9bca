"""joint_attention_pool (docs/design.md §4) in Triton: kernels, then launchers, then the op registration.

Accumulation rule (the same in every backend, docs/design.md §4.3): the score e[t] is summed in float64 from exact
float64 products, since a saturated softmax turns a score's absolute rounding error into the relative error of
every small weight exp(e - max), and so of dw (float32 scores of |e| ~ 1e3 carry errors of 1e-4); the other channel
sums (g[t], the pooled p, dw) are in the accumulation dtype (float32; float64 for float64 features), their rounding
entering the results linearly; each per-snippet scalar and every quantity over the snippets of a clip (softmax max
and sum, s, de) is float64.
The backward's s is sum_t a g / sum_t a: the stored float32 weights need not sum to exactly 1 (a dominant
weight 1 - 6e-11 rounds to 1), and with the plain sum, sum_t de = s (1 - sum_t a) leaks s * 1e-10 into dw,
which in a saturated clip is larger than the true dw; normalised, sum_t de = 0 as in exact arithmetic.

One program per clip b holds a whole feature row [C] in registers and walks over the T snippets once.
- Forward: online softmax (running max, rescaled sum and accumulators), so f is read once; the raw scores
  stay in a [T]-register vector and are normalised at the end.
- Backward, the two-pass form of docs/design.md §4.2: pass 1 reads f[t] for g[t] = <dp, f[t]> + grad_attention[t] and
  s = sum_t a g / sum_t a; pass 2 re-reads f[t] (just streamed: cache-resident for a clip) for de[t] = a (g - s),
  df[t] = a dp + de w and dw += de f[t]. Any one-pass form must expand dw = sum_t a (g - s) f around a
  running estimate of s (sum a g f - s sum a f, or a co-moment of it), and cancels catastrophically when one
  snippet takes almost all the attention (|e| ~ 1e4), where the true dw is tiny. Padded snippets (a = 0)
  are neither read nor contribute; their df rows are written as zeros.
  Each clip writes its dw terms to a [B, C] partials buffer; utils.sum_partials adds them (no atomics).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._op_rules import (
    accumulation_dtype, check_joint_attention_pool, check_joint_attention_pool_backward, check_mask_rows,
)
from .utils import (
    accumulator, as_output, block_size, define_op, is_traced, kernel_dtype, sum_partials, wrap_triton,
)

# Whole rows live in registers; past this many channels a program would spill beyond use.
MAX_CHANNELS = 16384


@triton.jit
def _joint_attention_pool_forward_kernel(
    f_rgb_ptr, f_flow_ptr, w_rgb_ptr, w_flow_ptr, mask_ptr, p_rgb_ptr, p_flow_ptr, attention_ptr,
    segments, channels, HAS_MASK: tl.constexpr, ACC: tl.constexpr, SCORE_LIMIT: tl.constexpr, BLOCK_T: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    c = tl.arange(0, BLOCK_C)
    c_in = c < channels
    t_ids = tl.arange(0, BLOCK_T)
    w_rgb = tl.load(w_rgb_ptr + c, mask=c_in, other=0.0).to(ACC)
    w_flow = tl.load(w_flow_ptr + c, mask=c_in, other=0.0).to(ACC)
    w_rgb_wide = w_rgb.to(tl.float64)
    w_flow_wide = w_flow.to(tl.float64)
    row = b * segments * channels
    # Per-snippet scalars in float64 (the accumulation rule, see the module docstring).
    scores = tl.zeros([BLOCK_T], dtype=tl.float64)
    # Finite, below any finite float32 score (and float64 one above -1e308): max - max never forms -inf - -inf.
    running_max = tl.full([], -1.0e308, tl.float64)
    denominator = tl.zeros([], dtype=tl.float64)
    # Real snippets with a non-finite score: any makes the whole row NaN (the non-finite rule,
    # jna_fast/_op_rules.py); the online softmax alone would drop a NaN in the max or give -inf weight 0.
    non_finite = tl.zeros([], dtype=tl.int32)
    acc_rgb = tl.zeros([BLOCK_C], dtype=ACC)
    acc_flow = tl.zeros([BLOCK_C], dtype=ACC)
    for t in range(0, segments):
        if HAS_MASK:
            valid = tl.load(mask_ptr + b * segments + t) != 0
        else:
            valid = t < segments
        # A padded snippet reads no channel (c < 0 never holds).
        read = c < tl.where(valid, channels, 0)
        snippet = row + t * channels + c
        f_rgb = tl.load(f_rgb_ptr + snippet, mask=read, other=0.0).to(ACC)
        f_flow = tl.load(f_flow_ptr + snippet, mask=read, other=0.0).to(ACC)
        score = tl.sum(f_rgb.to(tl.float64) * w_rgb_wide + f_flow.to(tl.float64) * w_flow_wide, axis=0)
        # Past the accumulation dtype's range a score is infinite, as its sum in that dtype would be.
        score = tl.where(tl.abs(score) <= SCORE_LIMIT, score, score * float("inf"))
        scores = tl.where(t_ids == t, score, scores)
        non_finite += (valid & ~(tl.abs(score) < float("inf"))).to(tl.int32)
        new_max = tl.where(valid, tl.maximum(running_max, score), running_max)
        rescale = tl.exp(running_max - new_max)
        weight = tl.exp(tl.where(valid, score, float("-inf")) - new_max)
        denominator = denominator * rescale + weight
        acc_rgb = acc_rgb * rescale.to(ACC) + weight.to(ACC) * f_rgb
        acc_flow = acc_flow * rescale.to(ACC) + weight.to(ACC) * f_flow
        running_max = new_max
    t_in = t_ids < segments
    if HAS_MASK:
        t_valid = (tl.load(mask_ptr + b * segments + t_ids, mask=t_in, other=0) != 0) & t_in
    else:
        t_valid = t_in
    # A row with no valid snippet has denominator 0: it pools to p = 0, a = 0.
    inverse = tl.where(denominator > 0, 1.0 / tl.where(denominator > 0, denominator, 1.0), 0.0)
    inverse = tl.where(non_finite == 0, inverse, float("nan"))
    attention = tl.exp(tl.where(t_valid, scores, float("-inf")) - running_max) * inverse
    # Exactly 0 at masked snippets, in a NaN row too (there running_max may be NaN or inf).
    attention = tl.where(t_valid, attention, 0.0)
    tl.store(attention_ptr + b * segments + t_ids, attention.to(attention_ptr.dtype.element_ty), mask=t_in)
    tl.store(p_rgb_ptr + b * channels + c, (acc_rgb * inverse.to(ACC)).to(p_rgb_ptr.dtype.element_ty), mask=c_in)
    tl.store(p_flow_ptr + b * channels + c, (acc_flow * inverse.to(ACC)).to(p_flow_ptr.dtype.element_ty), mask=c_in)


@triton.jit
def _joint_attention_pool_backward_kernel(
    grad_p_rgb_ptr, grad_p_flow_ptr, grad_attention_ptr, f_rgb_ptr, f_flow_ptr, w_rgb_ptr, w_flow_ptr,
    attention_ptr, df_rgb_ptr, df_flow_ptr, dw_rgb_partial_ptr, dw_flow_partial_ptr, segments, channels,
    ACC: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    c = tl.arange(0, BLOCK_C)
    c_in = c < channels
    t_ids = tl.arange(0, BLOCK_T)
    dp_rgb = tl.load(grad_p_rgb_ptr + b * channels + c, mask=c_in, other=0.0).to(ACC)
    dp_flow = tl.load(grad_p_flow_ptr + b * channels + c, mask=c_in, other=0.0).to(ACC)
    row = b * segments * channels
    # Pass 1: g[t] = <dp, f[t]> + grad_attention[t] and s = sum_t a g / sum_t a.
    g_all = tl.zeros([BLOCK_T], dtype=tl.float64)
    weighted_g = tl.zeros([], dtype=tl.float64)
    weight_total = tl.zeros([], dtype=tl.float64)
    for t in range(0, segments):
        a = tl.load(attention_ptr + b * segments + t).to(ACC)
        live = a != 0.0
        read = c < tl.where(live, channels, 0)
        snippet = row + t * channels + c
        f_rgb = tl.load(f_rgb_ptr + snippet, mask=read, other=0.0).to(ACC)
        f_flow = tl.load(f_flow_ptr + snippet, mask=read, other=0.0).to(ACC)
        g = tl.sum(dp_rgb * f_rgb + dp_flow * f_flow, axis=0).to(tl.float64)
        g += tl.load(grad_attention_ptr + b * segments + t).to(tl.float64)
        g = tl.where(live, g, 0.0)
        g_all = tl.where(t_ids == t, g, g_all)
        weighted_g += a.to(tl.float64) * g
        weight_total += a.to(tl.float64)
    s = tl.where(weight_total > 0, weighted_g / tl.where(weight_total > 0, weight_total, 1.0), 0.0)
    # Pass 2: de[t] = a (g - s), df[t] = a dp + de w, dw += de f[t] (f re-read: the clip was just streamed).
    w_rgb = tl.load(w_rgb_ptr + c, mask=c_in, other=0.0).to(ACC)
    w_flow = tl.load(w_flow_ptr + c, mask=c_in, other=0.0).to(ACC)
    dw_rgb = tl.zeros([BLOCK_C], dtype=ACC)
    dw_flow = tl.zeros([BLOCK_C], dtype=ACC)
    for t in range(0, segments):
        a = tl.load(attention_ptr + b * segments + t).to(ACC)
        read = c < tl.where(a != 0.0, channels, 0)
        de = (a.to(tl.float64) * (tl.sum(tl.where(t_ids == t, g_all, 0.0), axis=0) - s)).to(ACC)
        snippet = row + t * channels + c
        f_rgb = tl.load(f_rgb_ptr + snippet, mask=read, other=0.0).to(ACC)
        f_flow = tl.load(f_flow_ptr + snippet, mask=read, other=0.0).to(ACC)
        dw_rgb += de * f_rgb
        dw_flow += de * f_flow
        # A snippet that is not read (a = 0: masked or underflowed) gets df = 0, not a dp + de w: that would be
        # 0 x NaN where w holds a NaN, and a masked snippet's gradient is 0 whatever w is.
        df_rgb = tl.where(read, a * dp_rgb + de * w_rgb, 0.0)
        df_flow = tl.where(read, a * dp_flow + de * w_flow, 0.0)
        tl.store(df_rgb_ptr + snippet, df_rgb.to(df_rgb_ptr.dtype.element_ty), mask=c_in)
        tl.store(df_flow_ptr + snippet, df_flow.to(df_flow_ptr.dtype.element_ty), mask=c_in)
    tl.store(dw_rgb_partial_ptr + b * channels + c, dw_rgb, mask=c_in)
    tl.store(dw_flow_partial_ptr + b * channels + c, dw_flow, mask=c_in)


def score_limit(dtype: torch.dtype) -> float:
    """The largest finite score in the accumulation dtype of features of ``dtype`` (the kernel's SCORE_LIMIT)."""
    return torch.finfo(accumulation_dtype(dtype)).max


def _channel_block(channels: int) -> int:
    if channels > MAX_CHANNELS:
        raise ValueError(f"f_rgb: the Triton joint_attention_pool holds a row of C <= {MAX_CHANNELS} channels "
                         f"in registers, got C = {channels}; use another backend")
    return block_size(channels, MAX_CHANNELS)


def _num_warps(block_c: int) -> int:
    return 8 if block_c >= 2048 else 4


def launch_forward(f_rgb, f_flow, w_rgb, w_flow, mask):
    """The forward kernel alone, without the all-False mask check (rows without a snippet pool to zeros)."""
    batch, segments, channels = f_rgb.shape
    f_rgb = f_rgb.contiguous()
    f_flow = f_flow.contiguous()
    p_rgb = f_rgb.new_empty((batch, channels), dtype=kernel_dtype(f_rgb.dtype))
    p_flow = f_rgb.new_empty((batch, channels), dtype=kernel_dtype(f_rgb.dtype))
    attention = f_rgb.new_empty((batch, segments), dtype=accumulation_dtype(f_rgb.dtype))
    if batch > 0:
        block_c = _channel_block(channels)
        has_mask = mask is not None
        wrap_triton(_joint_attention_pool_forward_kernel)[(batch,)](
            f_rgb, f_flow, w_rgb.contiguous(), w_flow.contiguous(), mask.contiguous() if has_mask else attention,
            p_rgb, p_flow, attention, segments, channels,
            HAS_MASK=has_mask, ACC=accumulator(f_rgb.dtype),
            SCORE_LIMIT=score_limit(f_rgb.dtype), BLOCK_T=block_size(segments, 1 << 30),
            BLOCK_C=block_c, num_warps=_num_warps(block_c),
        )
    return as_output(p_rgb, f_rgb.dtype), as_output(p_flow, f_rgb.dtype), attention


def joint_attention_pool_forward(
    f_rgb: torch.Tensor, f_flow: torch.Tensor, w_rgb: torch.Tensor, w_flow: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # The input checks live inside the op, so that a direct torch.ops.jna_fast_triton call raises what every
    # backend raises. The all-False row check reads values: torch.compile must trace no data-dependent branch,
    # so it is skipped on fake tensors, whose values do not exist.
    check_joint_attention_pool(f_rgb, f_flow, w_rgb, w_flow, mask)
    if not is_traced(mask):
        check_mask_rows(mask)
    return launch_forward(f_rgb, f_flow, w_rgb, w_flow, mask)


def joint_attention_pool_backward(
    grad_p_rgb: torch.Tensor, grad_p_flow: torch.Tensor, grad_attention: torch.Tensor, f_rgb: torch.Tensor,
    f_flow: torch.Tensor, w_rgb: torch.Tensor, w_flow: torch.Tensor, attention: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    check_joint_attention_pool_backward(grad_p_rgb, grad_p_flow, grad_attention, f_rgb, f_flow, w_rgb, w_flow,
                                        attention)
    batch, segments, channels = f_rgb.shape
    f_rgb = f_rgb.contiguous()
    f_flow = f_flow.contiguous()
    df_rgb = f_rgb.new_empty(f_rgb.shape, dtype=kernel_dtype(f_rgb.dtype))
    df_flow = f_rgb.new_empty(f_rgb.shape, dtype=kernel_dtype(f_rgb.dtype))
    dw_rgb = w_rgb.new_empty(w_rgb.shape, dtype=kernel_dtype(w_rgb.dtype))
    dw_flow = w_flow.new_empty(w_flow.shape, dtype=kernel_dtype(w_flow.dtype))
    acc_dtype = accumulation_dtype(f_rgb.dtype)
    dw_rgb_partials = torch.empty((batch, channels), dtype=acc_dtype, device=f_rgb.device)
    dw_flow_partials = torch.empty((batch, channels), dtype=acc_dtype, device=f_rgb.device)
    if batch > 0:
        block_c = _channel_block(channels)
        wrap_triton(_joint_attention_pool_backward_kernel)[(batch,)](
            grad_p_rgb.contiguous(), grad_p_flow.contiguous(), grad_attention.contiguous(), f_rgb, f_flow,
            w_rgb.contiguous(), w_flow.contiguous(), attention.contiguous(), df_rgb, df_flow,
            dw_rgb_partials, dw_flow_partials, segments, channels,
            ACC=accumulator(f_rgb.dtype), BLOCK_T=block_size(segments, 1 << 30), BLOCK_C=block_c,
            num_warps=_num_warps(block_c),
        )
    sum_partials(dw_rgb_partials, dw_rgb)
    sum_partials(dw_flow_partials, dw_flow)
    return (as_output(df_rgb, f_rgb.dtype), as_output(df_flow, f_rgb.dtype), as_output(dw_rgb, w_rgb.dtype),
            as_output(dw_flow, w_flow.dtype))


joint_attention_pool_op = define_op("joint_attention_pool", joint_attention_pool_forward)
joint_attention_pool_backward_op = define_op("joint_attention_pool_backward", joint_attention_pool_backward)
