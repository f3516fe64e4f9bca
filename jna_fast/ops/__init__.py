"""The two JNA ops, dispatched to the best available backend.

``cross_stitch`` (docs/design.md §3) mixes the RGB and flow feature maps channel-wise; ``joint_attention_pool``
(docs/design.md §4) pools the snippets of each clip with one softmax attention over time scored by both branches.
"""

from __future__ import annotations

import torch

from .._ext import extension_status
from .backends import BACKEND_NAMES, BackendUnavailable, availability, select_backend
from .reference import cross_stitch_ref, joint_attention_pool_ref
from .._op_rules import check_cross_stitch, check_joint_attention_pool

# Load the extension now, not inside a first call that torch.compile may be tracing; a failure warns once and
# leaves the reference in charge.
extension_status()

__all__ = [
    "cross_stitch",
    "joint_attention_pool",
    "cross_stitch_ref",
    "joint_attention_pool_ref",
    "BACKEND_NAMES",
    "BackendUnavailable",
    "availability",
    "select_backend",
    "empty_cpu_output_cache",
    "cpu_output_cache_bytes",
]


def empty_cpu_output_cache() -> None:
    """Frees the idle CPU output buffers the cpp kernels keep for reuse (like ``torch.cuda.empty_cache``).

    The cpp kernels take outputs of 4 MiB and more from a pool of recycled huge-page buffers, so that a training
    step does not page-fault its way through fresh memory; the pool holds at most
    ``JNA_FAST_CPU_OUTPUT_CACHE_MB`` (default 1024, 0: off) of buffers no tensor uses any more.
    """
    if extension_status().loaded:
        from .. import _C

        _C.empty_cpu_output_cache()


def cpu_output_cache_bytes() -> int:
    """Bytes of idle CPU output buffers held for reuse (see ``empty_cpu_output_cache``)."""
    if not extension_status().loaded:
        return 0
    from .. import _C

    return _C.cpu_output_cache_idle_bytes()


def cross_stitch(x_rgb: torch.Tensor, x_flow: torch.Tensor, alpha: torch.Tensor, *, backend: str | None = None):
    """``(y_rgb, y_flow)`` with ``y_i = alpha[c, i, 0] * x_rgb + alpha[c, i, 1] * x_flow`` per channel c.

    ``x_rgb``, ``x_flow``: ``[N, C, H, W]`` of one dtype (contiguous or channels_last); ``alpha``: ``[C, 2, 2]``.
    """
    check_cross_stitch(x_rgb, x_flow, alpha)
    return select_backend(x_rgb.device, backend).cross_stitch(x_rgb, x_flow, alpha)


def joint_attention_pool(
    f_rgb: torch.Tensor,
    f_flow: torch.Tensor,
    w_rgb: torch.Tensor,
    w_flow: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    backend: str | None = None,
):
    """``(p_rgb [B, C], p_flow [B, C], attention [B, T])`` from snippet features ``[B, T, C]``.

    ``attention = softmax_t(<f_rgb, w_rgb> + <f_flow, w_flow>)`` over the snippets where ``mask`` is True;
    ``p = sum_t attention * f`` for each branch. Accumulates in float32; attention is float32.
    """
    check_joint_attention_pool(f_rgb, f_flow, w_rgb, w_flow, mask)
    return select_backend(f_rgb.device, backend).joint_attention_pool(f_rgb, f_flow, w_rgb, w_flow, mask)
