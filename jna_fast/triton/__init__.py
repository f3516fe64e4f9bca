"""Triton backend of the two JNA ops, registered as ``torch.ops.jna_fast_triton.*`` (same schemas, fake kernels
and autograd as the C++ ``jna_fast::*`` ops). Runs CUDA tensors; CPU tensors under TRITON_INTERPRET=1, which
must be set before triton is first imported.

jna_fast imports this package only when the Triton backend is chosen (jna_fast/ops/backends.py), so a missing
triton never breaks ``import jna_fast``.
"""

from __future__ import annotations

try:
    import triton  # noqa: F401
except ImportError as exc:
    raise ImportError(
        f"jna_fast.triton needs the triton package ({exc}); pip install 'jna_fast[triton]'"
    ) from exc

import torch

from ..ops.registration import register_fake_and_autograd
from . import cross_stitch as _cross_stitch_module  # noqa: F401  (defines jna_fast_triton::cross_stitch*)
from . import joint_attention_pool as _pool_module  # noqa: F401  (defines jna_fast_triton::joint_attention_pool*)
from .utils import INTERPRETED, NAMESPACE

register_fake_and_autograd(NAMESPACE)

__all__ = ["cross_stitch", "joint_attention_pool", "INTERPRETED", "NAMESPACE"]


def cross_stitch(x_rgb: torch.Tensor, x_flow: torch.Tensor, alpha: torch.Tensor):
    """``(y_rgb, y_flow)``; inputs already validated by jna_fast.ops.cross_stitch."""
    return tuple(torch.ops.jna_fast_triton.cross_stitch(x_rgb, x_flow, alpha))


def joint_attention_pool(f_rgb, f_flow, w_rgb, w_flow, mask):
    """``(p_rgb, p_flow, attention)``; inputs already validated by jna_fast.ops.joint_attention_pool.
    All-False mask rows raise ValueError inside the op on CPU (and on CUDA with JNA_FAST_CHECKS=1)."""
    return tuple(torch.ops.jna_fast_triton.joint_attention_pool(f_rgb, f_flow, w_rgb, w_flow, mask))
