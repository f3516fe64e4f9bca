"""The ``triton`` backend: the Triton kernels of ``jna_fast.triton``, ``torch.ops.jna_fast_triton.*``. CUDA
tensors; CPU tensors only under TRITON_INTERPRET=1 and only when forced."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
from typing import Callable

import torch

from ._choice import Backend, register_backend

NAMESPACE = "jna_fast_triton"
# The widest C the Triton pool serves: it holds a row in registers (jna_fast/triton/joint_attention_pool.py,
# MAX_CHANNELS; not imported here, since importing triton costs a second).
MAX_CHANNELS = 16384


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _release(package: str) -> tuple[int, int]:
    """(major, minor) of an installed package's version, read from its metadata (nothing is imported)."""
    major, minor = re.match(r"(\d+)\.(\d+)", importlib.metadata.version(package)).groups()
    return int(major), int(minor)


def _interpreter_reason() -> str | None:
    """Triton's interpreter before 3.9 turns a kernel's scalar arguments into loop bounds with int() of a
    one-element array, which numpy 2.4 refuses; the kernels loop over snippets and channels."""
    if _release("triton") < (3, 9) and _release("numpy") >= (2, 4):
        return (f"the TRITON_INTERPRET=1 interpreter of triton {importlib.metadata.version('triton')} cannot run "
                f"under numpy {importlib.metadata.version('numpy')} (it needs numpy < 2.4, or triton >= 3.9)")
    return None


def _machine_reason() -> str | None:
    # find_spec, not import: importing triton costs a second and must not happen inside a traced call.
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed; pip install 'jna_fast[triton]'"
    if not torch.cuda.is_available():
        return _interpreter_reason() if _interpreting() else (
            "no CUDA device is available and TRITON_INTERPRET=1 is not set")
    return None


def _input_reason(device: torch.device, forced: bool) -> str | None:
    if device.type == "cuda":
        return None
    if device.type == "cpu" and _interpreting():
        if forced:
            return None
        return "runs CPU tensors only in the TRITON_INTERPRET=1 debugging interpreter, so only when forced"
    return f"serves CUDA tensors (or CPU tensors under TRITON_INTERPRET=1), got {device.type} tensors"


def _load() -> None:
    # Imported on first use (an import statement, which torch.compile traces): importing triton costs a second,
    # and a missing triton must not break jna_fast. Importing the package registers the ops.
    from ... import triton  # noqa: F401


def _op(op_name: str) -> Callable:
    def call(*args):
        _load()
        return tuple(getattr(torch.ops.jna_fast_triton, op_name)(*args))

    return call


BACKEND = register_backend(Backend(
    name="triton", rank=20, cross_stitch=_op("cross_stitch"), joint_attention_pool=_op("joint_attention_pool"),
    machine_reason=_machine_reason, input_reason=_input_reason, namespace=NAMESPACE, load=_load,
    devices=("cuda", "cpu"), max_channels=MAX_CHANNELS,
))
