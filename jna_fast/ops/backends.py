"""Backend choice, after xformers: every backend says why it cannot serve an input, and an error lists them.

Backends, in order of preference: ``cuda`` (C++/CUDA kernels, CUDA tensors), ``triton`` (Triton kernels,
CUDA tensors; CPU tensors only under TRITON_INTERPRET=1 and only when forced), ``cpp`` (C++ CPU kernels),
``reference`` (pure PyTorch, serves everything). ``backend=None`` takes the first that can serve;
``JNA_FAST_BACKEND`` or ``backend="name"`` forces one.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
from dataclasses import dataclass
from typing import Callable

import torch

from .._ext import extension_status
from ..errors import JnaFastError
from .reference import cross_stitch_ref, joint_attention_pool_ref
from .._op_rules import check_cross_stitch, check_joint_attention_pool, check_mask_rows

BACKEND_NAMES = ("cuda", "triton", "cpp", "reference")


class BackendUnavailable(JnaFastError, RuntimeError):
    """No requested backend can serve these inputs; the message lists each backend's reason."""


@dataclass(frozen=True)
class Backend:
    name: str
    machine_reason: Callable[[], str | None]
    input_reason: Callable[[torch.device, bool], str | None]
    cross_stitch: Callable
    joint_attention_pool: Callable

    def why_not(self, device: torch.device, forced: bool) -> str | None:
        return _MACHINE_REASONS[self.name] or self.input_reason(device, forced)


def _extension_reason(needed: str) -> str | None:
    status = extension_status()
    if not status.loaded:
        return f"the compiled extension did not load ({status.error})"
    if needed not in status.compiled_backends:
        return f"the extension was built without {needed} kernels (built: {', '.join(status.compiled_backends)})"
    return None


def _cpp_input_reason(device: torch.device, forced: bool) -> str | None:
    return None if device.type == "cpu" else f"serves CPU tensors only, got {device.type} tensors"


def _cuda_machine_reason() -> str | None:
    reason = _extension_reason("cuda")
    if reason:
        return reason
    if not torch.cuda.is_available():
        return "no CUDA device is available"
    return None


def _cuda_input_reason(device: torch.device, forced: bool) -> str | None:
    return None if device.type == "cuda" else f"serves CUDA tensors only, got {device.type} tensors"


def _triton_interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _release(package: str) -> tuple[int, int]:
    """(major, minor) of an installed package's version, read from its metadata (nothing is imported)."""
    major, minor = re.match(r"(\d+)\.(\d+)", importlib.metadata.version(package)).groups()
    return int(major), int(minor)


def _triton_interpreter_reason() -> str | None:
    """Triton's interpreter before 3.9 turns a kernel's scalar arguments into loop bounds with int() of a
    one-element array, which numpy 2.4 refuses; the kernels loop over snippets and channels."""
    if _release("triton") < (3, 9) and _release("numpy") >= (2, 4):
        return (f"the TRITON_INTERPRET=1 interpreter of triton {importlib.metadata.version('triton')} cannot run "
                f"under numpy {importlib.metadata.version('numpy')} (it needs numpy < 2.4, or triton >= 3.9)")
    return None


def _triton_machine_reason() -> str | None:
    # find_spec, not import: importing triton costs a second and must not happen inside a traced call.
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed; pip install 'jna_fast[triton]'"
    if not torch.cuda.is_available():
        return _triton_interpreter_reason() if _triton_interpreting() else (
            "no CUDA device is available and TRITON_INTERPRET=1 is not set")
    return None


def _triton_input_reason(device: torch.device, forced: bool) -> str | None:
    if device.type == "cuda":
        return None
    if device.type == "cpu" and _triton_interpreting():
        if forced:
            return None
        return "runs CPU tensors only in the TRITON_INTERPRET=1 debugging interpreter, so only when forced"
    return f"serves CUDA tensors (or CPU tensors under TRITON_INTERPRET=1), got {device.type} tensors"


