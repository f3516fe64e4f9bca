"""The op rules every Python-side backend shares, in one place, below jna_fast.ops and jna_fast.triton (both
import it; it imports neither): the input checks and their messages, the accumulation dtype, cross_stitch's
layout choice, the JNA_FAST_CHECKS switch and the all-False mask check, and the fake (meta) kernels and autograd
of the op schemas.

The C++ backends' twin of these rules is csrc/op_rules.h; tests/test_op_rules.py and tests/test_op_errors.py
check that the two agree (the same exception type and the same message for the same broken input).

Non-finite values, the same in every backend (tests: test_ops_joint_attention_pool.py, test_ops_cross_stitch.py;
docs/design.md §3.3, §4.4):
- joint_attention_pool. A real snippet (mask True) whose score e[b, t] is not finite in the accumulation dtype
  makes its clip's row NaN: p_rgb[b, :], p_flow[b, :] and a[b, t] at every real t. That covers NaN or +-inf
  in f_rgb[b, t] / f_flow[b, t] (each gives a NaN or infinite product), NaN or +-inf anywhere in w_rgb / w_flow
  (then every row with a real snippet is NaN), and a score whose sum overflows. A -inf score counts too: as a
  softmax weight 0 it would hide the infinite feature behind a finite, plausible row. Backward: such a row's df
  is NaN at its real snippets, and dw_rgb, dw_flow are NaN everywhere (every clip feeds dw); the other rows' df
  are untouched. a is exactly 0 at masked snippets, in a NaN row too, so the backward (which knows the mask
  only as a = 0) never reads them. A masked snippet is never read at all: whatever it holds (NaN, inf, 1e30),
  the outputs and every gradient are exactly those of the same inputs with it zeroed, and its df is 0.
  A row with no real snippet is invalid input (docs/design.md §4.4: ValueError on CPU; zeros unchecked on a GPU).
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


# One message per broken input rule: the exception type and the text every backend raises for it. Fields in
# braces are filled in; shapes print as [2, 3], dtypes as torch.float32, devices as cuda:0 (the C++ side prints
# them the same way). csrc/op_rules.h holds the same table (kInputErrors); tests/test_op_errors.py compares them.
INPUT_ERRORS: dict[str, tuple[type[Exception], str]] = {
    "not_tensor": (TypeError, "{name}: expected a torch.Tensor, got {got}"),
    "not_floating": (TypeError, "{name}: expected a float32/float64/bfloat16/float16 tensor, got {got}"),
    "dtype_mismatch": (TypeError, "{name}: expected the dtype of {like} ({expected}), got {got}"),
    "device_mismatch": (ValueError, "{name} is on {got} but {like} is on {expected}; all inputs must share a device"),
    "feature_map_rank": (ValueError, "x_rgb: expected a 4-d feature map [N, C, H, W], got shape {got}"),
    "snippet_features_rank": (ValueError, "f_rgb: expected snippet features [B, T, C], got shape {got}"),
    "no_snippets": (ValueError, "f_rgb: expected at least one snippet (T >= 1), got T = 0"),
    "shape_mismatch": (ValueError, "{name}: expected the shape of {like} {expected}, got {got}"),
    "shape": (ValueError, "{name}: expected shape {dims} = {expected}, got {got}"),
    "mask_dtype": (TypeError, "mask: expected a bool tensor, got {got}"),
    "mask_rows": (ValueError, "mask: rows {rows} are all False; every clip needs at least one real snippet "
                              "(set mask[b, t] = True for real snippets)"),
}

FLOATING = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def input_error(rule: str, **fields) -> Exception:
    """The exception for a broken input ``rule`` of INPUT_ERRORS, its message filled in from ``fields``."""
    kind, template = INPUT_ERRORS[rule]
    return kind(template.format(**fields))


def _shape(t: torch.Tensor) -> str:
    return str(list(t.shape))


def _require_tensor(name: str, t) -> None:
    if not isinstance(t, torch.Tensor):
        raise input_error("not_tensor", name=name, got=type(t).__name__)


def _require_floating(name: str, t: torch.Tensor) -> None:
    if t.dtype not in FLOATING:
        raise input_error("not_floating", name=name, got=t.dtype)


def _require_like(name: str, t: torch.Tensor, like_name: str, like: torch.Tensor) -> None:
    """``t`` has the shape and dtype of ``like``."""
    if t.shape != like.shape:
        raise input_error("shape_mismatch", name=name, like=like_name, expected=_shape(like), got=_shape(t))
    if t.dtype != like.dtype:
        raise input_error("dtype_mismatch", name=name, like=like_name, expected=like.dtype, got=t.dtype)


def _require_shape(name: str, t: torch.Tensor, dims: str, expected: list[int]) -> None:
    if list(t.shape) != expected:
        raise input_error("shape", name=name, dims=dims, expected=expected, got=_shape(t))


def _require_same_device(named) -> None:
    (name0, t0), *rest = named
    for name, t in rest:
        if t.device != t0.device:
            raise input_error("device_mismatch", name=name, got=t.device, like=name0, expected=t0.device)


def check_cross_stitch(x_rgb, x_flow, alpha) -> None:
    """The input rules of cross_stitch; csrc/op_rules.h's check_cross_stitch applies them in the same order."""
    named = (("x_rgb", x_rgb), ("x_flow", x_flow), ("alpha", alpha))
    for name, t in named:
        _require_tensor(name, t)
        _require_floating(name, t)
    if x_rgb.dim() != 4:
        raise input_error("feature_map_rank", got=_shape(x_rgb))
    _require_like("x_flow", x_flow, "x_rgb", x_rgb)
    _require_shape("alpha", alpha, "[C, 2, 2]", [x_rgb.shape[1], 2, 2])
    _require_same_device(named)


