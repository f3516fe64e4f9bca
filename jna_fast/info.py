"""`python -m jna_fast.info`: versions, the compiled extension, and which op backend can serve on this machine."""

from __future__ import annotations

import argparse
import importlib
import platform

import torch

from . import __version__
from ._ext import extension_status
from .ops.backends import BACKEND_NAMES, availability, select_backend

OPTIONAL = (
    ("triton", "triton", "triton"),
    ("DALI", "nvidia.dali", "dali"),
    ("PyAV", "av", "video"),
    ("OpenCV", "cv2", "video"),
)


def _version(module_name: str, extra: str) -> str:
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an optional dependency that is absent or broken: say which extra brings it
        return f"not available ({type(exc).__name__}: {exc}); pip install 'jna_fast[{extra}]'"
    return getattr(module, "__version__", "unknown version")


def report() -> str:
    lines = [
        f"jna_fast {__version__}  (python {platform.python_version()}, {platform.machine()})",
        f"torch {torch.__version__}  (CUDA {torch.version.cuda or 'none'}, "
        f"devices: {torch.cuda.device_count() if torch.cuda.is_available() else 0})",
    ]
    lines += [f"{label} {_version(module, extra)}" for label, module, extra in OPTIONAL]
    status = extension_status()
    if status.loaded:
        built = ", ".join(status.compiled_backends)
        archs = f", CUDA archs {status.cuda_arch_list}" if status.cuda_arch_list else ""
        lines.append(f"extension: built, backends: {built}{archs}  ({status.path})")
        from . import _C

        lines.append(f"CPU kernels run on {_C.cpu_threads_used()} of torch's {torch.get_num_threads()} threads")
    else:
        lines.append(f"extension: NOT loaded ({status.error}); ops use the reference")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        lines.append(f"backends for {device.type} tensors (auto choice: {select_backend(device).name}):")
        reasons = availability(device)
        for name in BACKEND_NAMES:
            reason = reasons[name]
            lines.append(f"  {name:<10} {'can serve' if reason is None else 'cannot: ' + reason}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jna_fast.info", description="Prints the versions, the compiled "
                                     "extension and which op backend can serve on this machine.")
    parser.parse_args(argv)
    print(report())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
