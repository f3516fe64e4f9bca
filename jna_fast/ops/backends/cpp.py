"""The ``cpp`` backend: the compiled extension's C++ CPU kernels (csrc/cpu), ``torch.ops.jna_fast.*``."""

from __future__ import annotations

import torch

from ._choice import Backend, register_backend
from ._native import NAMESPACE, extension_reason, native_op


def _input_reason(device: torch.device, forced: bool) -> str | None:
    return None if device.type == "cpu" else f"serves CPU tensors only, got {device.type} tensors"


BACKEND = register_backend(Backend(
    name="cpp", rank=30, cross_stitch=native_op("cross_stitch"), joint_attention_pool=native_op("joint_attention_pool"),
    machine_reason=lambda: extension_reason("cpu"), input_reason=_input_reason, namespace=NAMESPACE,
    devices=("cpu",),
))