def check_cross_stitch_backward(grad_rgb, grad_flow, x_rgb, x_flow, alpha) -> None:
    check_cross_stitch(x_rgb, x_flow, alpha)
    named = (("grad_rgb", grad_rgb), ("grad_flow", grad_flow))
    for name, t in named:
        _require_tensor(name, t)
        if t.shape != x_rgb.shape:
            raise input_error("shape_mismatch", name=name, like="x_rgb", expected=_shape(x_rgb), got=_shape(t))
    _require_same_device((("x_rgb", x_rgb),) + named)


def _check_pool_features(f_rgb, f_flow, w_rgb, w_flow) -> list:
    named = [("f_rgb", f_rgb), ("f_flow", f_flow), ("w_rgb", w_rgb), ("w_flow", w_flow)]
    for name, t in named:
        _require_tensor(name, t)
        _require_floating(name, t)
    if f_rgb.dim() != 3:
        raise input_error("snippet_features_rank", got=_shape(f_rgb))
    if f_rgb.shape[1] == 0:
        raise input_error("no_snippets")
    _require_like("f_flow", f_flow, "f_rgb", f_rgb)
    for name, w in (("w_rgb", w_rgb), ("w_flow", w_flow)):
        _require_shape(name, w, "[C]", [f_rgb.shape[2]])
    return named


def check_joint_attention_pool(f_rgb, f_flow, w_rgb, w_flow, mask) -> None:
    """The input rules of joint_attention_pool except the all-False mask rows (check_mask_rows, which reads
    the mask's values); csrc/op_rules.h's check_joint_attention_pool applies them in the same order."""
    named = _check_pool_features(f_rgb, f_flow, w_rgb, w_flow)
    if mask is not None:
        _require_tensor("mask", mask)
        if mask.dtype != torch.bool:
            raise input_error("mask_dtype", got=mask.dtype)
        _require_shape("mask", mask, "[B, T]", list(f_rgb.shape[:2]))
        named.append(("mask", mask))
    _require_same_device(named)


def check_joint_attention_pool_backward(grad_p_rgb, grad_p_flow, grad_attention, f_rgb, f_flow, w_rgb, w_flow,
                                        attention) -> None:
    named = _check_pool_features(f_rgb, f_flow, w_rgb, w_flow)
    batch, segments, channels = f_rgb.shape
    for name, t, dims, expected in (("grad_p_rgb", grad_p_rgb, "[B, C]", [batch, channels]),
                                    ("grad_p_flow", grad_p_flow, "[B, C]", [batch, channels]),
                                    ("grad_attention", grad_attention, "[B, T]", [batch, segments]),
                                    ("attention", attention, "[B, T]", [batch, segments])):
        _require_tensor(name, t)
        _require_shape(name, t, dims, expected)
        named.append((name, t))
    _require_same_device(named)


def check_mask_rows(mask) -> None:
    """An all-False mask row has no snippet to attend to. Checked always on CPU, on GPU only with
    JNA_FAST_CHECKS=1 (the check syncs the device); unchecked, such a row pools to zeros."""
    if mask is None or mask.shape[0] == 0:
        return
    if mask.device.type != "cpu" and not checks_enabled():
        return
    empty = (~mask.any(dim=1)).nonzero().flatten()
    if empty.numel():
        rows = f"{empty[:8].tolist()}{'...' if empty.numel() > 8 else ''}"
        raise input_error("mask_rows", rows=rows)


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
