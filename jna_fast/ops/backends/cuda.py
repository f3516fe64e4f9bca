"""The ``cuda`` backend: the compiled extension's C++/CUDA kernels (csrc/cuda), ``torch.ops.jna_fast.*``."""

from __future__ import annotations

import torch

from ._choice import Backend, register_backend
from ._native import NAMESPACE, extension_reason, native_op


def _machine_reason() -> str | None:
    reason = extension_reason("cuda")
    if reason:
        return reason
    if not torch.cuda.is_available():
        return "no CUDA device is available"
    return None


def _input_reason(device: torch.device, forced: bool) -> str | None:
    return None if device.type == "cuda" else f"serves CUDA tensors only, got {device.type} tensors"


BACKEND = register_backend(Backend(
    name="cuda", rank=10, cross_stitch=native_op("cross_stitch"),
    joint_attention_pool=native_op("joint_attention_pool"), machine_reason=_machine_reason,
    input_reason=_input_reason, namespace=NAMESPACE, devices=("cuda",),
))
