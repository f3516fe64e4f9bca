"""Optional dependencies: a missing one is reported with the extra that installs it."""

from __future__ import annotations

import importlib

EXTRAS = {"av": "video", "cv2": "video", "triton": "triton", "nvidia.dali": "dali", "matplotlib": "viz",
          "onnx": "export", "onnxscript": "export", "onnxruntime": "export", "gradio": "demo"}


def require(feature: str, *modules: str) -> None:
    """Import ``modules`` or raise ImportError naming ``feature`` and the pip extra that brings them."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            extra = EXTRAS[module]
            raise ImportError(
                f"{feature} needs the optional dependency {module!r} ({exc}); install it with "
                f"pip install 'jna_fast[{extra}]'"
            ) from exc


def lazy_exports(package: str, exports: dict[str, str], feature: str, *modules: str):
    """A module ``__getattr__`` (PEP 562) for ``package``: each name of ``exports`` (name -> module, relative to
    ``package`` as in an import statement: ".loader") is imported
    from its submodule on first use, after checking the optional ``modules`` it needs, so that importing the
    package (for its light modules: names, options, dataset specs) does not load them."""
    def attribute(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        require(feature, *modules)
        return getattr(importlib.import_module(exports[name], package), name)
    return attribute
