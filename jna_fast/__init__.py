"""jna_fast: fast two-stream action recognition with joint attention (the jna_fast formulation of JNA).

``import jna_fast`` registers the ``jna_fast::*`` ops (schemas, kernels, fake kernels, autograd) as soon as torch
is imported, whichever of the two comes first, so that a program exported with the fused ops loads after it
(``torch.export.load``), as torchvision's ops do after ``import torchvision``. The package itself never imports
torch: light entry points (``python -m jna_fast.flow`` and its worker processes) do not pay for it, and the model
and ``Predictor`` load on first use.
"""

import importlib
import importlib.util
import sys
import warnings

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


def _initializing(name: str) -> bool:
    module = sys.modules.get(name)
    return module is not None and getattr(getattr(module, "__spec__", None), "_initializing", False)


def _register_ops() -> None:
    """Loads the compiled extension, which defines the ops, and attaches their fake kernels and autograd. A
    missing or broken extension warns once (jna_fast._ext) and leaves the reference in charge. When torch's first
    import comes from the very modules that register (their first line), they are not loaded yet: then they
    register when their importer calls them (jna_fast.ops does at import)."""
    if _initializing("jna_fast._op_rules") or _initializing("jna_fast._ext"):
        return
    try:
        importlib.import_module("jna_fast._ext").extension_status()  # by name, like the lazy attributes above
    except Exception as exc:  # registering must never break the import of torch it rides on
        warnings.warn(f"jna_fast: the ops could not be registered ({type(exc).__name__}: {exc})", RuntimeWarning,
                      stacklevel=2)


class _RegisterOpsAfterTorch:
    """A meta path finder and loader (PEP 451) for torch alone: finds torch with the other finders, then runs
    torch's own loader and registers the ops once it is done. It steps aside (off sys.meta_path) at its first
    look-up, so that it runs at most once."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        self._torch_loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self._torch_loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self._torch_loader  # torch keeps its own loader
        self._torch_loader.exec_module(module)
        _register_ops()


if "torch" in sys.modules:
    _register_ops()
else:
    sys.meta_path.insert(0, _RegisterOpsAfterTorch())
