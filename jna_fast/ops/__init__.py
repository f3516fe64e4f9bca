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
    """Bytes of idle CPU output buffers held for reuse (see ``empty_cpu_output_cache``).

    Returns:
        The bytes held; 0 without the compiled extension.
    """
    if not extension_status().loaded:
        return 0
    from .. import _C

    return _C.cpu_output_cache_idle_bytes()


def cross_stitch(x_rgb: torch.Tensor, x_flow: torch.Tensor, alpha: torch.Tensor, *,
                 backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y_rgb, y_flow)`` with ``y_i = alpha[c, i, 0] * x_rgb + alpha[c, i, 1] * x_flow`` per channel c.

    Args:
        x_rgb: RGB branch features, ``[N, C, H, W]``, float32, float16 or bfloat16, contiguous or channels_last.
        x_flow: flow branch features, the same shape, dtype and device as ``x_rgb``.
        alpha: the mixing weights, ``[C, 2, 2]``, the dtype of the features (differentiable).
        backend: ``"reference"``, ``"cpp"``, ``"cuda"`` or ``"triton"`` to force one; None (or the environment
            variable ``JNA_FAST_BACKEND``) picks the fastest that can serve the inputs.

    Returns:
        ``(y_rgb, y_flow)``, each ``[N, C, H, W]`` in the inputs' dtype and memory format. NaN and inf propagate
        element by element.

    Raises:
        ValueError: shapes, dtypes or devices that do not agree (the message names the input).
        BackendUnavailable: a forced backend that cannot serve these inputs (the message lists each backend's
            reason).
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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One temporal attention, scored by both branches, pooling the snippets of each clip.

    ``attention = softmax_t(<f_rgb, w_rgb> + <f_flow, w_flow>)`` over the snippets where ``mask`` is True;
    ``p = sum_t attention * f`` for each branch. Accumulates in float32.

    Args:
        f_rgb: RGB snippet features, ``[B, T, C]``, float32, float16 or bfloat16.
        f_flow: flow snippet features, the same shape, dtype and device.
        w_rgb: the RGB scoring vector, ``[C]`` (differentiable).
        w_flow: the flow scoring vector, ``[C]``.
        mask: ``[B, T]`` bool, False for a padding snippet; every row needs a True. None: every snippet is real.
        backend: as for [cross_stitch][jna_fast.ops.cross_stitch].

    Returns:
        ``(p_rgb, p_flow, attention)``: ``[B, C]`` twice in the features' dtype, and ``[B, T]`` float32 whose rows
        sum to 1 and are 0 where masked. A NaN or inf in a real snippet makes its clip's outputs NaN; a masked
        snippet never reaches any output or gradient.

    Raises:
        ValueError: shapes, dtypes or devices that do not agree, or a mask row with no True (checked on CPU
            tensors always, on GPU tensors with ``JNA_FAST_CHECKS=1``).
        BackendUnavailable: a forced backend that cannot serve these inputs.
    """
    check_joint_attention_pool(f_rgb, f_flow, w_rgb, w_flow, mask)
    return select_backend(f_rgb.device, backend).joint_attention_pool(f_rgb, f_flow, w_rgb, w_flow, mask)
