"""jna_fast: fast two-stream action recognition with joint attention (the jna_fast formulation of JNA).

The model and the ops load on first use, so that light entry points (``python -m jna_fast.flow`` and its
worker processes) do not pay for importing torch and the compiled extension.
"""

import importlib

__version__ = "0.1.0"
__all__ = ["JNA", "JNAOutput", "Predictor", "ops", "__version__"]

# Predictor (a trained model, loaded from a checkpoint, that predicts videos) lives in the inference layer above the
# model; reached from here by name only, so that importing the package loads neither.
_LAZY = {"JNA": "jna_fast.models", "JNAOutput": "jna_fast.models", "Predictor": "jna_fast.inference", "ops": None}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'jna_fast' has no attribute {name!r}")
    module = _LAZY[name]
    value = importlib.import_module(f"jna_fast.{name}") if module is None else getattr(
        importlib.import_module(module), name)
    globals()[name] = value
    return value
