"""The ops' backends, each a module (or package) of this package that registers itself when imported: its
preference rank, why this machine or an input rules it out (after xformers), its two op implementations.
A new backend is one new module here; the choice, the error listing every backend's reason, the tests and the
benchmarks all iterate over the registry (docs/design.md §5).

Registered here: ``cuda`` (C++/CUDA kernels, CUDA tensors), ``triton`` (Triton kernels, CUDA tensors; CPU tensors
only under TRITON_INTERPRET=1 and only when forced), ``cpp`` (C++ CPU kernels), ``reference`` (pure PyTorch, serves
everything), in that order of preference. ``backend=None`` takes the first that can serve; ``JNA_FAST_BACKEND``
or ``backend="name"`` forces one.
"""

from __future__ import annotations

from ...registry import import_submodules
from ._choice import (
    BACKENDS,
    Backend,
    BackendRegistry,
    BackendUnavailable,
    availability,
    backend_names,
    forced_backend_name,
    register_backend,
    select_backend,
)

import_submodules(__name__, __path__)

# The registered backends' names in preference order, as at import (a backend a test registers later is in
# backend_names(), not here): the configuration's choices.
BACKEND_NAMES = backend_names()
"""The registered backends' names in preference order, as at import (the configuration's choices)."""

__all__ = [
    "BACKENDS", "BACKEND_NAMES", "Backend", "BackendRegistry", "BackendUnavailable", "availability", "backend_names",
    "forced_backend_name", "register_backend", "select_backend",
]
