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