# The kernel backends check their inputs inside their ops (so torch.compile sees no data-dependent branch in the
# wrapper); the reference backend checks here, with the same rules and messages (jna_fast/_op_rules.py).
def _checked_reference_stitch(x_rgb, x_flow, alpha):
    check_cross_stitch(x_rgb, x_flow, alpha)
    return cross_stitch_ref(x_rgb, x_flow, alpha)


def _checked_reference_pool(f_rgb, f_flow, w_rgb, w_flow, mask):
    check_joint_attention_pool(f_rgb, f_flow, w_rgb, w_flow, mask)
    check_mask_rows(mask)
    return joint_attention_pool_ref(f_rgb, f_flow, w_rgb, w_flow, mask)


def _native(op_name: str) -> Callable:
    return lambda *args: getattr(torch.ops.jna_fast, op_name)(*args)


def _triton(op_name: str) -> Callable:
    def call(*args):
        # Imported on first use (an import statement, which torch.compile traces): importing triton costs a
        # second, and a missing triton must not break jna_fast. Importing the package registers the ops.
        from .. import triton  # noqa: F401

        return tuple(getattr(torch.ops.jna_fast_triton, op_name)(*args))

    return call


BACKENDS: dict[str, Backend] = {
    "cuda": Backend("cuda", _cuda_machine_reason, _cuda_input_reason,
                    _native("cross_stitch"), _native("joint_attention_pool")),
    "triton": Backend("triton", _triton_machine_reason, _triton_input_reason,
                      _triton("cross_stitch"), _triton("joint_attention_pool")),
    "cpp": Backend("cpp", lambda: _extension_reason("cpu"), _cpp_input_reason,
                   _native("cross_stitch"), _native("joint_attention_pool")),
    "reference": Backend("reference", lambda: None, lambda device, forced: None,
                         _checked_reference_stitch, _checked_reference_pool),
}


def forced_backend_name(backend: str | None) -> str | None:
    name = backend if backend is not None else (os.environ.get("JNA_FAST_BACKEND") or None)
    if name is not None and name not in BACKENDS:
        source = "backend" if backend is not None else "JNA_FAST_BACKEND"
        raise ValueError(f"{source}={name!r}: unknown backend; choose one of {', '.join(BACKEND_NAMES)}")
    return name


# What this machine can run is fixed for the life of the process: work it out once, at import, so that choosing
# a backend inside a torch.compile trace is plain lookups.
_MACHINE_REASONS: dict[str, str | None] = {name: backend.machine_reason() for name, backend in BACKENDS.items()}


def _auto_choice(device: torch.device) -> Backend:
    # The reference serves everything, so the loop always returns.
    for name in BACKEND_NAMES:
        if BACKENDS[name].why_not(device, forced=False) is None:
            return BACKENDS[name]
    raise AssertionError("unreachable: the reference backend serves every input")


def select_backend(device: torch.device, backend: str | None = None) -> Backend:
    """The backend for inputs on ``device``: the forced one (or an error naming every backend's reason),
    else the first in preference order that can serve."""
    name = forced_backend_name(backend)
    if name is None:
        return _auto_choice(device)
    chosen = BACKENDS[name]
    reason = chosen.why_not(device, forced=True)
    if reason is None:
        return chosen
    reasons = "\n".join(
        f"  {n}: {BACKENDS[n].why_not(device, forced=True) or 'can serve'}" for n in BACKEND_NAMES
    )
    raise BackendUnavailable(
        f"backend {name!r} cannot serve {device.type} inputs: {reason}\nper backend:\n{reasons}"
    )


def availability(device: torch.device) -> dict[str, str | None]:
    """For `python -m jna_fast.info`: each backend's reason it cannot serve ``device`` (None: it can)."""
    return {name: BACKENDS[name].why_not(device, forced=True) for name in BACKEND_NAMES}
