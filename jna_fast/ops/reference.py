"""Pure-PyTorch reference of the two JNA ops (docs/design.md §3, §4).

These are the semantics every fused backend is tested against, and the "plain PyTorch in the same precision"
side of the accuracy rule (tests/op_testing.py); autograd differentiates them. They are not the speed
baseline: benchmarks/bench_ops.py also times the plain-PyTorch forms a user would write (einsum or ``f @ w``
scores, addcmul mixing) and reports the fastest as "eager".

Accumulation: the fused backends sum channels in float32 (float64 for float64 features) and keep every
per-snippet scalar (scores, softmax max and sum, the backward's s and de) in float64 (see
jna_fast/triton/joint_attention_pool.py); this reference is plain PyTorch, float32 throughout.
"""

from __future__ import annotations

import torch

from .._op_rules import accumulation_dtype

__all__ = ["cross_stitch_ref", "joint_attention_pool_ref"]


def cross_stitch_ref(x_rgb: torch.Tensor, x_flow: torch.Tensor,
                     alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """y_rgb = a00*x_rgb + a01*x_flow, y_flow = a10*x_rgb + a11*x_flow, per channel; alpha is [C, 2, 2].

    The products are formed in the features' dtype (as plain PyTorch would), so this is also the
    "plain PyTorch in the same precision" baseline of the accuracy tests. Nothing is checked (the op checks).

    Args:
        x_rgb: RGB branch features, ``[N, C, H, W]``.
        x_flow: flow branch features, the same shape and dtype.
        alpha: the mixing weights, ``[C, 2, 2]`` (cast to the features' dtype).

    Returns:
        ``(y_rgb, y_flow)``, each ``[N, C, H, W]`` in the features' dtype; differentiable by autograd.
    """
    a = alpha.to(x_rgb.dtype).view(alpha.shape[0], 4, 1, 1).unbind(1)
    y_rgb = a[0] * x_rgb + a[1] * x_flow
    y_flow = a[2] * x_rgb + a[3] * x_flow
    return y_rgb, y_flow


def joint_attention_pool_ref(
    f_rgb: torch.Tensor,
    f_flow: torch.Tensor,
    w_rgb: torch.Tensor,
    w_flow: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Joint temporal attention: one softmax over T, scored by both branches, pooling both.

    Scores and pooled sums are accumulated in float32 (float64 for float64 inputs), autocast or not. A row whose
    mask is all False yields zeros (the reference backend rejects such rows on CPU before calling this; see
    ops.backends). Nothing is checked (the op checks).

    Args:
        f_rgb: RGB snippet features, ``[B, T, C]``.
        f_flow: flow snippet features, the same shape and dtype.
        w_rgb: the RGB scoring vector, ``[C]``.
        w_flow: the flow scoring vector, ``[C]``.
        mask: ``[B, T]`` bool, False for a padding snippet; None: every snippet is real.

    Returns:
        ``(p_rgb [B, C], p_flow [B, C], attention [B, T])``: the pooled features in the features' dtype;
        attention float32 (float64 for float64 inputs, so that gradcheck sees full precision), 0 where masked.
    """
    # bmm would be autocast to bf16/fp16; the spec accumulates in float32 whatever the context.
    with torch.autocast(f_rgb.device.type, enabled=False):
        return _joint_attention_pool_ref(f_rgb, f_flow, w_rgb, w_flow, mask)


def _joint_attention_pool_ref(f_rgb, f_flow, w_rgb, w_flow, mask):
    acc = accumulation_dtype(f_rgb.dtype)
    fr = f_rgb.to(acc)
    ff = f_flow.to(acc)
    if mask is not None:
        # Masked snippets are never read (the non-finite rule, jna_fast/_op_rules.py): torch.where, whose
        # backward is a where too, so that neither the forward nor autograd forms 0 x NaN from what they hold.
        real = mask.unsqueeze(-1)
        fr = torch.where(real, fr, 0.0)
        ff = torch.where(real, ff, 0.0)
    scores = torch.bmm(fr, w_rgb.to(acc).view(1, -1, 1).expand(fr.shape[0], -1, -1)).squeeze(-1)
    scores = scores + torch.bmm(ff, w_flow.to(acc).view(1, -1, 1).expand(ff.shape[0], -1, -1)).squeeze(-1)
    # A non-finite real score makes the row NaN; softmax does so for NaN and +inf, but gives -inf weight 0.
    scores = scores.masked_fill(scores.isneginf(), float("nan"))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    attention = torch.softmax(scores, dim=1)
    if mask is not None:
        # Exactly 0 at masked snippets, in a NaN row too. An all-masked row's softmax is NaN everywhere: this
        # gives it zeros, as the fused kernels do, and its backward (a masked_fill too) passes no gradient on.
        attention = attention.masked_fill(~mask, 0.0)
    weights = attention.unsqueeze(1)
    p_rgb = torch.bmm(weights, fr).squeeze(1).to(f_rgb.dtype)
    p_flow = torch.bmm(weights, ff).squeeze(1).to(f_flow.dtype)
    return p_rgb, p_flow, attention
