"""Triton backend of the two JNA ops, registered as ``torch.ops.jna_fast_triton.*`` (same schemas, fake kernels
and autograd as the C++ ``jna_fast::*`` ops). Runs CUDA tensors; CPU tensors under TRITON_INTERPRET=1, which
must be set before triton is first imported.

jna_fast imports this package only when the Triton backend is chosen (jna_fast/ops/backends/triton.py calls the
registered ops), so a missing triton never breaks ``import jna_fast``. This package depends on jna_fast._op_rules
only, never on jna_fast.ops.
"""

from __future__ import annotations

try:
    import triton  # noqa: F401
except ImportError as exc:
    raise ImportError(
        f"jna_fast.triton needs the triton package ({exc}); pip install 'jna_fast[triton]'"
    ) from exc

from .._op_rules import register_fake_and_autograd
from . import cross_stitch, joint_attention_pool  # noqa: F401  (importing defines the jna_fast_triton:: ops)
from .utils import INTERPRETED, NAMESPACE

register_fake_and_autograd(NAMESPACE)

__all__ = ["cross_stitch", "joint_attention_pool", "INTERPRETED", "NAMESPACE"]

