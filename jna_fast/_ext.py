"""Loads the compiled extension (jna_fast._C), which registers the ``jna_fast::*`` ops.

A missing or broken extension is not fatal: the ops fall back to the reference implementation and one
warning says why.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from ._op_rules import register_fake_and_autograd


@dataclass(frozen=True)
class ExtensionStatus:
    loaded: bool
    compiled_backends: tuple[str, ...] = ()
    cuda_arch_list: str = ""
    error: str = ""
    path: str = field(default="")


_status: ExtensionStatus | None = None


def extension_status() -> ExtensionStatus:
    """Loads the extension on the first call. A plain global rather than functools.lru_cache: torch.compile
    traces through lru_cache wrappers (re-running the body), but treats a global read as a constant."""
    global _status
    if _status is None:
        _status = _load()
    return _status


def _load() -> ExtensionStatus:
    try:
        from . import _C  # noqa: F401  (importing registers the TORCH_LIBRARY ops)
    except Exception as exc:  # any failure to load means: fall back, loudly, once
        message = f"{type(exc).__name__}: {exc}"
        warnings.warn(
            "jna_fast: the compiled extension jna_fast._C could not be loaded "
            f"({message}); the ops fall back to the pure-PyTorch reference. Rebuild it against the installed torch "
            "with `pip install --no-build-isolation .`.",
            RuntimeWarning,
            stacklevel=3,
        )
        return ExtensionStatus(loaded=False, error=message)
    register_fake_and_autograd("jna_fast")
    return ExtensionStatus(
        loaded=True,
        compiled_backends=tuple(_C.compiled_backends()),
        cuda_arch_list=_C.cuda_arch_list(),
        path=_C.__file__,
    )
