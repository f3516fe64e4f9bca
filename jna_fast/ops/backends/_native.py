"""What the two backends of the compiled extension (``cuda`` and ``cpp``) share: its ops and its state."""

from __future__ import annotations

from typing import Callable

import torch

from ..._ext import extension_status

NAMESPACE = "jna_fast"


def extension_reason(needed: str) -> str | None:
    """Why the extension cannot run ``needed`` ("cpu" or "cuda") kernels (None: it can)."""
    status = extension_status()
    if not status.loaded:
        return f"the compiled extension did not load ({status.error})"
    if needed not in status.compiled_backends:
        return f"the extension was built without {needed} kernels (built: {', '.join(status.compiled_backends)})"
    return None


def native_op(op_name: str) -> Callable:
    """The extension's op (it checks its inputs itself, csrc/op_rules.h)."""
    return lambda *args: getattr(torch.ops.jna_fast, op_name)(*args)
