"""The ``reference`` backend: the pure-PyTorch semantics (jna_fast/ops/reference.py); serves every input, so it
ranks last and the automatic choice always finds a backend."""

from __future__ import annotations

from ..._op_rules import check_cross_stitch, check_joint_attention_pool, check_mask_rows
from ..reference import cross_stitch_ref, joint_attention_pool_ref
from ._choice import Backend, register_backend


# The kernel backends check their inputs inside their ops (so torch.compile sees no data-dependent branch in the
# wrapper); the reference backend checks here, with the same rules and messages (jna_fast/_op_rules.py).
def _checked_stitch(x_rgb, x_flow, alpha):
    check_cross_stitch(x_rgb, x_flow, alpha)
    return cross_stitch_ref(x_rgb, x_flow, alpha)


def _checked_pool(f_rgb, f_flow, w_rgb, w_flow, mask):
    check_joint_attention_pool(f_rgb, f_flow, w_rgb, w_flow, mask)
    check_mask_rows(mask)
    return joint_attention_pool_ref(f_rgb, f_flow, w_rgb, w_flow, mask)


BACKEND = register_backend(Backend(name="reference", rank=1000, cross_stitch=_checked_stitch,
                                   joint_attention_pool=_checked_pool))
