"""Input checks shared by every backend: each error names the argument and what was expected."""

from __future__ import annotations

import torch

FLOATING = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def _require_tensor(name: str, t) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")


def _require_floating(name: str, t: torch.Tensor) -> None:
    if t.dtype not in FLOATING:
        raise TypeError(f"{name}: expected a float32/float64/bfloat16/float16 tensor, got {t.dtype}")


def _require_same_device(names_tensors) -> None:
    (name0, t0), *rest = names_tensors
    for name, t in rest:
        if t.device != t0.device:
            raise ValueError(f"{name} is on {t.device} but {name0} is on {t0.device}; all inputs must share a device")


def check_cross_stitch(x_rgb, x_flow, alpha) -> None:
    for name, t in (("x_rgb", x_rgb), ("x_flow", x_flow), ("alpha", alpha)):
        _require_tensor(name, t)
        _require_floating(name, t)
    if x_rgb.dim() != 4:
        raise ValueError(f"x_rgb: expected a 4-d feature map [N, C, H, W], got shape {tuple(x_rgb.shape)}")
    if x_flow.shape != x_rgb.shape:
        raise ValueError(
            f"x_flow: expected the shape of x_rgb {tuple(x_rgb.shape)}, got {tuple(x_flow.shape)}"
        )
    if x_flow.dtype != x_rgb.dtype:
        raise TypeError(f"x_flow: expected the dtype of x_rgb ({x_rgb.dtype}), got {x_flow.dtype}")
    channels = x_rgb.shape[1]
    if alpha.shape != (channels, 2, 2):
        raise ValueError(f"alpha: expected shape [C, 2, 2] = [{channels}, 2, 2], got {tuple(alpha.shape)}")
    _require_same_device((("x_rgb", x_rgb), ("x_flow", x_flow), ("alpha", alpha)))


def check_joint_attention_pool(f_rgb, f_flow, w_rgb, w_flow, mask) -> None:
    for name, t in (("f_rgb", f_rgb), ("f_flow", f_flow), ("w_rgb", w_rgb), ("w_flow", w_flow)):
        _require_tensor(name, t)
        _require_floating(name, t)
    if f_rgb.dim() != 3:
        raise ValueError(f"f_rgb: expected snippet features [B, T, C], got shape {tuple(f_rgb.shape)}")
    batch, segments, channels = f_rgb.shape
    if segments == 0:
        raise ValueError("f_rgb: expected at least one snippet (T >= 1), got T = 0")
    if f_flow.shape != f_rgb.shape:
        raise ValueError(f"f_flow: expected the shape of f_rgb {tuple(f_rgb.shape)}, got {tuple(f_flow.shape)}")
    if f_flow.dtype != f_rgb.dtype:
        raise TypeError(f"f_flow: expected the dtype of f_rgb ({f_rgb.dtype}), got {f_flow.dtype}")
    for name, w in (("w_rgb", w_rgb), ("w_flow", w_flow)):
        if w.shape != (channels,):
            raise ValueError(f"{name}: expected shape [C] = [{channels}], got {tuple(w.shape)}")
    named = [("f_rgb", f_rgb), ("f_flow", f_flow), ("w_rgb", w_rgb), ("w_flow", w_flow)]
    if mask is not None:
        _require_tensor("mask", mask)
        if mask.dtype != torch.bool:
            raise TypeError(f"mask: expected a bool tensor, got {mask.dtype}")
        if mask.shape != (batch, segments):
            raise ValueError(f"mask: expected shape [B, T] = [{batch}, {segments}], got {tuple(mask.shape)}")
        named.append(("mask", mask))
    _require_same_device(named)
