"""The op rules every Python-side backend shares, in one place, below jna_fast.ops and jna_fast.triton (both
import it; it imports neither): the accumulation dtype, cross_stitch's layout choice, the JNA_FAST_CHECKS switch
and the all-False mask check with its message, and the fake (meta) kernels and autograd of the op schemas.

The C++ backends' twin of these rules is csrc/op_rules.h; tests/test_op_rules.py checks that the two agree.

Non-finite values, the same in every backend (tests: test_ops_joint_attention_pool.py, test_ops_cross_stitch.py):
- joint_attention_pool. A real snippet (mask True) whose score e[b, t] is not finite in the accumulation dtype
  makes its clip's row NaN: p_rgb[b, :], p_flow[b, :] and a[b, t] at every real t. That covers NaN or +-inf
  in f_rgb[b, t] / f_flow[b, t] (each gives a NaN or infinite product), NaN or +-inf anywhere in w_rgb / w_flow
  (then every row with a real snippet is NaN), and a score whose sum overflows. A -inf score counts too: as a
  softmax weight 0 it would hide the infinite feature behind a finite, plausible row. Backward: such a row's df
  is NaN at its real snippets, and dw_rgb, dw_flow are NaN everywhere (every clip feeds dw); the other rows' df
  are untouched. a is exactly 0 at masked snippets, in a NaN row too, so the backward (which knows the mask
  only as a = 0) never reads them. A masked snippet is never read at all: whatever it holds (NaN, inf, 1e30),
  the outputs and every gradient are exactly those of the same inputs with it zeroed, and its df is 0.
  A row with no real snippet stays DESIGN §2.2's invalid input (ValueError on CPU; zeros unchecked on a GPU).
  The check costs O(T) per clip: the scores are formed anyway, f is not read again.
- cross_stitch is linear, computed element by element: NaN/inf in x or alpha reaches exactly the outputs and
  gradients whose formula contains it (IEEE arithmetic, as the reference computes them).
"""

from __future__ import annotations

import os

import torch


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64 (for gradcheck); every other floating dtype accumulates in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def checks_enabled() -> bool:
    """JNA_FAST_CHECKS=1 turns on the checks that cost a device sync on GPU tensors."""
    return os.environ.get("JNA_FAST_CHECKS", "0") not in ("", "0", "false", "False")


def check_mask_rows(mask) -> None:
    """An all-False mask row has no snippet to attend to. Checked always on CPU, on GPU only with
    JNA_FAST_CHECKS=1 (the check syncs the device); unchecked, such a row pools to zeros."""
    if mask is None or mask.shape[0] == 0:
        return
    if mask.device.type != "cpu" and not checks_enabled():
        return
    empty = (~mask.any(dim=1)).nonzero().flatten()
    if empty.numel():
        rows = empty[:8].tolist()
        raise ValueError(
            f"mask: rows {rows}{'...' if empty.numel() > 8 else ''} are all False; every clip needs at least "
            "one real snippet (set mask[b, t] = True for real snippets)"
        )


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
