"""The model's parts, one module each (docs/design.md §2.7): importing this package imports every module in it,
and each registers its part with :func:`jna_fast.models.registry.register`, so that a new part is one new file."""

from ...registry import import_submodules

import_submodules(__name__, __path__)
