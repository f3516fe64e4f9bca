"""Fake (meta) kernels and autograd for the op schemas, shared by every namespace that implements them.

The C++ extension defines ``jna_fast::*`` (TORCH_LIBRARY in csrc/ops.cpp); the Triton backend defines the
same four schemas under ``jna_fast_triton::*``. Both get their fake kernels and autograd from here, so the
shape/stride rules and the backward wiring exist once.
"""

from __future__ import annotations

import torch

from .reference import accumulation_dtype


def feature_map_is_nhwc(x: torch.Tensor) -> bool:
    """The layout rule of every cross_stitch kernel: work (and write) channels_last when the input is
    channels_last-dense and not also plain-contiguous (shapes like [N, C, 1, 1] are both); else NCHW."""
    return (not x.is_contiguous()) and x.is_contiguous(memory_format=torch.channels_last)


def feature_map_format(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if feature_map_is_nhwc(x) else torch.contiguous_format


def register_fake_and_autograd(namespace: str) -> None:
    ops = getattr(torch.ops, namespace)

    @torch.library.register_fake(f"{namespace}::cross_stitch")
    def _cross_stitch_fake(x_rgb, x_flow, alpha):
        fmt = feature_map_format(x_rgb)
        return (torch.empty(x_rgb.shape, dtype=x_rgb.dtype, device=x_rgb.device, memory_format=fmt),
                torch.empty(x_rgb.shape, dtype=x_rgb.dtype, device=x_rgb.device, memory_format=fmt))

    @torch.library.register_fake(f"{namespace}::cross_stitch_backward")
    def _cross_stitch_backward_fake(grad_rgb, grad_flow, x_rgb, x_flow, alpha):
        fmt = feature_map_format(x_rgb)
        dx = (torch.empty(x_rgb.shape, dtype=x_rgb.dtype, device=x_rgb.device, memory_format=fmt),
              torch.empty(x_rgb.shape, dtype=x_rgb.dtype, device=x_rgb.device, memory_format=fmt))
        return dx + (torch.empty(alpha.shape, dtype=alpha.dtype, device=alpha.device),)

    @torch.library.register_fake(f"{namespace}::joint_attention_pool")
    def _pool_fake(f_rgb, f_flow, w_rgb, w_flow, mask):
        batch, segments, channels = f_rgb.shape
        p_rgb = f_rgb.new_empty((batch, channels))
        p_flow = f_rgb.new_empty((batch, channels))
        attention = f_rgb.new_empty((batch, segments), dtype=accumulation_dtype(f_rgb.dtype))
        return p_rgb, p_flow, attention

    @torch.library.register_fake(f"{namespace}::joint_attention_pool_backward")
    def _pool_backward_fake(grad_p_rgb, grad_p_flow, grad_attention, f_rgb, f_flow, w_rgb, w_flow, attention):
        return (f_rgb.new_empty(f_rgb.shape), f_rgb.new_empty(f_rgb.shape),
                w_rgb.new_empty(w_rgb.shape), w_flow.new_empty(w_flow.shape))

    def _cross_stitch_setup(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    def _cross_stitch_backward(ctx, grad_rgb, grad_flow):
        x_rgb, x_flow, alpha = ctx.saved_tensors
        return tuple(ops.cross_stitch_backward(grad_rgb, grad_flow, x_rgb, x_flow, alpha))

    torch.library.register_autograd(
        f"{namespace}::cross_stitch", _cross_stitch_backward, setup_context=_cross_stitch_setup
    )

    def _pool_setup(ctx, inputs, output):
        f_rgb, f_flow, w_rgb, w_flow, _mask = inputs
        ctx.save_for_backward(f_rgb, f_flow, w_rgb, w_flow, output[2])

    def _pool_backward(ctx, grad_p_rgb, grad_p_flow, grad_attention):
        f_rgb, f_flow, w_rgb, w_flow, attention = ctx.saved_tensors
        grads = ops.joint_attention_pool_backward(
            grad_p_rgb, grad_p_flow, grad_attention, f_rgb, f_flow, w_rgb, w_flow, attention
        )
        return tuple(grads) + (None,)

    torch.library.register_autograd(
        f"{namespace}::joint_attention_pool", _pool_backward, setup_context=_pool_setup
    )
